"""W5 transfer: a 200 MiB FileUpload (slave to master) and FileDownload (master to slave)
with the default block size; MB/s of each step (first seen started to first seen complete,
polled).  Each build first makes the slave's file if it is missing; a warm-up build makes it
and primes the page cache."""

import os

from benchmarks.polling import watch_steps
from benchmarks.systems import Builder, Download, Shell, System, Upload, started
from benchmarks.workload import Row, at_least_times, medians, profile_our_master

ID = "W5"
TITLE = "transfer"
MIB = 1024 * 1024
SIZE_MIB = 200
QUICK_SIZE_MIB = 20


def rows(quick: bool) -> list[Row]:
    size = QUICK_SIZE_MIB if quick else SIZE_MIB
    return [
        Row("upload_mb_per_s", f"upload MB/s, {size} MiB file", True, "73 MB/s", ">= 5x Buildbot",
            at_least_times(5)),
        Row("download_mb_per_s", f"download MB/s, {size} MiB file", True, "", ">= 5x Buildbot",
            at_least_times(5)),
    ]


def one_run(system: System, size: int) -> dict[str, float]:
    _make, (up_started, up_complete), (down_started, down_complete) = watch_steps(
        system, system.force("transfer"), 3)
    return {"upload_mb_per_s": size / 1e6 / (up_complete - up_started),
            "download_mb_per_s": size / 1e6 / (down_complete - down_started)}


def measure(system_class: type[System], root: str, runs: int, quick: bool,
            profile_dir: str | None = None) -> dict[str, float]:
    size = (QUICK_SIZE_MIB if quick else SIZE_MIB) * MIB
    files = os.path.join(root, "files")
    os.makedirs(files)
    source = os.path.join(files, "source.bin")
    with open(source, "wb") as f:
        for _ in range(size // MIB):
            f.write(os.urandom(MIB))
    builder = Builder("transfer", ["s1"], [
        Shell(["sh", "-c", f"test -e big.bin || head -c {size} /dev/urandom > big.bin"]),
        Upload("big.bin", os.path.join(files, "uploaded.bin")),
        Download(source, "downloaded.bin"),
    ])
    with started(system_class, root, ["s1"], [builder], ["s1"]) as system:
        one_run(system, size)  # warm-up
        results = [one_run(system, size) for _ in range(runs)]
        profile_our_master(system, profile_dir, "w5", lambda: one_run(system, size))
    return medians(results)
