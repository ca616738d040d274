"""Two plans written by a new user from the documentation only (tests/newuser/).

For each plan: `validate` is clean, `plan`, `graph --format dot` and `docs` succeed (both plans are
predicted to meet every objective, so the expected exit code is 0), and a sandbox drill passes,
leaves nothing behind and says so in its evidence (docs/drills.md, "Evidence").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from drplan.cli import cli

NEWUSER = Path(__file__).parent / "newuser"
PLANS = {
    "hospital-records": NEWUSER / "hospital-records.json",
    "parcel-tracking": NEWUSER / "parcel-tracking.json",
}
IDS = list(PLANS)


def _invoke(*args: str):
    result = CliRunner().invoke(cli, list(args))
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"drplan {' '.join(args)} raised {result.exception!r}\n{output}"
        ) from result.exception
    return result, output


@pytest.mark.parametrize("name", IDS)
def test_validate(name: str) -> None:
    result, output = _invoke("validate", str(PLANS[name]))
    assert result.exit_code == 0, output
    assert "0 errors" in output
    assert "(all valid)" in output


@pytest.mark.parametrize("name", IDS)
def test_plan_graph_docs(name: str, tmp_path: Path) -> None:
    path = str(PLANS[name])

    result, output = _invoke("plan", path)
    assert result.exit_code == 0, output
    assert "Verdict: every objective would be met" in output

    result, output = _invoke("plan", path, "--mode", "drill")
    assert result.exit_code == 0, output
    assert "(drill: renamed)" in output
    assert "(drill_with)" in output

    out = tmp_path / "plan.json"
    result, output = _invoke("plan", path, "--format", "json", "-o", str(out))
    assert result.exit_code == 0, output
    dry_run = json.loads(out.read_text(encoding="utf-8"))
    assert dry_run["plan_rto"]["status"] == "met"

    result, output = _invoke("graph", path, "--format", "dot")
    assert result.exit_code == 0, output
    assert "digraph" in output

    runbook = tmp_path / "RUNBOOK.md"
    result, output = _invoke("docs", path, "-o", str(runbook))
    assert result.exit_code == 0, output
    text = runbook.read_text(encoding="utf-8")
    assert text.startswith("# Recovery runbook")
    assert "## Contacts" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", IDS)
def test_sandbox_drill(name: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cmd = [
        sys.executable,
        "-m",
        "drplan",
        "drill",
        str(PLANS[name]),
        "--sandbox",
        "--yes",
        "--state-dir",
        str(state),
    ]
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        partial = exc.stderr or b""
        partial = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        pytest.fail(f"the sandbox drill did not finish within 300 s; last output:\n{partial[-3000:]}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "PASSED" in output

    reports = sorted(state.glob("runs/*/report/report.json"))
    assert len(reports) == 1, reports
    report = json.loads(reports[0].read_text(encoding="utf-8"))
    assert report["kind"] == "drplan.drill-report"
    assert report["verdict"]["passed"] is True, report["verdict"]
    assert report["run"]["status"] == "succeeded"
    assert report["run"]["exit_code"] == 0
    assert report["environment"]["sandbox"] is True
    assert report["objectives"]["plan"]["rto"]["met"] is True
    # drills.md: "the plan's [RPO] is the largest of all" restores; it must not be missed.
    assert report["objectives"]["plan"]["rpo"]["met"] is not False, report["objectives"]["plan"]
    assert report["recovery_points"], "a drill of these plans restores something"
    assert all(point["met"] for point in report["recovery_points"]), report["recovery_points"]

    cleanup = report["cleanup"]
    assert cleanup["status"] == "complete", cleanup
    assert cleanup["failed_steps"] == []
    assert cleanup["resources"], "the drill created nothing, so it proved nothing"
    left = [r for r in cleanup["resources"] if not r["deleted"] or not r["verified_gone_at"]]
    assert left == [], left
