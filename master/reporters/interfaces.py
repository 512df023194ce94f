"""The reporters' view of the master, and their pluggable parts.

``IReporterMaster`` names what a reporter (a service of ``c['services']``) reads of the
master; ``IReporter``, ``IReportGenerator`` and ``IMessageFormatter`` are the three parts a
Buildbot reporter is made of: the reporter sends reports, its generators decide which events
deserve one and build it, their formatters render its text.
"""

from zope.interface import Attribute, Interface


class IReporterMaster(Interface):
    """The master as its reporters see it."""

    reactor = Attribute("The master's clock (IReactorTime): report times and retry waits.")
    masterid = Attribute("This master's id in the database: it sends the reports it recorded.")
    config = Attribute("The running MasterConfig: ``title``, ``buildbot_url``, ``builders`` "
                       "(their tags), ``secrets_providers``.")
    db = Attribute("The DBConnector: builds, steps, logs, requests, buildsets and ``reports``.")
    buildevents = Attribute("The master's BuildEvents: builds and steps started and finished.")
    botmaster = Attribute("The BotMaster: its ``missing`` (IMissingSlaves) reports missing slaves.")


class IMessageFormatter(Interface):
    """Renders the message of a report from a context (a dict of Buildbot's variables)."""

    template_type = Attribute("'plain', 'html' or 'json': the type of the body.")
    want_properties = Attribute("Whether the build dict needs its properties.")
    want_steps = Attribute("Whether the build dict needs its steps.")
    want_logs = Attribute("Whether the steps need their logs.")
    want_logs_content = Attribute("Whether the logs need their text.")

    def format_message_for_build(master, build, mode=(), users=(), is_buildset=False):
        """``{"body", "subject", "type", "extra_info"}`` for a build dict (a coroutine)."""


class IReportGenerator(Interface):
    """Decides which events deserve a report and builds it."""

    wanted_event_kinds = Attribute("The BuildEvent kinds it looks at (``build_started``, ...); "
                                   "a generator of missing slaves has none.")
    wants_missing_slaves = Attribute("Whether it reports slaves gone missing (SlaveMissing).")

    def generate(master, reporter, kind, build):
        """The report (a dict: ``body``, ``subject``, ``type``, ``results``, ``builds``, ...)
        for a ``kind`` event of the build dict ``build``, or None (a coroutine)."""

    def generate_missing(master, reporter, slave):
        """The report for a slave gone missing (a dict), or None (a coroutine)."""


class IReporter(Interface):
    """A service of ``c['services']`` that sends reports its generators make."""

    name = Attribute("The reporter's name: unique among the services; its reports are "
                     "recorded under it.")
    generators = Attribute("Its IReportGenerator list.")

    def sendMessage(reports):  # noqa: N802 - Buildbot's name
        """Send ``reports`` (a list of report dicts, JSON-able); a Deferred or coroutine.
        Raising ``ReportRejected`` gives the report up; any other error retries it later."""
