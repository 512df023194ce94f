"""The seams between the master and its packages, checked across the whole tree: every view
of the master a package declares (an ``I...Master`` in its ``interfaces.py``, and the status
module's ``IStatusSource``) is declared by the real ``BuildMaster`` and verified on one, no
production module probes the master with ``getattr``/``hasattr``, and no test builds a master
from a ``SimpleNamespace``."""

import ast
import importlib
import inspect
import os

import pytest_twisted
from zope.interface.interface import InterfaceClass
from zope.interface.verify import verifyObject

from buildfarm.master.service import BuildMaster
from buildfarm.master.status import IStatusSource
from fixtures.memorymaster import start_memory_master

MASTER_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "master")
PROBES = {"getattr", "hasattr"}


def views_of_the_master() -> list[InterfaceClass]:
    """Every ``I...Master`` interface of a package's ``interfaces.py`` (not the views of the
    BotMaster), and ``IStatusSource``."""
    found = [IStatusSource]
    for root, dirs, files in os.walk(MASTER_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if "interfaces.py" not in files:
            continue
        package = os.path.relpath(root, MASTER_DIR).replace(os.sep, ".")
        module = importlib.import_module(f"buildfarm.master.{package}.interfaces")
        found += [obj for name, obj in inspect.getmembers(module)
                  if isinstance(obj, InterfaceClass) and name.endswith("Master")
                  and not name.endswith("BotMaster")
                  and obj.__module__ == module.__name__]
    return found


def test_every_package_view_of_the_master_is_found():
    names = {view.__name__ for view in views_of_the_master()}
    assert {"IStatusSource", "IHTTPMaster", "IWebMaster", "IPBMaster", "IProcessMaster",
            "ISchedulerMaster", "ISlaveAPIMaster"} <= names


def test_the_buildmaster_declares_every_view_of_it():
    undeclared = [view.__name__ for view in views_of_the_master() if not view.implementedBy(BuildMaster)]
    assert undeclared == []


@pytest_twisted.ensureDeferred
async def test_a_real_master_provides_every_view_of_it(tmp_path):
    master = await start_memory_master(tmp_path)
    try:
        for view in views_of_the_master():
            assert verifyObject(view, master), view.__name__
    finally:
        await master.stopService()


def probes_of_the_master(source: str) -> list[int]:
    """Lines of ``getattr(x, ...)`` / ``hasattr(x, ...)`` calls whose object is a master:
    ``master``, ``self.master``, ``x.master``, or an attribute of one (``self.master.config``)."""

    def names_a_master(node: ast.AST) -> bool:
        while isinstance(node, ast.Attribute):
            if node.attr in ("master", "_master"):
                return True
            node = node.value
        return isinstance(node, ast.Name) and node.id in ("master", "_master")

    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PROBES
            and node.args and names_a_master(node.args[0])]


def test_the_probe_finder_sees_each_form():
    source = ("getattr(master, 'a', None)\nhasattr(self.master, 'b')\n"
              "getattr(self.master.config, 'c', None)\ngetattr(run.build.master.db, 'd')\n"
              "getattr(transport, 'e', None)\n")
    assert probes_of_the_master(source) == [1, 2, 3, 4]


def found_in_tree(top: str, finder) -> list[str]:
    """``path:line`` of every place ``finder(source)`` names in the ``.py`` files under ``top``."""
    found = []
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    lines = finder(f.read())
                found += [f"{os.path.relpath(path, top)}:{line}" for line in lines]
    return found


def test_no_production_module_probes_the_master():
    assert found_in_tree(MASTER_DIR, probes_of_the_master) == []


TESTS_DIR = os.path.join(os.path.dirname(__file__), "..")


def namespace_masters(source: str) -> list[int]:
    """Lines where a ``SimpleNamespace(...)`` becomes a master: assigned to a name or attribute
    called ``*master*``, or passed as ``master=``."""

    def is_namespace(node) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
                and (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) == "SimpleNamespace")

    def named_master(target) -> bool:
        name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
        return "master" in name.lower()

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and is_namespace(node.value) and any(map(named_master, node.targets)):
            lines.append(node.lineno)
        elif (isinstance(node, ast.keyword) and "master" in (node.arg or "").lower()
              and is_namespace(node.value)):
            lines.append(node.value.lineno)
    return lines


def test_the_namespace_finder_sees_each_form():
    source = ("master = SimpleNamespace(db=None)\nself.master = types.SimpleNamespace()\n"
              "Build(master=SimpleNamespace())\nbuild = SimpleNamespace(stopped=None)\n")
    assert namespace_masters(source) == [1, 2, 3]


def test_no_test_builds_a_master_from_a_simple_namespace():
    assert found_in_tree(TESTS_DIR, namespace_masters) == []
