"""``IHTTPMaster``: the master as every HTTP surface's shared pieces see it.

The route table (``routes.py``) asks the master's ``auth`` who the caller is and whether it
may; the Site factory and the live-stream slots read the port limits from ``config``
(``config.www_limits``).  The web side's `buildfarm.master.www.interfaces.IWebMaster` extends it;
`buildfarm.master.service.BuildMaster` provides both.
"""

from zope.interface import Attribute, Interface


class IHTTPMaster(Interface):
    """The master as the shared HTTP pieces (route table, limits) see it."""

    config = Attribute("The current ``MasterConfig``: its ``www_limits`` (an ``HTTPLimits``) are the "
                       "port limits.")
    auth = Attribute(
        "The ``AuthService``: ``identify(request)``, ``authorize(request, scope, write)`` and the audit "
        "of every write (routes.py).")
