"""``c['db'] = {'db_url': 'sqlite://'}``, as Buildbot's examples write it: the master keeps
its database in memory for the life of the process."""

from fixtures.daemons import MASTER_CFG, run_cli

MEMORY_CFG = MASTER_CFG.replace("sqlite:///state.sqlite", "sqlite://")


def memory_config(pb_port, www_port):
    return MEMORY_CFG.format(slavenames=["bs1"], command=["echo", "in memory"], pb_port=pb_port,
                             www_port=www_port)


def test_a_master_with_an_in_memory_database_starts_and_runs_builds(fleet):
    master = fleet.master(config=memory_config)
    fleet.slave(master)
    master.wait_attached("bs1")

    request = master.wait_request_complete(master.force())

    assert request["results"] == 0
    status, text = master.request("GET", f"/api/v1/builds/{request['buildids'][0]}/steps/0/logs/stdio")
    assert status == 200 and b"\nin memory\n" in text


def test_upgrade_master_on_an_in_memory_database_says_there_is_nothing_to_upgrade(fleet):
    master = fleet.master(config=memory_config, start=False)

    result = run_cli("buildmaster", "upgrade-master", master.basedir)

    assert result.returncode == 0, result.stderr
    assert "is in memory (sqlite://)" in result.stdout
