"""Configurators: objects in ``c['configurators']`` that add to master.cfg's
``BuildmasterConfig`` before it is validated (``buildfarm.master.config.IConfigurator``), as
Buildbot's ``buildbot.configurators`` do.  One module each: ``janitor.py``."""
