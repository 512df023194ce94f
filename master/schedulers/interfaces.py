"""How the schedulers (the ``SchedulerManager`` and each scheduler it runs) see the master.

``ISchedulerMaster`` names what ``master/schedulers/`` reads of the master; the other
interfaces name the calls it makes on the BotMaster and on the database's tables, one
interface a table.  ``BuildMaster`` provides ``ISchedulerMaster``.  The in-memory doubles of
``testing.py`` (``FakeMaster``, ``FakeDB``, ...) declare the same interfaces, and a test
checks both the real objects and the doubles against them with ``verifyObject``, so the
doubles cannot drift from what they stand in for.
"""

from zope.interface import Attribute, Interface


class IBuildsetsTable(Interface):
    """``db.buildsets``: buildsets and their build requests."""

    def add(scheduler, reason, properties, builderids, submitted_at, priority=0, parent_buildid=None,
            messages=None):
        """Insert a buildset with a request per builder: ``(bsid, {builderid: brid})``;
        ``messages(bsid, brids)``'s messages go to the outbox in the same transaction."""

    def get(bsid):
        """The buildset's row (``complete``, ``results``, ``scheduler``, ...), or None."""

    def complete_if_done(bsid, now, messages=None):
        """Complete the buildset if all its requests are: its results, else None;
        ``messages(results)``'s messages go to the outbox in the completing transaction."""


class IBuildRequestsTable(Interface):
    """``db.buildrequests``, as far as the schedulers use it."""

    def get(brid):
        """The request's row (``buildsetid``, ``complete``, ``results``, ...), or None."""

    def cancel(brid, now):
        """Complete an unclaimed request as CANCELLED: whether it was (False if claimed)."""


class IChangesTable(Interface):
    """``db.changes``: the changes schedulers watch."""

    def add(author, comments, files, when_timestamp, created_at, branch=None, revision=None,
            repository="", project="", codebase="", category=None, committer=None, properties=None):
        """Record a change: its id."""

    def get(changeid):
        """The change's row, or None."""

    def get_after(changeid):
        """The changes after ``changeid``, oldest first."""


class ISchedulerStateTable(Interface):
    """``db.state``: what a scheduler keeps across restarts, by scheduler name and key."""

    def get(scheduler, key, default=None):
        """The stored value, or ``default``."""

    def set(scheduler, key, value):
        """Store ``value`` (JSON-able)."""


class IBuildersTable(Interface):
    """``db.builders``: builder ids by name."""

    def find_or_create(name):
        """The builder's id, created on first use."""


class ISchedulerDB(Interface):
    """The database as the schedulers see it."""

    buildsets = Attribute("IBuildsetsTable")
    buildrequests = Attribute("IBuildRequestsTable")
    changes = Attribute("IChangesTable")
    state = Attribute("ISchedulerStateTable")
    builders = Attribute("IBuildersTable")


class ISchedulerBotMaster(Interface):
    """The BotMaster as the schedulers see it."""

    builders = Attribute("The running builders by name, each with its ``builderid``.")
    running_builds = Attribute("The builds running here (each with its ``request`` and ``stop(reason)``).")

    def maybe_start_builds():
        """New build requests exist: start builds on idle slaves."""


class ISchedulerMaster(Interface):
    """The master as the schedulers see it."""

    reactor = Attribute("The master's clock (IReactorTime): timers of Periodic, Nightly, tree-stable waits.")
    db = Attribute("The database (ISchedulerDB).")
    config = Attribute("The running MasterConfig: ``schedulers`` and ``builder(name)``.")
    botmaster = Attribute("The BotMaster (ISchedulerBotMaster).")
    mq = Attribute("The master's event bus (master/mq/interfaces.py IEventBus): request-submitted "
                   "(through the outbox in the buildset's transaction) and change-added.")
    masterid = Attribute("This master's row in ``masters``: the holder of a timed scheduler's lease.")
