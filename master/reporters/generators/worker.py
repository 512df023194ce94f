"""``WorkerMissingGenerator`` (Buildbot's ``reporters.generators.worker``): a report when a
slave stays away longer than its ``missing_timeout`` (the BotMaster's ``missing`` events)."""

import datetime

from zope.interface import implementer

from buildfarm.master.reporters.interfaces import IReportGenerator
from buildfarm.master.reporters.message import MessageFormatterMissingWorker


def slave_dict(slave, info: dict | None = None) -> dict:
    """A ``SlaveMissing`` as Buildbot's worker dict of the template (``worker``)."""
    gone = datetime.datetime.fromtimestamp(slave.gone_since, tz=datetime.UTC)
    return {
        "name": slave.name,
        "workerinfo": dict(info or {}),
        "last_connection": gone.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "gone_since": slave.gone_since,
        "missing_timeout": slave.missing_timeout,
        "notify": list(slave.notify),
    }


@implementer(IReportGenerator)
class WorkerMissingGenerator:
    """Reports slaves gone missing; ``workers`` "all" or a list of slave names."""

    wanted_event_kinds: tuple[str, ...] = ()
    wants_missing_slaves = True

    def __init__(self, workers="all", message_formatter=None):
        if workers != "all" and (not isinstance(workers, list | tuple | set)
                                 or not all(isinstance(w, str) for w in workers)):
            raise ValueError("WorkerMissingGenerator: workers must be 'all' or a list of names, "
                             f"not {workers!r}")
        self.workers = workers if workers == "all" else list(workers)
        self.formatter = message_formatter or MessageFormatterMissingWorker()

    async def generate(self, master, reporter, kind, build):
        return None

    async def generate_missing(self, master, reporter, slave) -> dict | None:
        if self.workers != "all" and slave.name not in self.workers:
            return None
        worker = slave_dict(slave)
        message = await self.formatter.format_message_for_worker(master, worker)
        return {
            "body": message["body"],
            "subject": message["subject"],
            "type": message["type"],
            "results": None,
            "builds": [],
            "users": list(slave.notify),
            "patches": [],
            "logs": [],
            "worker": worker,
            "extra_info": message["extra_info"],
        }
