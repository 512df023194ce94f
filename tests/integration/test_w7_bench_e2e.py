"""`make bench`'s W7 runs: a real master with 4 real slaves, tasks triggered through
``tasks/new`` and builds forced beside them, a few of each (the full sizes are in docs/benchmarks.md)."""

import pytest

from benchmarks import run, w7_tasks

pytestmark = pytest.mark.integration


def test_w7_runs_tasks_and_builds_on_four_slaves_and_reports_them(tmp_path, monkeypatch):
    monkeypatch.setattr(w7_tasks, "QUICK_COUNT", 12)
    report = tmp_path / "report.md"
    status = run.main(["--workloads", "W7", "--quick", "--runs", "1", "--systems", "buildfarm",
                       "--no-profile", "--workdir", str(tmp_path / "work"), "--output", str(report)])
    assert status == 0
    rows = {line.split(" | ")[1]: line.split(" | ")[2] for line in report.read_text().splitlines()
            if line.startswith("| W7 ")}
    assert set(rows) == {row.measure for row in w7_tasks.rows(quick=True)}
    assert rows["tasks not COMPLETED with exit 0, all runs"] == "0"
    assert rows["builds not successful, all runs"] == "0"
    assert float(rows["tasks/s, 12 one-command tasks on 4 slaves"]) > 0
    assert float(rows["builds/s, 12 `true` builds on the same slaves"]) > 0
    assert float(rows["task ms trigger -> completed, p50"]) > 0
