"""``Build``: runs one build request's steps on one slave and records the result."""

import os
import traceback

from twisted.logger import Logger
from twisted.spread import pb

from buildfarm.common.redaction import redact_variable
from buildfarm.common.results import CANCELLED, EXCEPTION, RETRY, SKIPPED, SUCCESS, result_name
from buildfarm.master import metrics
from buildfarm.master.mq import events
from buildfarm.master.pb.deadline import DeadlineExceeded, call_with_deadline
from buildfarm.master.pb.remotecommand import (
    CommandInterrupted,
    RemoteCommand,
    RemoteCommandFailed,
    SlaveLost,
)
from buildfarm.master.process.buildevents import (
    BUILD_FINISHED,
    BUILD_STARTED,
    STEP_FINISHED,
    STEP_STARTED,
    BuildEvent,
)
from buildfarm.master.process.buildstep import BuildStep, fold_step_result
from buildfarm.master.process.interfaces import IProcessMaster
from buildfarm.master.process.locks import as_access
from buildfarm.master.process.logbus import build_changed
from buildfarm.master.process.logwriter import LogWriter
from buildfarm.master.process.properties import Properties, SecretNotFound, secret_names
from buildfarm.master.secrets.manager import SecretManager

log = Logger()

START_BUILD_TIMEOUT_S = 60.0
INTERRUPT_DEADLINE_S = 15.0  # after this the master ends an interrupted command itself
# A build whose end this master could not record: another master declared this one dead and
# ended the build RETRY (master/db/masters.py reclaim); its request may run elsewhere.
CLAIM_LOST_MESSAGE = ("build {builder}#{number} ended {result}, but this master no longer holds it (declared "
                      "dead by another master, which ended it RETRY): its result is not recorded")


class SlaveLacksCommand(Exception):
    """The slave does not offer a command the step needs."""
LOST = (SlaveLost, pb.PBConnectionLost, pb.DeadReferenceError, DeadlineExceeded)


class StepRun:
    """The context one step gets while it runs: logs, commands, the builder's settings."""

    def __init__(self, build: "Build", stepid: int):
        self.build = build
        self.master = build.master
        self.stepid = stepid
        self.properties = build.properties
        self.builddir = build.builder.config.builddir
        self.logs: list[LogWriter] = []
        self._env: dict | None = None

    @property
    def env(self) -> dict:
        """The builder's ``env``, rendered when a step first uses it (inside the step's run,
        so that a missing secret in it fails the step, not the build)."""
        if self._env is None:
            self._env = self.properties.render(self.build.builder.config.env)
        return self._env

    @property
    def clock(self):
        """The build's time: the master's reactor."""
        return self.master.reactor

    def getProperty(self, name: str, default=None):  # noqa: N802 - for doStepIf functions
        return self.properties.getProperty(name, default)

    def setProperty(self, name: str, value, source: str) -> None:  # noqa: N802
        self.properties.setProperty(name, value, source)

    async def add_log(self, name: str) -> LogWriter:
        """A new log of this step."""
        db = self.build.master.db
        logid = await db.logs.add(self.stepid, name)
        writer = LogWriter(db, logid, self.build.master.reactor, metrics.log_bytes_hook(self.master),
                           self.master.logbus, redactor=self.properties.redactor)
        self.logs.append(writer)
        build_changed(self.master, self.build.buildid)
        return writer

    async def run_command(self, name: str, args: dict, log: LogWriter | None) -> dict:
        """Run a remote command on the build's slave; return its final updates and ``rc``."""
        commands = self.build.slavebuilder.slave.commands
        if commands and name not in commands:
            raise SlaveLacksCommand(f"slave {self.build.slavebuilder.slave.name} has no {name!r} command")
        command = RemoteCommand(name, args, log)
        self.build.current_command = command
        try:
            return await command.run(self.build.slavebuilder.remote, self.build.next_command_id())
        finally:
            self.build.current_command = None

    def command_version(self, name: str) -> str | None:
        """The version the slave reported for a command (None if it has no such command)."""
        return self.build.slavebuilder.slave.commands.get(name)

    def master_path(self, path: str) -> str:
        """A master-side path: relative ones are taken from the master's basedir."""
        return os.path.join(self.build.master.basedir, os.path.expanduser(path))

    async def close_logs(self) -> None:
        for writer in self.logs:
            await writer.finish()


