"""twistd plugin drop-ins: ``twistd buildmaster --basedir X`` and ``twistd buildslave --basedir X``.

This folder has no ``__init__.py`` on purpose: Twisted finds drop-ins by scanning every
``twisted/plugins`` folder on ``sys.path``.  The plugin objects are cheap; the real code is
imported only when twistd asks for a service.
"""

from twisted.application.service import ServiceMaker

buildmaster = ServiceMaker(
    "buildfarm master",
    "buildfarm.master.tap",
    "A buildfarm master: builders, schedulers, slaves over PB and the web API.",
    "buildmaster",
)
buildslave = ServiceMaker(
    "buildfarm slave",
    "buildfarm.slave.tap",
    "A buildfarm slave: attaches to a master over PB and runs build commands.",
    "buildslave",
)
