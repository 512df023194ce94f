"""``make demo``: a master and two slaves under ./demo, a few builds, and where to look.

Uses only the installed CLIs and the HTTP API, exactly as a user would.  The daemons keep
running afterwards; ``make demo-stop`` stops them.
"""

import argparse
import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

BIN = os.path.dirname(sys.executable)
BUILDS = 4
DEADLINE_S = 60.0


def run(*argv: str) -> None:
    result = subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"demo: {' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
    print("  $ " + " ".join(argv) + "\n    " + result.stdout.strip().replace("\n", "\n    "))


def port_or_free(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise SystemExit("demo: no free port")


def api(url: str, method: str = "GET", body=None, auth: tuple[str, str] | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


SLAVEAPI_CFG = """
# Added by the demo: an on-call user for the SlaveAPI (and the web UI), and the SlaveAPI's port.
c['users'] = [util.User('oncall', password={password!r}, scopes=['*'])]
c['slaveapi'] = {{'port': {port}}}
"""


def wait_for(predicate, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while not (value := predicate()):
        if time.monotonic() > deadline:
            sys.exit(f"demo: gave up waiting for {what}")
        time.sleep(0.1)
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--basedir", default="demo")
    basedir = os.path.abspath(parser.parse_args().basedir)
    for name in ("slave1", "slave2", "master"):
        path = os.path.join(basedir, name)
        if os.path.exists(os.path.join(path, "twistd.pid")):
            tool = "buildmaster" if name == "master" else "buildslave"
            subprocess.run([os.path.join(BIN, tool), "stop", path], capture_output=True)
    shutil.rmtree(basedir, ignore_errors=True)
    pb_port, www_port = port_or_free(9989), port_or_free(8010)
    master = os.path.join(basedir, "master")
    print(f"Setting up a master and two slaves under {basedir}:")
    run("buildmaster", "create-master", "--pb-port", str(pb_port), "--www-port", str(www_port), master)
    slaveapi_port, password = port_or_free(8081), secrets.token_urlsafe(9)
    with open(os.path.join(master, "master.cfg"), "a") as f:
        f.write(SLAVEAPI_CFG.format(password=password, port=slaveapi_port))
    run("buildmaster", "start", master)
    for number in (1, 2):
        slave = os.path.join(basedir, f"slave{number}")
        run("buildslave", "create-slave", slave, f"localhost:{pb_port}", f"bs{number}", "pass")
        run("buildslave", "start", slave)
    base = f"http://localhost:{www_port}/api/v1"
    wait_for(lambda: all(s["connected"] for s in api(f"{base}/slaves")["slaves"]), "both slaves")
    print(f"\nForcing {BUILDS} builds of 'runtests':")
    # Distinct properties: identical requests would be collapsed into one build, as in Buildbot.
    oncall = ("oncall", password)
    brids = [api(f"{base}/builders/runtests/force", "POST",
                 {"reason": f"demo build {n + 1}", "properties": {"demo_run": str(n + 1)}}, auth=oncall)
             ["buildrequestid"] for n in range(BUILDS)]
    requests = [wait_for(lambda b=b: (r := api(f"{base}/buildrequests/{b}"))["complete"] and r,
                         f"request {b}") for b in brids]
    print(f"  {'request':>7}  {'build':>5}  {'slave':<6} {'result':<8} seconds")
    for request in requests:
        if not request["buildids"]:
            print(f"  {request['buildrequestid']:>7}  {'-':>5}  {'-':<6} {request['result']:<8} (collapsed)")
            continue
        build = api(f"{base}/builds/{request['buildids'][-1]}")
        took = build["complete_at"] - build["started_at"]
        print(f"  {request['buildrequestid']:>7}  {build['buildid']:>5}  {build['slavename']:<6} "
              f"{build['result']:<8} {took:.2f}")
    first = next(r["buildids"][-1] for r in requests if r["buildids"])
    slaveapi = f"http://localhost:{slaveapi_port}"
    uptime = api(f"{slaveapi}/slaves/bs1/actions/buildslave_uptime?waittime=30", "POST", auth=oncall)
    print(f"\nSlaveAPI: buildslave_uptime of bs1 -> {uptime['data']} (request {uptime['requestid']})")
    print(f"""
Where to look:
  builders          curl {base}/builders
  builds            curl {base}/builds
  one build         curl {base}/builds/{first}
  its log           curl {base}/builds/{first}/steps/0/logs/stdio
  slaves            curl {base}/slaves
  force another     curl -u oncall:{password} -X POST {base}/builders/runtests/force
  web UI            http://localhost:{www_port}/   (log in as oncall / {password})
  SlaveAPI          curl -u oncall:{password} {slaveapi}/slaves/bs1
  reboot history    curl -u oncall:{password} {slaveapi}/results
  master log        {master}/twistd.log
  master config     {master}/master.cfg
The master and slaves keep running; stop them with: make demo-stop""")


if __name__ == "__main__":
    main()
