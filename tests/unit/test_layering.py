"""The layering of the code base, checked by reading every module's imports.

Each module under ``master/``, ``slave/`` and ``common/`` is parsed with ``ast``; every
``import`` statement counts, at module level, inside a function or under ``TYPE_CHECKING``
alike, since each one is a dependency a reader has to follow.  ``from X import Y`` where
``X.Y`` is a module of ours counts as importing ``X.Y``.

``RULES`` below is the layering of docs/architecture.md, one row per rule: the modules a
rule is about, the modules they must not import, and why.  A second test builds the graph of
the master's packages (``master/<pkg>/...`` is node ``<pkg>``; a top-level module such as
``master/config.py`` is its own node) and fails on any cycle in it.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from typing import NamedTuple

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPS = {"master": "buildfarm.master", "slave": "buildfarm.slave", "common": "buildfarm.common"}

M = "buildfarm.master"


@dataclass(frozen=True)
class Rule:
    """Modules under ``importer`` must import nothing under any of ``forbidden``."""

    importer: str
    forbidden: tuple[str, ...]
    why: str


# fmt: off
RULES = (
    Rule("buildfarm.common",   ("buildfarm.master", "buildfarm.slave"),
         "common is shared by both sides and imports neither"),
    Rule("buildfarm.slave",    ("buildfarm.master",),
         "the slave never imports the master"),
    Rule(f"{M}.db",            (f"{M}.process", f"{M}.www", f"{M}.slaveapi"),
         "db knows nothing of process, www or slaveapi"),
    Rule(f"{M}.pb",            (f"{M}.process", f"{M}.www"),
         "pb knows nothing of process or www"),
    Rule(f"{M}.process",       (f"{M}.www", f"{M}.slaveapi"),
         "process knows nothing of www or slaveapi"),
    Rule(f"{M}.www",           (f"{M}.slaveapi",),
         "www and slaveapi do not import each other"),
    Rule(f"{M}.slaveapi",      (f"{M}.www",),
         "www and slaveapi do not import each other"),
    Rule(f"{M}.http",          (f"{M}.www", f"{M}.slaveapi", f"{M}.process"),
         "http is shared by every HTTP surface and imports none of them"),
    Rule(f"{M}.auth",          (f"{M}.www", f"{M}.slaveapi", f"{M}.process"),
         "auth sits below the HTTP surfaces and the build logic"),
    Rule(f"{M}.reporters",     (f"{M}.www", f"{M}.slaveapi", f"{M}.pb", f"{M}.http"),
         "reporters see builds through the database and the build events, not the surfaces"),
    Rule(f"{M}.cas",           (f"{M}.www", f"{M}.slaveapi", f"{M}.process", f"{M}.tasks"),
         "the content-addressed store sits below the surfaces, the builds and the tasks"),
    Rule(f"{M}.tasks",         (f"{M}.www", f"{M}.slaveapi"),
         "tasks know nothing of the pages or the SlaveAPI"),
    Rule(f"{M}.queue",         (f"{M}.www", f"{M}.slaveapi", f"{M}.process"),
         "the Queue knows nothing of the pages, the SlaveAPI or the builds"),
    Rule(f"{M}.db",            (f"{M}.cas", f"{M}.tasks"),
         "db knows nothing of the store's or the tasks' logic"),
    Rule(f"{M}.steps",         (f"{M}.www", f"{M}.slaveapi", f"{M}.http", f"{M}.db", f"{M}.config"),
         "steps only re-exports the step library under Buildbot's module paths"),
)
# fmt: on


class Import(NamedTuple):
    """One import statement's target, with where it was written."""

    path: str  # relative to the repository, e.g. "master/process/build.py"
    line: int
    target: str  # the dotted module imported, e.g. "buildfarm.master.www.metrics"


def under(name: str, prefix: str) -> bool:
    """Whether the dotted ``name`` is ``prefix`` or lies inside it."""
    return name == prefix or name.startswith(prefix + ".")


def source_modules() -> dict[str, str]:
    """Every module of ours: dotted name -> path relative to the repository."""
    modules = {}
    for folder, dotted in TOPS.items():
        for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, folder)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            if "__init__.py" not in filenames:
                dirnames[:] = []
                continue
            rel_dir = os.path.relpath(dirpath, REPO)
            package = dotted + rel_dir[len(folder):].replace(os.sep, ".")
            for filename in sorted(filenames):
                if not filename.endswith(".py"):
                    continue
                rel = os.path.join(rel_dir, filename)
                if filename == "__init__.py":
                    modules[package] = rel
                else:
                    modules[f"{package}.{filename[:-3]}"] = rel
    return modules


