"""The pages whose examples are run by tests: every example has a name, and a test asks for it
(``tests/fixtures/docexamples.py``)."""

from __future__ import annotations

import os
import re

import pytest

from tests.fixtures.docexamples import examples

#: Pages whose every fenced block is an example some test runs.
PAGES = ["cas.md", "tasks.md"]

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _asked_for() -> set[tuple[str, str]]:
    asked = set()
    call = re.compile(r"""(?:example|commands)\(\s*["']([\w.-]+\.md)["']\s*,\s*["']([\w.-]+)["']""")
    for folder, _dirs, files in os.walk(TESTS):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    asked.update(call.findall(handle.read()))
    return asked


@pytest.mark.parametrize("page", PAGES)
def test_every_example_has_a_unique_name(page):
    unnamed = [f"docs/{page}:{each.line}" for each in examples(page) if not each.name]
    assert not unnamed, f"fenced blocks without example=<name>: {unnamed}"
    names = [each.name for each in examples(page)]
    assert len(names) == len(set(names)), f"names used twice on docs/{page}: {names}"


@pytest.mark.parametrize("page", PAGES)
def test_a_test_runs_every_example(page):
    asked = _asked_for()
    unrun = [f"docs/{page}:{each.line} ({each.name})" for each in examples(page)
             if each.name and (page, each.name) not in asked]
    assert not unrun, f"examples no test asks for: {unrun}"
