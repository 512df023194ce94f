"""The examples of docs/tasks.md, run: the tasks/new body parses as the page says, the
dimensions.json example is what a slave reports, and the master.cfg line loads."""

import json
import textwrap

from twisted.internet import reactor, task

from buildfarm.master.config import load_config
from buildfarm.master.tasks import dimensions, model
from buildfarm.slave.bot import Bot
from buildfarm.slave.commands.registry import defaultRegistry
from buildfarm.slave.runtime import SlaveRuntime
from fixtures.docexamples import example
from fixtures.mastercfg import WORKERS_EXAMPLE


def test_the_new_request_example_parses_into_two_slices():
    request = model.request_from_json(json.loads(example("tasks.md", "tasks-new-request")))
    first, second = request.task_slices
    assert (request.priority, request.user, first.expiration_secs, second.expiration_secs) == (
        100, "alice@example.org", 300, 3600)
    assert first.properties.dimensions_dict() == {"gpu": ["amd|nvidia"], "os": ["Linux"], "pool": ["ci"]}
    assert len(dimensions.expand(first.properties.dimensions_dict())) == 2
    assert first.properties.idempotent and first.properties.relative_cwd == "src"
    assert model.request_from_json(model.request_to_json(request)) == request


def test_the_dimensions_json_example_is_reported_by_the_slave_and_merged(tmp_path):
    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "dimensions.json").write_text(example("tasks.md", "tasks-dimensions-json"))
    info = Bot(SlaveRuntime(str(tmp_path), defaultRegistry(), reactor, task.Clock(), lambda: None)
               ).remote_getSlaveInfo()
    dims, warnings = dimensions.slave_dimensions("bs1", info, {"pool": "ci"})
    assert dims["gpu"] == ["nvidia", "nvidia-a100"] and dims["disk"] == ["ssd"] and warnings == []


def test_the_worker_dimensions_example_loads(tmp_path):
    line = example("tasks.md", "tasks-worker-dimensions").strip()
    cfg = WORKERS_EXAMPLE.replace("c['workers'] = [worker.Worker('bs1', 'pass')]", line)
    assert line in cfg
    (tmp_path / "master.cfg").write_text(textwrap.dedent(cfg))
    config = load_config(str(tmp_path / "master.cfg"))
    assert config.slaves["bs1"].dimensions == {"pool": "ci", "gpu": ["nvidia"]}