def imports_of(name: str, rel: str, modules: dict[str, str], root: str = REPO) -> list[Import]:
    """Every module of ours that the module ``name`` (file ``root/rel``) imports."""
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=rel)
    package = name if rel.endswith("__init__.py") else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(rel, node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in modules else base
                found.append(Import(rel, node.lineno, target))
    return [i for i in found if i.target.startswith("buildfarm.")]


def all_imports() -> list[tuple[str, Import]]:
    """(importing module, import) for every import of ours in the code base."""
    modules = source_modules()
    result = []
    for name, rel in modules.items():
        result.extend((name, i) for i in imports_of(name, rel, modules))
    return result


def layering_violations(imports) -> list[str]:
    problems = []
    for importer, imp in imports:
        for rule in RULES:
            if not under(importer, rule.importer):
                continue
            for forbidden in rule.forbidden:
                if under(imp.target, forbidden):
                    problems.append(f"{imp.path}:{imp.line}: imports {imp.target} ({rule.why})")
    return problems


def master_node(name: str) -> str | None:
    """The node of the master's package graph that module ``name`` belongs to."""
    if not under(name, M) or name == M:
        return None
    return name[len(M) + 1:].split(".")[0]


def package_graph(imports) -> dict[str, dict[str, Import]]:
    """node -> {node it imports: one import statement that makes the edge}."""
    graph: dict[str, dict[str, Import]] = {}
    for importer, imp in imports:
        src, dst = master_node(importer), master_node(imp.target)
        if src is None:
            continue
        graph.setdefault(src, {})
        if dst is not None and dst != src:
            graph[src].setdefault(dst, imp)
    return graph


def find_cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, {})):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [cycle_in(graph, component) for component in components]


def cycle_in(graph, component: set[str]) -> list[str]:
    """A shortest cycle through the component's first node, as a path of nodes."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, {})):
                if nxt == start:
                    return paths[node] + [start]
                if nxt in component and nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def describe_cycle(graph, cycle: list[str]) -> str:
    steps = []
    for src, dst in zip(cycle, cycle[1:]):
        imp = graph[src][dst]
        steps.append(f"  {src} -> {dst}  ({imp.path}:{imp.line}: imports {imp.target})")
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


# The tests


def test_every_import_respects_the_layering():
    problems = layering_violations(all_imports())
    assert not problems, "imports that break the layering:\n" + "\n".join(problems)


def test_the_masters_packages_import_each_other_without_cycles():
    graph = package_graph(all_imports())
    cycles = find_cycles(graph)
    assert not cycles, "import cycles between the master's packages:\n" + "\n".join(
        describe_cycle(graph, c) for c in cycles
    )


# The checker checks itself, so a passing run means something.


def test_the_checker_sees_every_package_it_rules_on():
    modules = source_modules()
    for rule in RULES:
        assert any(under(m, rule.importer) for m in modules), rule.importer
    assert len(all_imports()) > 500


def write(tmp_path, rel, text):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path.relative_to(tmp_path))


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import buildfarm.master.www.metrics\n", "buildfarm.master.www.metrics"),
        ("from buildfarm.master.www import metrics\n", "buildfarm.master.www.metrics"),
        ("from buildfarm.master.www.metrics import Counter\n", "buildfarm.master.www.metrics"),
        ("def f():\n    from ..www import metrics\n", "buildfarm.master.www.metrics"),
        ("from .. import www\n", "buildfarm.master.www"),
        ("from ..www.metrics import Counter\n", "buildfarm.master.www.metrics"),
    ],
)
def test_the_checker_reads_every_form_of_import(tmp_path, source, expected):
    rel = write(tmp_path, "master/process/build.py", source)
    modules = {
        "buildfarm.master.process.build": rel,
        "buildfarm.master.www": "master/www/__init__.py",
        "buildfarm.master.www.metrics": "master/www/metrics.py",
    }
    found = imports_of("buildfarm.master.process.build", rel, modules, root=str(tmp_path))
    assert [i.target for i in found] == [expected]
    problems = layering_violations([("buildfarm.master.process.build", i) for i in found])
    assert problems and problems[0].startswith(f"{rel}:")
    assert "process knows nothing of www or slaveapi" in problems[0]


def test_the_cycle_finder_names_each_step_of_a_cycle():
    def imp(src, dst):
        return Import(f"master/{src}/x.py", 7, f"{M}.{dst}.y")

    imports = [
        (f"{M}.changes.filter", imp("changes", "schedulers")),
        (f"{M}.schedulers.fingerprint", imp("schedulers", "changes")),
        (f"{M}.schedulers.base", imp("schedulers", "db")),
    ]
    graph = package_graph(imports)
    cycles = find_cycles(graph)
    assert cycles == [["changes", "schedulers", "changes"]]
    text = describe_cycle(graph, cycles[0])
    assert "master/changes/x.py:7: imports buildfarm.master.schedulers.y" in text
    assert "master/schedulers/x.py:7: imports buildfarm.master.changes.y" in text


def test_a_top_level_module_is_its_own_node():
    assert master_node(f"{M}.config") == "config"
    assert master_node(f"{M}.process.builder") == "process"
    assert master_node(M) is None
