"""Where a slave's dimensions come from: the slave reports its platform and the JSON object of
``info/dimensions.json`` (bad JSON: a warning in its log, no crash; no file: none), and
master.cfg's ``dimensions=`` on the Worker, checked at config load."""

import json
import platform
import textwrap

import pytest
from twisted.internet import reactor, task
from twisted.logger import capturedLogs, formatEvent

from buildfarm.master.config import ConfigErrors, Worker, load_config
from buildfarm.master.tasks.dimensions import slave_dimensions
from buildfarm.slave.bot import Bot
from buildfarm.slave.commands.registry import defaultRegistry
from buildfarm.slave.runtime import SlaveRuntime
from fixtures.mastercfg import WORKERS_EXAMPLE


def _info(basedir, dimensions_text: str | None = None) -> tuple[dict, str]:
    if dimensions_text is not None:
        (basedir / "info").mkdir(exist_ok=True)
        (basedir / "info" / "dimensions.json").write_text(dimensions_text)
    runtime = SlaveRuntime(str(basedir), defaultRegistry(), reactor, task.Clock(), lambda: None)
    with capturedLogs() as events:
        info = Bot(runtime).remote_getSlaveInfo()
    return info, "\n".join(formatEvent(e) for e in events)


def test_the_slave_reports_its_platform(tmp_path):
    info, _ = _info(tmp_path)
    assert (info["os_family"], info["cpu"], info["python"]) == (
        platform.system(), platform.machine(), platform.python_version())
    assert "dimensions" not in info  # no file: no dimensions of its own


def test_the_slave_reports_the_object_of_info_dimensions_json(tmp_path):
    info, log = _info(tmp_path, json.dumps({"gpu": ["nvidia", "nvidia-a100"], "disk": "ssd"}))
    assert info["dimensions"] == {"gpu": ["nvidia", "nvidia-a100"], "disk": "ssd"}
    assert "dimensions.json" not in info and log == ""


@pytest.mark.parametrize("text, words", [
    ("{not json", "is not JSON"),
    ('["gpu"]', "must hold a JSON object"),
])
def test_a_bad_dimensions_file_is_a_warning_in_the_slaves_log_not_a_crash(tmp_path, text, words):
    info, log = _info(tmp_path, text)
    assert "dimensions" not in info and "dimensions.json" not in info
    assert words in log and "no dimensions reported from it" in log
    assert info["system"]  # the rest of the report is there


def test_the_masters_view_of_a_reporting_slave(tmp_path):
    info, _ = _info(tmp_path, json.dumps({"gpu": "nvidia", "pool": "sneaky"}))
    dims, warnings = slave_dimensions("bs1", info, Worker("bs1", "p", dimensions={"pool": "ci"}).dimensions)
    assert dims["id"] == ["bs1"] and dims["pool"] == ["ci"] and dims["gpu"] == ["nvidia"]
    assert dims["python"][-1] == platform.python_version() and dims["os"]
    assert warnings == ["info/dimensions.json: pool is set by the master only; ignored"]


def test_a_worker_takes_dimensions_in_master_cfg():
    worker = Worker("bs1", "p", dimensions={"pool": "ci", "gpu": ["a", "b"]})
    assert worker.dimensions == {"pool": "ci", "gpu": ["a", "b"]} and worker.config_problems() == []
    assert Worker("bs2", "p").dimensions == {}


def test_bad_dimensions_in_master_cfg_are_checkconfig_errors_one_line_each(tmp_path):
    cfg = WORKERS_EXAMPLE.replace(
        "worker.Worker('bs1', 'pass')",
        "worker.Worker('bs1', 'pass', dimensions={'pool': ['a', 'b'], 'id': 'x', 'bad key': 'v'})")
    path = tmp_path / "master.cfg"
    path.write_text(textwrap.dedent(cfg))
    with pytest.raises(ConfigErrors) as caught:
        load_config(str(path))
    errors = [str(e) for e in caught.value.errors]
    assert errors == [
        "master.cfg:3: Worker 'bs1': dimensions: pool must have one value, not 2",
        "master.cfg:3: Worker 'bs1': dimensions: key 'bad key' must be 1 to 64 of [a-zA-Z0-9_.-], "
        "not starting with a digit",
        "master.cfg:3: Worker 'bs1': dimensions: id is always the slave's name and cannot be set",
    ]
    assert all("\n" not in e for e in errors)
