"""``make demo``'s script, run for real, so the README's first command keeps working."""

import os
import subprocess
import sys

import pytest

from fixtures.daemons import REPO_DIR, run_cli


# The demo takes 9989, 8010 and 8081 when they are free: not while a fixed-port test runs.
@pytest.mark.usefixtures("fixed_ports")
def test_demo_runs_four_builds_and_says_where_to_look(tmp_path):
    basedir = str(tmp_path / "demo")
    try:
        result = subprocess.run([sys.executable, os.path.join(REPO_DIR, "contrib", "demo.py"),
                                 "--basedir", basedir], capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(" success ") == 4
        assert "Where to look:" in result.stdout and "/api/v1/builds/" in result.stdout
    finally:
        run_cli("buildslave", "stop", os.path.join(basedir, "slave1"))
        run_cli("buildslave", "stop", os.path.join(basedir, "slave2"))
        run_cli("buildmaster", "stop", os.path.join(basedir, "master"))
