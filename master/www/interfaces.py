"""``IWebMaster``: the master as the web pages and the JSON API see it.

The web side (``www/site.py``, ``www/api.py``, ``www/apidata.py``, ``www/ui/``) reads the
master only through the attributes named here; `buildfarm.master.service.BuildMaster`
declares it (and with it `IHTTPMaster`, what the shared HTTP pieces read), and the tests
check it with ``verifyObject`` on a real master built in memory.
The master is also handed on to ``master/status.py`` (``db``, ``config.slaves``,
``botmaster.slaves``, ``masterid``) and to ``MasterMetrics.render`` (``reactor``, ``db``,
``botmaster``), whose needs are within this list.
"""

from zope.interface import Attribute

from buildfarm.master.http.interfaces import IHTTPMaster


class IWebMaster(IHTTPMaster):
    """The master as the web pages and the JSON API see it."""

    config = Attribute(
        "The current ``MasterConfig`` (replaced on reconfig, so read it each time): ``title``, "
        "``slaves`` (configured slaves by name), ``www_port``, ``www_limits`` (an ``HTTPLimits``).")
    basedir = Attribute("The master's base directory: the content-addressed store's files live under it.")
    reactor = Attribute("The master's reactor: ``seconds()`` is the time of every age and duration shown.")
    db = Attribute("The ``DBConnector``: builds, requests, steps, logs, slaves, changes, audit, slaveapi.")
    masterid = Attribute("This master's id in the database (None until start-up found its row).")
    botmaster = Attribute(
        "The ``BotMaster``: ``builders`` and ``slaves`` by name, ``running_builds``, "
        "``running_build(buildid)``, ``request_slave_shutdown(name)``, ``builds_running_on(slave)``, "
        "``tell_schedulers(request)``.")
    scheduler = Attribute(
        "The ``SchedulerManager``: ``force_scheduler_for(builder)``, ``force(...)``, ``add_change(...)``.")
    changes = Attribute(
        "The ``ChangeSourceManager``: ``sources`` (the running change sources, each an ``IChangeSource``; "
        "the pollers ``IPollingChangeSource``) and ``named(name)``.")
    slaveapi = Attribute(
        "The SlaveAPI's ``ActionRunner``: ``action(name)``, ``results(slave)``, ``submit(...)``, "
        "``settings``, ``resource()`` (mounted under /slaveapi/).")
    auth = Attribute(
        "The ``AuthService``: ``anonymous()``, ``check_password(...)``, ``sessions``, and the identity "
        "of each request (master/http/routes.py).")
    metrics = Attribute("The master's ``MasterMetrics``: ``render(master)`` answers ``GET /metrics``.")
    cas = Attribute("The content-addressed store's ``CASService``: ``api`` (mounted under /_ah/), "
                    "``spool()`` and ``max_upload_bytes()`` for the upload URLs' bodies.")
    tasks = Attribute("The task engine (``ITaskEngine``: ``submitted``, ``cancel``, ``terminate_bot``), "
                      "or None while there is none: the Swarming API (tasks/api.py) calls it.")
    mq = Attribute("The master's event bus (``IEventBus``): the live views and the trends cache "
                   "(www/ui/views.py) subscribe to build-started, build-finished and change-added.")
    sampler = Attribute("The master's ``Sampler`` (master/samples.py): ``subscribe(observer)`` calls "
                        "``observer(at)`` after each sample it records (the charts over time drop their "
                        "cache).")
    logbus = Attribute("The master's ``LogBus``: live log lines of the builds this master runs.")
    api_catalog = Attribute(
        "The services served in Taskcluster's layout (an ``APICatalog``, master/apicatalog.py): "
        "``service(name)``, ``reference(name)``, ``exchanges_reference(name, prefix)``, "
        "``schema_document(service, name)``, ``manifest(root_url)`` answer /references/ and /schemas/.")
