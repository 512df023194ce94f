"""Worker ``max_builds`` on a real master and our slave: no more builds run on the slave at
once than it allows, and the others wait their turn (they all run)."""

MASTER_CFG = """\
from buildfarm.master.plugins import schedulers, steps, util, worker

c = BuildmasterConfig = {{}}
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['workers'] = [worker.Worker('bs1', 'pass', max_builds=2)]
c['builders'] = [util.BuilderConfig(name=name, workernames=['bs1'], factory=util.BuildFactory([
    steps.ShellCommand(command=['sleep', '1'])])) for name in ('a', 'b', 'c', 'd')]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['a', 'b', 'c', 'd'])]
"""


def most_at_once(builds: list[dict]) -> int:
    """The most builds whose [started_at, complete_at) intervals overlap."""
    edges = sorted([(b["started_at"], 1) for b in builds] + [(b["complete_at"], -1) for b in builds])
    running = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return most


def test_max_builds_limits_the_builds_running_on_a_slave_at_once(fleet):
    master = fleet.master(config=lambda pb_port, www_port: MASTER_CFG.format(pb_port=pb_port,
                                                                             www_port=www_port))
    fleet.slave(master)
    master.wait_attached("bs1")
    brids = [master.force(name) for name in ("a", "b", "c", "d")]
    requests = [master.wait_request_complete(brid) for brid in brids]
    builds = [master.get(f"/api/v1/builds/{r['buildids'][0]}") for r in requests]
    assert [b["result"] for b in builds] == ["success"] * 4
    assert most_at_once(builds) == 2