class Build:
    """One build: a claimed request, a slave, the builder's steps in order."""

    def __init__(self, master: IProcessMaster, builder, slavebuilder, request: dict):
        self.master = master
        self.builder = builder
        self.slavebuilder = slavebuilder
        self.request = request
        self.buildid: int | None = None
        self.number: int | None = None
        self.started_at: float | None = None
        self.results: int | None = None
        self.stopped: str | None = None
        self.current_command: RemoteCommand | None = None
        self.properties = Properties()
        self.collapsed_requests: list[int] = []
        self.claim_lost = False  # its end was not recorded: this master no longer held it
        self.lock_accesses: list = []
        self.steps = list(builder.config.factory.steps)  # a reconfig never changes a running build
        self._commands = 0

    def next_command_id(self) -> str:
        self._commands += 1
        return str(self._commands)

    def now(self) -> float:
        return self.master.reactor.seconds()

    def stop(self, reason: str) -> None:
        """Stop the build: interrupt its command, run no further step; it ends CANCELLED."""
        if self.stopped is not None:
            return
        self.stopped = reason
        log.info("stopping build {id}: {reason}", id=self.buildid, reason=reason)
        if self.current_command is not None:
            self.current_command.interrupt(reason, self.master.reactor, INTERRUPT_DEADLINE_S)

    async def run(self) -> int:
        """Run the build to the end; return its result (RETRY when the slave was lost)."""
        db = self.master.db
        slave = self.slavebuilder.slave
        slaveid = await db.slaves.find_or_create(slave.name)
        self.started_at = self.now()
        self.buildid, self.number = await db.builds.add(
            self.builder.builderid, self.request["buildrequestid"], slaveid,
            self.master.masterid, self.started_at, "starting", self.request.get("properties") or {},
        )
        self.master.buildevents.publish(BuildEvent(BUILD_STARTED, self.buildid))
        self._publish(events.build_started(self.master.mq, self._event_fields()))
        metrics.build_started(self.master, self.builder.name)
        log.info("build {builder}#{number} started on {slave}", builder=self.builder.name,
                 number=self.number, slave=slave.name)
        self._set_properties()
        await self._fetch_secrets()
        results, state = await self._run_steps()
        self.results = results
        await self._store_properties()
        await self.record_end(results, self.properties.cleanupTextFromSecrets(state))
        return results

    async def record_end(self, results: int, state: str) -> bool:
        """Record the build's end and report it (events, metrics, log); whether it was
        recorded.  Fenced (``db.builds.finish`` with this master's id): when this master no
        longer holds the build (declared dead, its build ended RETRY by the master that
        reclaimed it) nothing is written or reported (the build-finished message goes to the
        outbox only with the end), ``claim_lost`` is set (the BotMaster then leaves the
        requests alone) and the loss is logged."""
        finished = events.build_finished(self.master.mq, self._event_fields(), results, self.now(), state)
        if not await self.master.db.builds.finish(
                self.buildid, results, self.now(), state, self.master.masterid,
                messages=events.in_transaction(self.master.mq, finished)):
            self.claim_lost = True
            log.warn(CLAIM_LOST_MESSAGE, builder=self.builder.name, number=self.number,
                     result=result_name(results))
            return False
        self.master.mq.published([finished])
        self.master.buildevents.publish(BuildEvent(BUILD_FINISHED, self.buildid, results=results))
        metrics.build_finished(self.master, self.builder.name, results)
        log.info("build {builder}#{number} finished: {result}", builder=self.builder.name,
                 number=self.number, result=result_name(results))
        return True

    def _set_properties(self) -> None:
        """The build's properties, later sources winning: global, builder, slave, request, build."""
        config = self.master.config
        props, slave = self.properties, self.slavebuilder.slave
        props.update(config.properties, "Global")
        props.update(self.builder.config.properties, "Builder")
        slave_config = config.slaves.get(slave.name)
        if slave_config is not None:
            props.update(slave_config.properties, "Worker")
        request_props = dict(self.request.get("properties") or {})
        props.update(request_props, request_props.get("scheduler", "BuildRequest"))
        props.update({
            "buildername": self.builder.name, "buildnumber": self.number,
            "slavename": slave.name, "workername": slave.name,
            "builddir": self.builder.config.builddir, "buildid": self.buildid,
        }, "Build")
        for key, value in slave.info.items():
            if isinstance(value, str | int | float):
                props.setProperty(f"slave_info_{key}", redact_variable(key, value), "Worker")

    async def _store_properties(self) -> None:
        """The build's properties into the database, the secrets it rendered as ``<name>``."""
        values = self.properties.redactor.redact_structure(self.properties.values())
        await self.master.db.builds.set_properties(self.buildid, values)

    async def _fetch_secrets(self) -> None:
        """The secrets the steps and the builder's env name, from c['secretsProviders'];
        a step rendering one that no provider gave fails (SecretNotFound)."""
        names = secret_names([self.steps, self.builder.config.env])
        if names:
            manager = SecretManager(self.master.config.secrets_providers)
            fetched = await manager.fetch(self.master.reactor, names)
            self.properties.add_secrets(fetched.values, fetched.missing)

    async def _run_steps(self) -> tuple[int, str]:
        slave = self.slavebuilder.slave
        if not await slave.ping(self.master.config.ping_timeout):
            return RETRY, "slave did not answer a ping"
        try:
            await call_with_deadline(self.master.reactor, START_BUILD_TIMEOUT_S,
                                     self.slavebuilder.remote, "startBuild")
        except LOST:
            return RETRY, "slave lost at build start"
        except pb.RemoteError as e:
            return EXCEPTION, f"startBuild failed: {e}"
        results, halted = SUCCESS, False
        for number, step in enumerate(self.steps):
            if self.stopped is not None:
                return CANCELLED, f"build cancelled: {self.stopped}"
            if halted and not step.alwaysRun:
                continue
            await self.master.db.builds.set_state(self.buildid, f"running {step.name}")
            step_results = await self._run_step(number, step)
            results, halt = fold_step_result(results, step, step_results)
            halted = halted or halt
        return results, "build " + (result_name(results) or "finished")

    async def _run_step(self, number: int, step: BuildStep) -> int:
        db = self.master.db
        step_name = self._step_name(step)
        stepid = await db.steps.add(self.buildid, number, step_name, self.now())
        self.master.buildevents.publish(BuildEvent(STEP_STARTED, self.buildid, stepid))
        run = StepRun(self, stepid)
        held: list = []
        try:
            step = step.rendered(self.properties)
            if not step.should_run(run):
                await db.steps.finish(stepid, SKIPPED, self.now(), f"{step.name} (skipped)")
                self.master.buildevents.publish(BuildEvent(STEP_FINISHED, self.buildid, stepid, SKIPPED))
                self._publish_step_finished(stepid, number, step_name, SKIPPED)
                return SKIPPED
            locks = [as_access(item) for item in step.locks]
            if locks:
                await db.builds.set_state(self.buildid, f"waiting for locks of {step.name}")
                await self.master.botmaster.locks.acquire(run, locks, self.slavebuilder.slave.name)
                held = locks
            results, state = await step.run(run)
        except LOST:
            results, state = RETRY, "slave lost"
        except CommandInterrupted as e:
            results, state = CANCELLED, str(e)
        except (SlaveLacksCommand, SecretNotFound) as e:
            results, state = EXCEPTION, str(e)
            await self._exception_log(run, state)
        except RemoteCommandFailed as e:
            results, state = EXCEPTION, f"command failed on the slave: {e}"
            await self._exception_log(run, str(e))
        except pb.RemoteError as e:
            results, state = EXCEPTION, f"slave refused the command: {e.args[1] if len(e.args) > 1 else e}"
            await self._exception_log(run, state)
        except Exception:
            results, state = EXCEPTION, "exception on the master"
            await self._exception_log(run, traceback.format_exc())
            log.failure("step {name} raised", name=step.name)
        finally:
            if held:
                self.master.botmaster.locks.release(run, held, self.slavebuilder.slave.name)
        if self.stopped is not None and results not in (SUCCESS, RETRY):
            results, state = CANCELLED, f"{state} (cancelled: {self.stopped})"
        await run.close_logs()
        await db.steps.finish(stepid, results, self.now(), self.properties.cleanupTextFromSecrets(state))
        self.master.buildevents.publish(BuildEvent(STEP_FINISHED, self.buildid, stepid, results))
        self._publish_step_finished(stepid, number, step_name, results)
        return results

    def _event_fields(self) -> dict:
        """The build as the event payloads read it (``db.builds``' keys)."""
        slave = self.slavebuilder.slave.name if self.slavebuilder is not None else None  # None: a test's step
        return {"buildername": self.builder.name, "builderid": self.builder.builderid,
                "buildid": self.buildid, "number": self.number,
                "buildrequestid": self.request["buildrequestid"],
                "buildrequestids": [self.request["buildrequestid"], *self.collapsed_requests],
                "slavename": slave,
                "masterid": self.master.masterid, "started_at": self.started_at}

    def _publish_step_finished(self, stepid: int, number: int, name: str, results: int) -> None:
        fields = self._event_fields()
        self._publish(events.step_finished(self.master.mq, fields, stepid, number, name, results))

    def _publish(self, message) -> None:
        """An event of the bus that needs no transaction of its own (outboxed: its own)."""
        d = events.publish(self.master.mq, message)
        d.addErrback(lambda f: log.failure("publishing {exchange} of build {id} failed", f,
                                           exchange=message.exchange, id=self.buildid))

    def _step_name(self, step: BuildStep) -> str:
        try:
            return str(self.properties.render(step.name))
        except Exception:
            return step.default_name

    async def _exception_log(self, run: StepRun, text: str) -> None:
        writer = await run.add_log("err.text")
        writer.add_header(text if text.endswith("\n") else text + "\n")
