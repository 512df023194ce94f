"""Reproducible installs: the locks in requirements/ cover setup.py, pin one version with hashes,
and the Makefile installs from them with the newest Python >= 3.11 that runs."""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCKS = {name: os.path.join(REPO, "requirements", name + ".txt")
         for name in ("venv", "venv-interop", "tools")}
# name==version [; marker] [\]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)\s*"
                 r"(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$")
MAKE_TIMEOUT_S = 30


def pins(lock: str) -> list[dict]:
    """Each pinned requirement of a lock: name, version, marker and its hashes."""
    found = []
    with open(lock) as f:
        for line in f:
            match = PIN.match(line.rstrip("\n"))
            if match:
                found.append({**match.groupdict(), "hashes": []})
            elif line.strip().startswith("--hash=sha256:") and found:
                found[-1]["hashes"].append(line.strip())
    return found


def pinned_here(lock: str) -> dict[str, str]:
    """The name -> version of each pin whose marker holds for this interpreter."""
    environment = default_environment()
    return {canonicalize_name(pin["name"]): pin["version"] for pin in pins(lock)
            if not pin["marker"] or Requirement(f"x; {pin['marker']}").marker.evaluate(environment)}


def test_every_pin_of_every_lock_has_a_single_version_and_sha256_hashes():
    for name, lock in LOCKS.items():
        found = pins(lock)
        assert found, name
        assert [pin["name"] for pin in found if not pin["hashes"]] == [], name


def test_the_venv_lock_satisfies_every_requirement_of_setup_py_and_its_test_extra():
    locked = pinned_here(LOCKS["venv"])
    unmet = []
    for text in importlib.metadata.requires("buildfarm"):
        requirement = Requirement(text)
        if requirement.marker and not any(requirement.marker.evaluate({**default_environment(), "extra": e})
                                          for e in ("", "test")):
            continue
        version = locked.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            unmet.append(f"{requirement} (locked: {version})")
    assert unmet == [], "setup.py changed without `make lock`"


def test_the_venv_lock_holds_the_packaging_tools_and_py_spy():
    assert {"pip", "setuptools", "wheel", "py-spy"} <= set(pinned_here(LOCKS["venv"]))
    assert {"pip", "setuptools", "wheel", "buildbot", "buildbot-www", "buildbot-worker"} <= set(
        pinned_here(LOCKS["venv-interop"]))
    assert set(pinned_here(LOCKS["tools"])) == {"uv"}


def test_twisted_is_bounded_below_its_next_major_release():
    twisted = next(Requirement(text) for text in importlib.metadata.requires("buildfarm")
                   if canonicalize_name(Requirement(text).name) == "twisted")
    locked = pinned_here(LOCKS["venv"])["twisted"]
    next_major = f"{int(locked.split('.')[0]) + 1}.1.0"
    assert twisted.specifier.contains(locked) and not twisted.specifier.contains(next_major)


def fake_python(directory: str, name: str, body: str) -> None:
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)


def chosen_python(path: str, *arguments: str, environment: dict | None = None) -> str:
    env = {"PATH": path, **(environment or {})}
    done = subprocess.run([shutil.which("make"), "-s", "--no-print-directory", "-C", REPO, "print-python",
                           *arguments], env=env, capture_output=True, text=True, timeout=MAKE_TIMEOUT_S,
                          check=True)
    return done.stdout.strip()


def test_make_takes_the_newest_python3_that_runs_and_is_at_least_3_11(tmp_path):
    here = str(tmp_path)
    # A pyenv shim of a version that is not selected: exists on PATH, fails to run.
    fake_python(here, "python3.14", 'echo "pyenv: python3.14: command not found" >&2; exit 127')
    fake_python(here, "python3.13", f'exec {sys.executable} "$@"')
    fake_python(here, "python3.12", f'exec {sys.executable} "$@"')
    path = f"{here}:/usr/bin:/bin"
    assert chosen_python(path) == "python3.13"
    os.remove(os.path.join(here, "python3.13"))
    assert chosen_python(path) == "python3.12"
    # A python3.X that answers it is older than 3.11 (the check's exit status) is passed over too.
    fake_python(here, "python3.12", "exit 1")
    fake_python(here, "python3.11", f'exec {sys.executable} "$@"')
    assert chosen_python(path) == "python3.11"


def test_python_on_the_command_line_or_in_the_environment_overrides_the_choice(tmp_path):
    fake_python(str(tmp_path), "python3.13", f'exec {sys.executable} "$@"')
    path = f"{tmp_path}:/usr/bin:/bin"
    assert chosen_python(path, "PYTHON=/opt/py/bin/python3.12") == "/opt/py/bin/python3.12"
    assert chosen_python(path, environment={"PYTHON": "python3.11"}) == "python3.11"


def test_the_makefile_installs_every_virtualenv_from_its_lock_with_hashes():
    dry = subprocess.run([shutil.which("make"), "-n", "-B", "-C", REPO, "--no-print-directory",
                          ".venv/.installed", ".venv-interop/.installed", ".venv-tools/.installed"],
                         capture_output=True, text=True, timeout=MAKE_TIMEOUT_S, check=True).stdout
    for lock in ("requirements/venv.txt", "requirements/venv-interop.txt", "requirements/tools.txt"):
        assert f"pip install -q --require-hashes -r {lock}" in dry
    assert "pip install -q --no-deps --no-build-isolation -e ." in dry
    assert "pip install -q -e" not in dry and "buildbot==" not in dry
