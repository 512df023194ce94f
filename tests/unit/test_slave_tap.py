"""``twistd buildslave --basedir X`` runs the slave that X/buildbot.tac describes."""

import pytest
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage

from buildfarm.slave import tap
from buildfarm.slave.scripts.runner import main
from buildfarm.slave.service import SlaveService


def createSlave(basedir, *options):
    assert main(["create-slave", *options, str(basedir), "master.example.org:9000",
                 "bs1", "pass"]) == 0


def slaveOf(service):
    [slave] = [s for s in service if isinstance(s, SlaveService)]
    return slave


def makeService(basedir):
    options = tap.Options()
    options.parseOptions(["--basedir", str(basedir)])
    return tap.makeService(options)


def test_plugin_is_listed_by_twistd():
    assert "buildslave" in [maker.tapname for maker in getPlugins(IServiceMaker)]


def test_make_service_loads_the_basedir_tac_whatever_the_cwd(tmp_path, monkeypatch, capsys):
    createSlave(tmp_path / "slave", "--maxdelay", "60")
    monkeypatch.chdir(tmp_path)

    slave = slaveOf(makeService("slave"))

    assert slave.basedir == str(tmp_path / "slave")
    assert slave.master == "master.example.org:9000" and slave.slavename == "bs1"


def test_relocatable_tac_finds_its_basedir_next_to_itself(tmp_path, monkeypatch, capsys):
    createSlave(tmp_path / "slave", "--relocatable")
    (tmp_path / "slave").rename(tmp_path / "moved")
    monkeypatch.chdir("/")

    slave = slaveOf(makeService(tmp_path / "moved"))

    assert slave.basedir == str(tmp_path / "moved")


def test_basedir_without_a_tac_is_a_usage_error(tmp_path):
    with pytest.raises(usage.UsageError, match="buildbot.tac does not exist"):
        tap.Options().parseOptions(["--basedir", str(tmp_path)])


def test_a_new_tac_names_the_slave_service(tmp_path):
    createSlave(tmp_path / "slave")

    text = (tmp_path / "slave" / "buildbot.tac").read_text()

    assert "from buildfarm.slave.service import SlaveService" in text and "BuildSlave(" not in text


def test_a_tac_written_before_the_rename_still_runs_its_slave(tmp_path, capsys):
    createSlave(tmp_path / "slave")
    tac = tmp_path / "slave" / "buildbot.tac"
    tac.write_text(tac.read_text().replace("SlaveService", "BuildSlave"))  # as create-slave wrote it

    slave = slaveOf(makeService(tmp_path / "slave"))

    assert slave.slavename == "bs1" and slave.basedir == str(tmp_path / "slave")
