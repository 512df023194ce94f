"""W6 content-addressed store: archive and download of a tree of 10,000 files and 1 GiB (mixed
sizes) through the Isolate client against a real master with c['cas'] on loopback, cold and
warm, in MB/s and files/s; and the same job done by hand (``sha1sum`` of every file, ``cp -r``
into a target) as the local limit, with our ratio to it.

- cold archive: an empty namespace on the master and an empty digest cache (every file hashed,
  compressed and uploaded);
- warm (null) archive: the same tree again, digest cache and store warm: nothing is hashed or
  uploaded;
- cold download: an empty local cache (every file fetched, checked, written, then hardlinked);
- warm download: the same cache, a new target (nothing fetched: the tree is mapped).

Each operation runs in a driver process of its own (``python -m benchmarks.w6_cas drive ...``)
that times the library call alone (``isolateclient.archive`` / ``download_tree``): the client's
start-up (importing Twisted, ~0.3 s) is a constant per command, shown apart as the CLI's
wall time.  Only buildfarm has a store: the Buildbot 4.3 column shows n/a.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time

from benchmarks.workload import Row, at_least, medians

ID = "W6"
TITLE = "CAS archive/download"
MIB = 1024 * 1024
FILES, TOTAL_BYTES = 10_000, 1024 * MIB
QUICK_FILES, QUICK_TOTAL_BYTES = 2_000, 64 * MIB
BIG_FILES_SHARE = 0.01  # 1% of the files hold ~90% of the bytes
SMALL_FILES_BYTES_SHARE = 0.1
WARM_ARCHIVE_TARGET_FPS = 50_000
WARM_DOWNLOAD_TARGET_FPS = 20_000
TOKEN = "w6-bench-token"
REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(REPO_DIR, ".venv", "bin", "python")
CLI = os.path.join(REPO_DIR, ".venv", "bin", "isolateserver")
CONFIG = """\
from buildfarm.master.auth.users import User
c = BuildmasterConfig = {{}}
c['slaves'] = []
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['cas'] = {{'backend': 'file', 'upload_secret': 'w6-secret'}}
c['users'] = [User('bench', tokens=[{token!r}], scopes=['*'])]
"""


def rows(quick: bool) -> list[Row]:
    files, size = (QUICK_FILES, QUICK_TOTAL_BYTES) if quick else (FILES, TOTAL_BYTES)
    tree = f"{files:,} files, {size // MIB} MiB"
    return [
        Row("cold_archive_mb_s", f"cold archive MB/s ({tree})", True),
        Row("cold_archive_fps", "cold archive files/s", True),
        Row("warm_archive_fps", "warm (null) archive files/s", True, "",
            f">= {WARM_ARCHIVE_TARGET_FPS:,}", at_least(WARM_ARCHIVE_TARGET_FPS), digits=0),
        Row("cold_download_mb_s", "cold download MB/s (empty cache)", True),
        Row("cold_download_fps", "cold download files/s", True),
        Row("warm_download_fps", "warm download files/s (all in cache)", True, "",
            f">= {WARM_DOWNLOAD_TARGET_FPS:,}", at_least(WARM_DOWNLOAD_TARGET_FPS), digits=0),
        Row("hand_sha1sum_mb_s", "by hand: sha1sum of every file, MB/s", True),
        Row("hand_cp_mb_s", "by hand: cp -r into a target, MB/s", True),
        Row("cold_archive_vs_hand", "cold archive / sha1sum (x of the local limit)", True, digits=2),
        Row("warm_archive_vs_hand", "warm archive / sha1sum, files/s (x)", True, digits=2),
        Row("cold_download_vs_hand", "cold download / cp -r (x of the local limit)", True, digits=2),
        Row("warm_download_vs_hand", "warm download / cp -r, files/s (x)", True, digits=2),
        Row("cli_warm_archive_s", "CLI wall s, warm archive (start-up included)", False, digits=2),
        Row("cli_warm_download_s", "CLI wall s, warm download (start-up included)", False, digits=2),
    ]


NOTE = ("W6: only buildfarm has a content-addressed store (Buildbot 4.3: n/a). The local limit is "
        "`sha1sum` of every file (archive) and `cp -r` (download) on the same tree, from the page cache.")


def make_tree(root: str, files: int, total: int, seed: int = 6) -> None:
    """``files`` files under ``root`` in 100 directories, ``total`` bytes: 1% big files with
    most of the bytes, the rest small (under 32 KiB); content half random, half repeated text,
    so zlib has something to do."""
    rng = random.Random(seed)
    big = max(1, int(files * BIG_FILES_SHARE))
    small_bytes = int(total * SMALL_FILES_BYTES_SHARE)
    sizes = [rng.randint(4, 2 * small_bytes // (files - big)) for _ in range(files - big)]
    big_size = (total - sum(sizes)) // big
    sizes += [big_size] * big
    rng.shuffle(sizes)
    block = os.urandom(MIB)
    text = (b"the quick brown fox jumps over the lazy dog 0123456789\n" * 20000)[:MIB]
    for i, size in enumerate(sizes):
        directory = os.path.join(root, f"d{i % 100:02d}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"f{i:05d}.bin"), "wb") as f:
            f.write(i.to_bytes(4, "big"))  # distinct content
            left = size - 4
            while left > 0:
                offset = rng.randrange(MIB // 2)
                chunk = (block if rng.random() < 0.5 else text)[offset:offset + min(left, MIB // 2)]
                f.write(chunk)
                left -= len(chunk)


def tree_bytes(root: str) -> tuple[int, int]:
    count = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            count += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return count, size


def timed(argv: list[str], **kwargs) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.monotonic() - started


def drive(args: list[str]) -> dict:
    """Run one timed operation in a driver process; its JSON figures."""
    out = subprocess.run([PYTHON, "-m", "benchmarks.w6_cas", "drive", *args], check=True, cwd=REPO_DIR,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_run(url: str, tree: str, work: str, run: int, count: int, size: int) -> dict[str, float]:
    namespace = f"w6run{run}-{time.time_ns()}-gzip"  # a fresh, empty namespace per run
    digests = os.path.join(work, f"digests-{run}.json")
    cache = os.path.join(work, f"cache-{run}")
    common = [url, namespace, TOKEN]
    cold_archive = drive(["archive", *common, tree, digests])
    warm_archive = drive(["archive", *common, tree, digests])
    digest = warm_archive["digest"]
    cold_download = drive(["download", *common, digest, os.path.join(work, f"out-{run}-cold"), cache])
    warm_download = drive(["download", *common, digest, os.path.join(work, f"out-{run}-warm"), cache])
    assert warm_archive["uploaded"] == 0 and warm_download["downloaded"] == 0, (warm_archive, warm_download)
    env = {**os.environ, "ISOLATE_TOKEN": TOKEN}
    cli_archive = timed([CLI, "archive", "-I", url, "--namespace", namespace, "--digest-cache", digests,
                         tree], env=env, stderr=subprocess.DEVNULL)
    cli_download = timed([CLI, "download", "-I", url, "--namespace", namespace, "-s", digest, "-t",
                          os.path.join(work, f"out-{run}-cli"), "--cache", cache], env=env,
                         stderr=subprocess.DEVNULL)
    hand_hash = timed(["sh", "-c", "find . -type f -print0 | xargs -0 sha1sum"], cwd=tree)
    copy = os.path.join(work, f"copy-{run}")
    hand_copy = timed(["cp", "-r", tree, copy])
    for path in (copy, os.path.join(work, f"out-{run}-cold"), os.path.join(work, f"out-{run}-warm"),
                 os.path.join(work, f"out-{run}-cli"), cache):
        _remove(path)
    mb = size / 1e6
    return {
        "cold_archive_mb_s": mb / cold_archive["seconds"],
        "cold_archive_fps": count / cold_archive["seconds"],
        "warm_archive_fps": count / warm_archive["seconds"],
        "cold_download_mb_s": mb / cold_download["seconds"],
        "cold_download_fps": count / cold_download["seconds"],
        "warm_download_fps": count / warm_download["seconds"],
        "hand_sha1sum_mb_s": mb / hand_hash, "hand_cp_mb_s": mb / hand_copy,
        "cold_archive_vs_hand": hand_hash / cold_archive["seconds"],
        "warm_archive_vs_hand": hand_hash / warm_archive["seconds"],
        "cold_download_vs_hand": hand_copy / cold_download["seconds"],
        "warm_download_vs_hand": hand_copy / warm_download["seconds"],
        "cli_warm_archive_s": cli_archive, "cli_warm_download_s": cli_download,
    }


def _remove(path: str) -> None:
    if os.path.exists(path):
        from buildfarm.common.cascache import remove_tree
        remove_tree(path)


def measure(system_class, root: str, runs: int, quick: bool,
            profile_dir: str | None = None) -> dict[str, float]:
    keys = [row.key for row in rows(quick)]
    if system_class.label != "buildfarm":
        return {key: float("nan") for key in keys}
    from fixtures.daemons import Fleet, wait_for
    files, total = (QUICK_FILES, QUICK_TOTAL_BYTES) if quick else (FILES, TOTAL_BYTES)
    tree, work = os.path.join(root, "tree"), os.path.join(root, "work")
    os.makedirs(work)
    make_tree(tree, files, total)
    count, size = tree_bytes(tree)
    fleet = Fleet(os.path.join(root, "daemons"))
    os.makedirs(fleet.root)
    try:
        master = fleet.master(config=lambda pb_port, www_port: CONFIG.format(
            pb_port=pb_port, www_port=www_port, token=TOKEN))
        wait_for(lambda: master.request("POST", "/_ah/api/isolateservice/v1/server_details", {})[0] == 200,
                 "the master's web port")
        one_run(master.url, tree, work, 0, count, size)  # warm-up (and the page cache)
        results = [one_run(master.url, tree, work, run, count, size) for run in range(1, runs + 1)]
        if profile_dir:
            _profile(master, tree, work, profile_dir)
    finally:
        fleet.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return medians(results)


def _profile(master, tree: str, work: str, profile_dir: str) -> None:
    """py-spy records of the client (a warm archive, a warm download) and of the master during
    a cold archive, for where the time goes."""
    from benchmarks import profiling
    from fixtures.daemons import read_pid
    namespace = f"w6profile-{time.time_ns()}-gzip"
    common = [master.url, namespace, TOKEN]
    digests, cache = os.path.join(work, "p-digests.json"), os.path.join(work, "p-cache")
    raw = os.path.join(profile_dir, "w6-buildfarm-master.txt")
    with profiling.recording(read_pid(master.basedir), raw):
        digest = drive(["archive", *common, tree, digests])["digest"]
    print(profiling.write_summary(raw, raw.replace(".txt", "-summary.txt")), flush=True)
    drive(["download", *common, digest, os.path.join(work, "p-out1"), cache])
    for name, argv in (("w6-client-warm-archive", ["archive", *common, tree, digests]),
                       ("w6-client-warm-download", ["download", *common, digest,
                                                     os.path.join(work, "p-out2"), cache])):
        raw = os.path.join(profile_dir, f"{name}.txt")
        subprocess.run([profiling.PY_SPY, "record", "--rate", "1000", "--format", "raw", "--output", raw,
                        "--", PYTHON, "-m", "benchmarks.w6_cas", "drive", *argv, "--repeat", "20"],
                       check=True, cwd=REPO_DIR, capture_output=True)
        print(profiling.write_summary(raw, raw.replace(".txt", "-summary.txt")), flush=True)


# -- the driver process ------------------------------------------------------------------------


def _drive_main(argv: list[str]) -> None:
    from twisted.internet import defer, task

    from buildfarm.common import cascache, isolateclient

    repeat = 1
    if "--repeat" in argv:
        at = argv.index("--repeat")
        repeat = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    op, url, namespace, token, *rest = argv

    async def body(reactor):
        reactor.getThreadPool().adjustPoolsize(maxthreads=8)
        server = isolateclient.IsolateServer(url, namespace, reactor=reactor,
                                             headers={"Authorization": f"Bearer {token}"})
        try:
            for index in range(repeat):
                started = time.monotonic()
                if op == "archive":
                    tree, digests = rest
                    result = await isolateclient.archive(server, [tree], digest_cache_path=digests,
                                                         reactor=reactor)
                    figures = {"digest": result.items[0][0], "uploaded": result.stats.uploaded}
                else:
                    digest, target, cache_dir = rest
                    target = target if repeat == 1 else f"{target}-{index}"
                    cache = await defer.ensureDeferred(_open_cache(reactor, cache_dir, namespace))
                    result = await isolateclient.download_tree(server, digest, target, cache, reactor=reactor)
                    figures = {"downloaded": result.stats.downloaded}
                    if repeat > 1:
                        cascache.remove_tree(target)
                figures["seconds"] = time.monotonic() - started
                figures["stats"] = str(result.stats)
        finally:
            await server.close()
        print(json.dumps(figures), flush=True)

    async def _open_cache(reactor, cache_dir, namespace):
        from twisted.internet import threads
        algo = isolateclient.algo_for_namespace(namespace)
        return await threads.deferToThread(cascache.DiskCache, cache_dir,
                                           cascache.CachePolicies(min_free_space=0), reactor, algo)

    task.react(lambda reactor: defer.ensureDeferred(body(reactor)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["drive"]:
        _drive_main(sys.argv[2:])
