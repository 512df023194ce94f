"""``ActionRunner``: the ``slaveapi`` service that queues and runs actions on slaves.

Every requested action is a row of ``slaveapi_results`` (its id is the ``requestid``) and
waits in one FIFO queue; at most ``max_concurrency`` actions run at once, and at most one
per slave.  Asking again for an action that is pending or running for the same slave
answers the request already made.  After a master restart, pending actions run and the
ones that were running end FAILURE.  The runner also serves the SlaveAPI on its own port
(``c['slaveapi']['port']``) and keeps the set of disabled slaves for the BotMaster.

With ``c['multiMaster']`` an action asked of this master for a slave whose PB connection
another master holds is recorded for that master (the row's ``masterid``), which runs it
through its live connection: it picks the row up when told (``pick_up_addressed``: PostgreSQL
NOTIFY, master/cluster/wakeups.py) or at its poll every ``ADDRESSED_POLL_S``.  The result is
in the database, so every master shows it; a master waiting for another's action
(``waittime``) reads it every ``REMOTE_WAIT_POLL_S``.

The actions of a master that died unfinished are given to the master that reclaims it
(master/db/masters.py), PENDING again.  That master runs one that never started, and one that
had started only when its action is safe to repeat (``Action.may_repeat``: the reads, enable,
disable without force, starting/stopping/terminating an EC2 instance), ending the others
FAILURE (a reboot, a graceful shutdown, a new instance: they may have had their effect).  One
whose slave attached to another master meanwhile is sent on to it (``_runs_here``).
"""

from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from buildfarm.master.fleet import STATE_NAMES, UNFINISHED, ActionState
from buildfarm.master.listener import ListeningService
from buildfarm.master.mq import events
from buildfarm.master.slaveapi.actions import action_table
from buildfarm.master.slaveapi.actions.base import Action, ActionContext, ActionFailed
from buildfarm.master.slaveapi.channels import channel_table
from buildfarm.master.slaveapi.channels.interfaces import IChannelHost
from buildfarm.master.slaveapi.compat import IGNORED_KEY, ignored_note
from buildfarm.master.slaveapi.interfaces import IActionHost, ISlaveAPIMaster
from buildfarm.master.slaveapi.results import ActionResult
from buildfarm.master.slaveapi.settings import SlaveAPISettings

log = Logger()

# Other masters sharing the database may enable or disable slaves: re-read that this often.
SETTINGS_REFRESH_S = 10.0
RESTARTED_TEXT = "the master restarted while this action was running; it did not finish"
# With several masters: how often a master looks for actions other masters recorded for it
# (the safety net of the PostgreSQL wake-up; the only way on SQLite), and how often one waiting
# for an action another master runs reads its result.
ADDRESSED_POLL_S = 2.0
REMOTE_WAIT_POLL_S = 0.25
# An action taken over from a dead master (``_take_over``), for a slave with no out-of-band
# channel in the inventory and attached to no master (it was the dead master's: its buildslave
# is attaching to another), waits this long for it to attach before it runs here anyway.
REATTACH_WAIT_S = 30.0
REPEATED_TEXT = "{action} had started there; it is safe to repeat: run again from the start"
NOT_REPEATED_TEXT = ("{action} had started there and may have had an effect; it is not safe to repeat, so it "
                     "is not run again: ask again if it is still wanted")
SENT_ON_TEXT = "sent on to the master {name} (id {id}), which holds the slave's connection now"


