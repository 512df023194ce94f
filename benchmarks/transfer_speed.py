"""Transfer speed: a 200 MB FileUpload and FileDownload through a buildfarm master,
with a buildfarm slave and with a stock buildbot-worker 4.3, each the median of 3 runs.

    .venv/bin/python benchmarks/transfer_speed.py [--mb 200] [--runs 3]

The time of a transfer is its step's duration as the master recorded it (started_at to
complete_at), so process start-up and polling are not counted.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from fixtures.daemons import Fleet  # noqa: E402

CONFIG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('w1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['builders'] = [
    util.BuilderConfig(name='transfer', slavenames=['w1'], factory=util.BuildFactory([
        steps.ShellCommand(command=['sh', '-c', 'test -e big.bin || head -c {size} /dev/urandom > big.bin'],
                           logEnviron=False),
        steps.FileUpload(workersrc='big.bin', masterdest='uploaded.bin'),
        steps.FileDownload(mastersrc='source.bin', workerdest='downloaded.bin'),
    ])),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['transfer'])]
c['www'] = {{'port': {www_port}}}
"""


def step_seconds(master) -> tuple[float, float]:
    """One build: the seconds its upload step and its download step took."""
    request = master.wait_request_complete(master.force("transfer"), deadline_s=600)
    assert request["result"] == "success", request
    steps = master.get(f"/api/v1/builds/{request['buildids'][-1]}")["steps"]
    return tuple(s["complete_at"] - s["started_at"] for s in steps[1:3])


def measure(kind: str, size: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as root:
        fleet = Fleet(root)
        try:
            with open(os.path.join(root, "source.bin"), "wb") as f:
                f.write(os.urandom(size))
            master = fleet.master(config=lambda pb, www: CONFIG.format(pb_port=pb, www_port=www, size=size))
            os.replace(os.path.join(root, "source.bin"), os.path.join(master.basedir, "source.bin"))
            (fleet.stock_worker if kind == "stock" else fleet.slave)(master, "w1")
            master.wait_attached("w1")
            step_seconds(master)  # warm-up: makes the file, primes the page cache
            timings = [step_seconds(master) for _ in range(runs)]
            mb = size / 1e6
            return {"upload": mb / statistics.median(t[0] for t in timings),
                    "download": mb / statistics.median(t[1] for t in timings)}
        finally:
            fleet.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.mb * 1024 * 1024
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}")
    print(f"{'slave':<28} {'upload MB/s':>12} {'download MB/s':>14}   ({args.mb} MiB, median of {args.runs})")
    for kind, label in (("ours", "buildfarm buildslave"), ("stock", "stock buildbot-worker 4.3")):
        speeds = measure(kind, size, args.runs)
        print(f"{label:<28} {speeds['upload']:>12.1f} {speeds['download']:>14.1f}")


if __name__ == "__main__":
    main()
