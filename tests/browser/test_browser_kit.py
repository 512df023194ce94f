"""The browser tests themselves keep to what works under the pages' CSP."""

import ast
import os

BROWSER_TESTS = os.path.dirname(os.path.abspath(__file__))
# Playwright evaluates these predicates with eval(), from the page's own timers when it polls:
# the pages' CSP (no 'unsafe-eval') refuses that.  Locator waits and expect() evaluate nothing.
EVAL_WAITS = {"wait_for_function"}


def eval_waits_in(path: str) -> list[str]:
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    return [f"{os.path.basename(path)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in EVAL_WAITS]


def test_no_browser_test_waits_on_a_string_evaluated_in_the_page():
    files = sorted(os.path.join(BROWSER_TESTS, name) for name in os.listdir(BROWSER_TESTS)
                   if name.endswith(".py"))
    assert files
    assert [where for path in files for where in eval_waits_in(path)] == []