@implementer(IChannelHost, IActionHost)
class ActionRunner(ListeningService):
    """Queues actions on slaves and runs them with bounded concurrency.  It sees the master as
    an ``ISlaveAPIMaster``; its channels see it as their ``IChannelHost``, its actions as their
    ``IActionHost``."""

    name = "slaveapi"

    def __init__(self, master: ISlaveAPIMaster, settings: SlaveAPISettings | None = None):
        super().__init__()
        self.master = master
        self.settings = settings or master.config.slaveapi
        self.actions: dict[str, Action] = action_table()
        self.channels: dict = channel_table(self)  # inventory name -> IChannel provider
        self._live: dict[int, ActionResult] = {}  # pending and running results
        self._active: dict[tuple[str, str], int] = {}  # (slave, action) -> its unfinished request
        self._queue: list[int] = []
        self._running: dict[int, defer.Deferred] = {}
        self._busy_slaves: set[str] = set()
        self._waiters: dict[int, list[defer.Deferred]] = {}
        self._disabled: set[str] = set()
        self._submitting = defer.DeferredLock()
        self._refresher: task.LoopingCall | None = None
        self._addressed_poll: task.LoopingCall | None = None
        self._reattach_deadlines: dict[int, float] = {}  # request id -> until when it waits (_runs_here)
        self._resource = None

    @property
    def clock(self):
        return self.master.reactor

    @property
    def reactor(self):
        """The master's reactor (``IChannelHost``: the channels connect with it)."""
        return self.master.reactor

    @property
    def basedir(self) -> str:
        """The master's base directory (``IChannelHost``)."""
        return self.master.basedir

    def now(self) -> int:
        return int(self.clock.seconds())

    # -- life cycle ------------------------------------------------------------------------

    def startService(self):  # noqa: N802
        """Read the slaves' settings, recover the last run's actions, listen on the own port;
        the Deferred fails when that port cannot be had."""
        super().startService()
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        await self._apply_inventory()
        await self.refresh_enabled()
        await self._recover()
        self._refresher = task.LoopingCall(self._refresh_quietly)
        self._refresher.clock = self.clock
        self._refresher.start(SETTINGS_REFRESH_S, now=False)
        if self.master.config.multi_master:
            self._addressed_poll = task.LoopingCall(self.pick_up_addressed)
            self._addressed_poll.clock = self.clock
            self._addressed_poll.start(ADDRESSED_POLL_S, now=False)
        await self._listen()
        self._pump()

    async def reconfigService(self, new_config) -> None:  # noqa: N802 - Twisted's name
        """Apply ``new_config.slaveapi``: inventory, limits and the port (users are the auth service's)."""
        self.settings = new_config.slaveapi
        await self._apply_inventory()
        await self._listen()
        self._pump()

    def resource(self):
        """The SlaveAPI's twisted.web resource (the master's web site mounts it at /slaveapi/)."""
        from buildfarm.master.slaveapi.resources import SlaveAPI

        if self._resource is None:
            self._resource = SlaveAPI(self).resource()
        return self._resource

    async def _listen(self) -> None:
        """Serve the SlaveAPI on its own port when one is configured (a changed port moves)."""
        from buildfarm.master.slaveapi.resources import make_site

        await self.listen_on(self.clock, self.settings.port, lambda: make_site(self), "SlaveAPI")

    def stopService(self):  # noqa: N802
        for loop in (self._refresher, self._addressed_poll):
            if loop is not None and loop.running:
                loop.stop()
        return super().stopService()

    async def _apply_inventory(self) -> None:
        """Environments given in the inventory are written to the database."""
        stored = await self.master.db.slaveapi.get_all_settings()
        for name, location in self.settings.slaves.items():
            current = stored.get(name, {}).get("environment")
            if location.environment is not None and location.environment != current:
                await self.master.db.slaveapi.set_settings(name, environment=location.environment)

    async def _recover(self) -> None:
        db = self.master.db.slaveapi
        for row in await db.get_unfinished(self.master.masterid):
            result = ActionResult.from_row(row)
            if result.state == ActionState.RUNNING:
                text = "\n".join(filter(None, [result.text, RESTARTED_TEXT]))
                result.state, result.text, result.finish_timestamp = ActionState.FAILURE, text, self.now()
                await self._record_end(result)
                await db.set_audit_outcome(result.requestid, ActionState.FAILURE.label)
                log.info("SlaveAPI: {action} of {slave} (request {id}) was cut short by a restart",
                         action=result.action, slave=result.slave, id=result.requestid)
                continue
            if await self._may_run_again(result):
                self._enqueue(result)

    # -- enabled slaves --------------------------------------------------------------------

    def is_enabled(self, name: str) -> bool:
        """Whether the slave may take new builds (the BotMaster asks; no I/O)."""
        return name not in self._disabled

    def note_enabled(self, name: str, enabled: bool) -> None:
        (self._disabled.discard if enabled else self._disabled.add)(name)

    async def refresh_enabled(self) -> None:
        settings = await self.master.db.slaveapi.get_all_settings()
        self._disabled = {name for name, row in settings.items() if not row["enabled"]}

    def _refresh_quietly(self) -> defer.Deferred:
        d = defer.ensureDeferred(self.refresh_enabled())
        d.addErrback(lambda f: log.failure("SlaveAPI: reading slave settings failed", f))
        return d

    # -- requests --------------------------------------------------------------------------

    def action(self, name: str) -> Action | None:
        """The action of that name or alias."""
        return self.actions.get(name)

    async def knows(self, slave: str) -> bool:
        """Whether ``slave`` is configured, in the inventory, or was ever seen by a master."""
        if slave in self.master.config.slaves or slave in self.settings.slaves:
            return True
        return await self.master.db.slaves.get(slave) is not None

    async def submit(self, slave: str, action: Action, args: dict, user: str, peer: str) -> ActionResult:
        """Queue ``action`` (its args already parsed) for ``slave``; or answer the same
        action already pending or running for that slave.  Audited either way."""
        db = self.master.db.slaveapi
        await self._submitting.acquire()
        try:
            existing = await self._unfinished(slave, action.name)
            if existing is not None:
                await db.add_audit(self.now(), user, peer, slave, action.name,
                                   STATE_NAMES[existing.state], existing.requestid,
                                   "joined the request already pending or running")
                return existing
            now = self.now()
            runner = await self._holder_elsewhere(slave)
            requestid = await db.add_result(slave, action.name, args, user, peer,
                                            runner or self.master.masterid, now, wake=runner is not None)
            result = ActionResult(requestid, slave, action.name, ActionState.PENDING, args=args,
                                  requested_by=user, requested_from=peer, request_timestamp=now)
            await db.add_audit(now, user, peer, slave, action.name, ActionState.PENDING.label, requestid)
            if runner is None:
                self._enqueue(result)
        finally:
            self._submitting.release()
        log.info("SlaveAPI: {user} from {peer} asked for {action} of {slave} (request {id}){where}",
                 user=user, peer=peer, action=action.name, slave=slave, id=requestid,
                 where="" if runner is None else f"; the master holding its connection (id {runner}) runs it")
        self._pump()
        return result

    async def _unfinished(self, slave: str, action: str) -> ActionResult | None:
        """The same action pending or running for ``slave``: here, or (several masters) on any."""
        existing = self._active.get((slave, action))
        if existing is not None:
            return self._live[existing]
        if not self.master.config.multi_master:
            return None
        row = await self.master.db.slaveapi.find_unfinished(slave, action)
        return None if row is None else ActionResult.from_row(row)

    async def _holder_elsewhere(self, slave: str) -> int | None:
        """The id of the other master holding ``slave``'s PB connection (several masters), or
        None: this master runs the action (attached here, or nowhere: out-of-band channels)."""
        if not self.master.config.multi_master:
            return None
        row = await self.master.db.slaves.get(slave)
        holder = row and row.get("connected_masterid")
        return holder if holder and holder != self.master.masterid else None

    def pick_up_addressed(self) -> defer.Deferred:
        """Queue the actions other masters recorded for this one (PENDING rows of its id not
        queued yet) and start them; never fails (logged)."""
        d = defer.ensureDeferred(self._submitting.run(lambda: defer.ensureDeferred(self._pick_up())))
        d.addCallback(lambda _: self._pump())
        d.addErrback(lambda f: log.failure("SlaveAPI: looking for the actions addressed here failed", f))
        return d

    async def _pick_up(self) -> None:
        for row in await self.master.db.slaveapi.get_unfinished(self.master.masterid):
            result = ActionResult.from_row(row)
            if result.state != ActionState.PENDING or result.requestid in self._live:
                continue
            if not await self._may_run_again(result) or not await self._runs_here(result):
                continue
            log.info("SlaveAPI: {action} of {slave} (request {id}) asked of another master: run here, "
                     "where the slave is attached", action=result.action, slave=result.slave,
                     id=result.requestid)
            self._enqueue(result)

    async def _may_run_again(self, result: ActionResult) -> bool:
        """Whether a PENDING action may run: always, unless it had started on a master that
        died (its reclaim gave it to this one, keeping its ``start_timestamp``); then only when
        its action is safe to repeat (``Action.may_repeat``), else it ends FAILURE here."""
        if not result.start_timestamp:
            return True
        db, action = self.master.db.slaveapi, self.actions.get(result.action)
        if action is not None and action.may_repeat(result.args):
            result.text = "\n".join(filter(None, [result.text, REPEATED_TEXT.format(action=result.action)]))
            result.start_timestamp = 0
            await db.restart_result(result.requestid, result.text)
            log.info("SlaveAPI: {action} of {slave} (request {id}) was cut short by a dead master; "
                     "running it again", action=result.action, slave=result.slave, id=result.requestid)
            return True
        result.text = "\n".join(filter(None, [result.text, NOT_REPEATED_TEXT.format(action=result.action)]))
        result.state, result.finish_timestamp = ActionState.FAILURE, self.now()
        await self._record_end(result)
        await db.set_audit_outcome(result.requestid, ActionState.FAILURE.label)
        log.warn("SlaveAPI: {action} of {slave} (request {id}) was cut short by a dead master and is "
                 "not safe to repeat: ended FAILURE", action=result.action, slave=result.slave,
                 id=result.requestid)
        return False

    async def _runs_here(self, result: ActionResult) -> bool:
        """Whether this master runs an action recorded for it: not when another master holds
        the slave's connection now (the action is sent on to it), nor, for up to
        ``REATTACH_WAIT_S``, when the slave is attached to no master and has no out-of-band
        channel (its buildslave is attaching again: the next poll looks again)."""
        row = await self.master.db.slaves.get(result.slave)
        holder = row and row.get("connected_masterid")
        if holder and holder != self.master.masterid:
            names = await self.master.db.slaveapi.master_names()
            text = SENT_ON_TEXT.format(name=names.get(holder, "?"), id=holder)
            if await self.master.db.slaveapi.readdress(result.requestid, self.master.masterid, holder, text):
                log.info("SlaveAPI: {action} of {slave} (request {id}) sent on to master {holder}, "
                         "which holds the slave", action=result.action, slave=result.slave,
                         id=result.requestid, holder=holder)
            self._reattach_deadlines.pop(result.requestid, None)
            return False
        if holder or result.slave in self.settings.slaves:
            self._reattach_deadlines.pop(result.requestid, None)
            return True
        deadline = self._reattach_deadlines.setdefault(result.requestid,
                                                       self.clock.seconds() + REATTACH_WAIT_S)
        if self.clock.seconds() < deadline:
            return False
        del self._reattach_deadlines[result.requestid]
        return True

    def _enqueue(self, result: ActionResult) -> None:
        self._live[result.requestid] = result
        self._active[(result.slave, result.action)] = result.requestid
        self._queue.append(result.requestid)

    def wait(self, requestid: int, timeout_s: float) -> defer.Deferred:
        """Fire with None once the request finished, or after ``timeout_s`` seconds."""
        result = self._live.get(requestid)
        if timeout_s <= 0:
            return defer.succeed(None)
        if result is None:
            if not self.master.config.multi_master:
                return defer.succeed(None)
            return defer.ensureDeferred(self._wait_elsewhere(requestid, self.clock.seconds() + timeout_s))
        waiter: defer.Deferred = defer.Deferred()
        timer = self.clock.callLater(timeout_s, lambda: waiter.called or waiter.callback(None))
        waiter.addBoth(lambda value: (timer.active() and timer.cancel(), value)[1])
        self._waiters.setdefault(requestid, []).append(waiter)
        return waiter

    async def _wait_elsewhere(self, requestid: int, deadline: float) -> None:
        """Wait until the database shows request ``requestid`` finished (run by another
        master, or here after all), or ``deadline`` passes."""
        while True:
            if requestid in self._live:
                await self.wait(requestid, deadline - self.clock.seconds())
                return
            row = await self.master.db.slaveapi.get_result(requestid)
            if row is None or ActionState(row["state"]) not in UNFINISHED or self.clock.seconds() >= deadline:
                return
            await task.deferLater(self.clock, min(REMOTE_WAIT_POLL_S, deadline - self.clock.seconds()),
                                  lambda: None)

    async def get(self, requestid: int) -> ActionResult | None:
        """The result of that request (live while unfinished)."""
        if requestid in self._live:
            return self._live[requestid]
        row = await self.master.db.slaveapi.get_result(requestid)
        return None if row is None else ActionResult.from_row(row)

    async def results(self, slave: str | None = None, action: str | None = None) -> list[ActionResult]:
        """Every result (of a slave, of an action), oldest first; live ones as they stand."""
        rows = await self.master.db.slaveapi.get_results(slave, action)
        return [self._live.get(row["requestid"]) or ActionResult.from_row(row) for row in rows]

    # -- running ---------------------------------------------------------------------------

    def _pump(self) -> None:
        """Start queued actions while there is room, one per slave at a time."""
        if not self.running:
            return
        for requestid in list(self._queue):
            if len(self._running) >= self.settings.max_concurrency:
                return
            result = self._live[requestid]
            if result.slave in self._busy_slaves:
                continue
            self._queue.remove(requestid)
            self._busy_slaves.add(result.slave)
            d = defer.ensureDeferred(self._execute(result))
            d.addErrback(lambda f, r=result: log.failure("SlaveAPI: request {id} broke", f, id=r.requestid))
            if not d.called:
                self._running[requestid] = d

    async def _execute(self, result: ActionResult) -> None:
        db = self.master.db.slaveapi
        action = self.actions[result.action]
        ctx = ActionContext(result.requestid, result.slave, dict(result.args), result.requested_by,
                            self.master, self, self.settings, self.settings.slaves.get(result.slave))
        ctx.lines = _LiveLines(result)
        try:
            result.state, result.start_timestamp = ActionState.RUNNING, self.now()
            await db.start_result(result.requestid, result.start_timestamp)
            try:
                await self._before_run(ctx, action)
                result.data = await action.run(ctx)
                result.state = ActionState.SUCCESS
            except ActionFailed as e:
                ctx.say(str(e))
                result.state = ActionState.FAILURE
            except Exception as e:
                log.failure("SlaveAPI: {action} of {slave} failed unexpectedly", action=result.action,
                            slave=result.slave)
                ctx.say(f"internal error: {type(e).__name__}: {e}")
                result.state = ActionState.FAILURE
            if not self.running:
                return  # the master is stopping: the next start ends it as cut short
            result.finish_timestamp = self.now()
            await self._record_end(result)
            await db.set_audit_outcome(result.requestid, STATE_NAMES[result.state])
            log.info("SlaveAPI: {action} of {slave} (request {id}): {state}", action=result.action,
                     slave=result.slave, id=result.requestid, state=STATE_NAMES[result.state])
        finally:
            self._finished(result)

    async def _record_end(self, result: ActionResult) -> None:
        """Write the result's end and its ``action-finished`` message (master/mq/) in one
        transaction (the outbox, when the bus has one: a crash after the commit loses no
        event), then hand the message to this master's bus."""
        bus = self.master.mq
        message = events.action_finished(bus, result.action, result.slave, result.requestid, result.state,
                                          result.text, result.finish_timestamp, self.master.masterid)
        await self.master.db.slaveapi.finish_result(result.requestid, result.state, result.text,
                                                    result.finish_timestamp, result.data,
                                                    messages=events.in_transaction(bus, message))
        bus.published([message])

    async def _before_run(self, ctx: ActionContext, action: Action) -> None:
        """Say which arguments were ignored; fail an action on a slave nobody knows (the
        original SlaveAPI queued those too, and they failed)."""
        ignored = ctx.args.pop(IGNORED_KEY, None)
        if ignored:
            ctx.say(ignored_note(action.name, ignored, {arg.name for arg in action.args}))
        if not await self.knows(ctx.slave):
            raise ActionFailed(f"no slave named {ctx.slave!r}: it is not in master.cfg's slaves or the "
                               "SlaveAPI inventory, and no master has seen it")

    def _finished(self, result: ActionResult) -> None:
        self._running.pop(result.requestid, None)
        self._busy_slaves.discard(result.slave)
        self._live.pop(result.requestid, None)
        if self._active.get((result.slave, result.action)) == result.requestid:
            del self._active[(result.slave, result.action)]
        for waiter in self._waiters.pop(result.requestid, []):
            if not waiter.called:
                waiter.callback(None)
        self._pump()

    async def wait_idle(self) -> None:
        """Wait until no action runs or waits (for tests and orderly shutdown)."""
        while self._running:
            await defer.DeferredList(list(self._running.values()))


class _LiveLines(list):
    """The story's lines, mirrored into the live result's ``text`` as they are said."""

    def __init__(self, result: ActionResult):
        # a story told before the run (a dead master's action taken over) goes on
        super().__init__(result.text.splitlines() if result.text else [])
        self._result = result

    def append(self, line: str) -> None:
        super().append(line)
        self._result.text = "\n".join(self)
