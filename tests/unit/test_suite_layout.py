"""The test suite's own layout: pytest imports test files by their base name (the test folders
are not packages), so two files of one name in different folders break collection of the whole
run ("import file mismatch") -- as tests/unit/test_task_pages.py and a browser test of the same
name once did in CI."""

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_no_two_test_files_share_a_name():
    by_name = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        by_name[path.name].append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}
