"""``drplan check``: a Nagios/Icinga plugin over the run history.

The history is what real runs write: one sandbox drill of the web shop through the real run path,
and further runs written with the run's own journal writer (:class:`Journal`, the events a run
emits) next to a report derived from that drill's real ``report.json``.
"""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from drplan.cli import cli
from drplan.engine.events import Event
from drplan.engine.journal import JOURNAL, Journal, run_dir
from drplan.engine.records import RunOptions
from drplan.pipeline import load_plan
from drplan.runs import RunRequest, run_plan
from tests.conftest import PLANS

WEBSHOP = PLANS / "webshop.json"
#: One line, the plugin API's: state, text, then the performance data after a `|`.
PLUGIN_LINE = re.compile(r"^DRPLAN (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| [^\n]+)?\n$")


@pytest.fixture(scope="module")
def sandbox_drill(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A state folder holding one sandbox drill of the web shop, run the way the CLI runs it."""
    from drplan.sandbox import start_sandbox

    state = tmp_path_factory.mktemp("state")
    plan, _ = load_plan(WEBSHOP)
    fast = RunOptions(poll_initial=0.05, poll_factor=1.2, poll_max=0.5, backoff_base=0.05, retry_delay=0.05)
    with start_sandbox(plan) as box:
        options = RunOptions(**{**fast.__dict__, **box.run_options()})
        result = run_plan(RunRequest(plan, "drill", state, options=options, sandbox=True), box.session())
    assert result.exit_code == 0, result.final_line()
    report = json.loads((run_dir(state, result.run_id) / "report" / "report.json").read_text())
    return state, report


def check(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["check", *args])
    assert PLUGIN_LINE.match(result.stdout), repr(result.stdout)
    return result


def write_drill(
    state: Path,
    template: dict[str, Any],
    run_id: str,
    *,
    age: timedelta,
    passed: bool = True,
    sandbox: bool = False,
    finished: bool = True,
    cleanup: str = "complete",
    problems: list[str] | None = None,
    plan: str = "webshop",
) -> None:
    """A drill's journal, written by the run's journal writer, and its report.json."""
    started = datetime.now(timezone.utc) - age  # now: a slow suite must not age the history
    directory = run_dir(state, run_id)
    journal = Journal(directory / JOURNAL)
    header = {
        "plan": plan,
        "mode": "drill",
        "started": started.isoformat(timespec="seconds"),
        "sandbox": True if sandbox else None,
        "account": "123456789012",
        "region": "us-east-1",
        "user": "drills@ci",
        "plan_sha256": "0" * 64,
    }
    journal(Event("run.started", run_id, started.timestamp(), data=header))
    journal(
        Event(
            "step.succeeded",
            run_id,
            started.timestamp() + 60,
            "carts.restore",
            {"duration": 60.0, "outputs": {}},
        )
    )
    if finished:
        exit_code = 3 if cleanup == "incomplete" else 0 if passed else 1
        journal(
            Event(
                "run.finished",
                run_id,
                started.timestamp() + 120,
                data={
                    "status": "succeeded" if passed else "failed",
                    "exit_code": exit_code,
                    "passed": passed,
                    "cleanup_failed": ["carts.restore"] if cleanup == "incomplete" else None,
                    "problems": problems,
                },
            )
        )
        report = copy.deepcopy(template)
        report["run"].update(id=run_id, started=started.isoformat(), problems=problems or [])
        report["environment"]["sandbox"] = sandbox
        report["plan"]["name"] = plan
        report["verdict"].update(
            passed=passed, reasons=[] if passed else ["carts.restore failed: RestoreTableToPointInTime: boom"]
        )
        report["cleanup"]["status"] = cleanup
        if cleanup == "incomplete":
            report["cleanup"]["resources"][0]["deleted"] = False
        (directory / "report").mkdir(parents=True)
        (directory / "report" / "report.json").write_text(json.dumps(report), encoding="utf-8")
    journal.close()


@pytest.fixture
def history(tmp_path: Path, sandbox_drill: tuple[Path, dict[str, Any]]) -> Any:
    state = tmp_path / "state"
    state.mkdir()
    _, template = sandbox_drill

    def add(run_id: str, **kwargs: Any) -> Path:
        write_drill(state, template, run_id, **kwargs)
        return state

    return add


def perf(result: Result) -> dict[str, list[str]]:
    data = result.stdout.split(" | ", 1)[1].split()
    return {item.split("=")[0]: item.split("=", 1)[1].split(";") for item in data}


# --- through the real run path ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_sandbox_drill_is_ok_for_sandbox_checks_and_never_for_real_ones(sandbox_drill) -> None:
    state, report = sandbox_drill
    sandbox = check("webshop", "--sandbox", "--state-dir", str(state))
    assert sandbox.exit_code == 0, sandbox.stdout
    assert sandbox.stdout.startswith(f"DRPLAN OK - webshop: last sandbox drill {report['run']['id']} passed")
    values = perf(sandbox)
    assert values["age"][0].endswith("s") and values["age"][2] == "604800"  # --max-age 7d by default
    assert values["rto"][0] == f"{report['objectives']['plan']['rto']['measured_seconds']:g}s"
    assert values["rto"][2] == "7200"  # the plan's RTO objective is the critical value
    assert values["rpo"][2] == "3600"

    real = check("webshop", "--state-dir", str(state))  # sandbox drills never prove a real recovery
    assert real.exit_code == 2
    assert "no drill of this plan" in real.stdout and "sandbox drills do not count" in real.stdout
    by_file = check(str(WEBSHOP), "--sandbox", "--state-dir", str(state))  # PLAN may be the file
    assert by_file.exit_code == 0


# --- states from the history ------------------------------------------------------------------------


def test_a_recent_passing_drill_is_ok_and_ages_into_warning_then_critical(history) -> None:
    state = history("a1a1a1a1", age=timedelta(days=2))
    ok = check("webshop", "--state-dir", str(state), "--max-age", "7d")
    assert ok.exit_code == 0
    assert "last drill a1a1a1a1 passed 2d ago" in ok.stdout
    age = perf(ok)["age"]
    assert abs(int(age[0][:-1]) - 2 * 86400) < 120 and age[1:] == ["", "604800", "0"]

    warn = check("webshop", "--state-dir", str(state), "--max-age", "7d", "--warn-age", "1d")
    assert warn.exit_code == 1 and warn.stdout.startswith("DRPLAN WARNING")
    assert "over the warning age 1d" in warn.stdout and perf(warn)["age"][1] == "86400"

    crit = check("webshop", "--state-dir", str(state), "--max-age", "P1D")
    assert crit.exit_code == 2 and "over the maximum age 1d" in crit.stdout


def test_a_failed_last_drill_is_critical_and_the_age_is_that_of_the_last_pass(history) -> None:
    history("b1b1b1b1", age=timedelta(days=3))
    state = history("b2b2b2b2", age=timedelta(hours=5), passed=False)
    result = check("webshop", "--state-dir", str(state))
    assert result.exit_code == 2
    assert "last drill b2b2b2b2 FAILED 5h ago: carts.restore failed" in result.stdout
    assert abs(int(perf(result)["age"][0][:-1]) - 3 * 86400) < 120  # since the last passing drill


def test_an_incomplete_cleanup_is_critical_even_when_the_drill_passed(history) -> None:
    state = history("c1c1c1c1", age=timedelta(hours=1), cleanup="incomplete")
    result = check("webshop", "--state-dir", str(state))
    assert result.exit_code == 2
    assert "cleanup of c1c1c1c1 incomplete" in result.stdout and "drplan cleanup c1c1c1c1" in result.stdout


def test_a_pass_with_problems_is_a_warning(history) -> None:
    state = history("d1d1d1d1", age=timedelta(hours=1), problems=["output: events.jsonl: disk full"])
    result = check("webshop", "--state-dir", str(state))
    assert result.exit_code == 1
    assert "passed with problems: output: events.jsonl: disk full" in result.stdout


def test_a_drill_that_never_finished_warns_unless_its_lock_is_alive(history) -> None:
    history("e1e1e1e1", age=timedelta(days=1))
    state = history("e2e2e2e2", age=timedelta(minutes=30), finished=False)
    died = check("webshop", "--state-dir", str(state))
    assert died.exit_code == 1 and "e2e2e2e2 never finished" in died.stdout
    assert "drplan resume e2e2e2e2" in died.stdout

    from drplan.engine.lock import RunLock, lock_path

    with RunLock.acquire(
        lock_path(state, "webshop", "123456789012"), run_id="e2e2e2e2", user="ci", mode="drill"
    ):
        running = check("webshop", "--state-dir", str(state))
    assert running.exit_code == 0, running.stdout
    assert "drill e2e2e2e2 in progress" in running.stdout


def test_only_real_drills_of_the_plan_count(history) -> None:
    history("f1f1f1f1", age=timedelta(days=20))
    history("f2f2f2f2", age=timedelta(hours=1), sandbox=True)  # a sandbox drill: not a real one
    state = history("f3f3f3f3", age=timedelta(hours=1), plan="payments")  # another plan
    result = check("webshop", "--state-dir", str(state), "--max-age", "7d")
    assert result.exit_code == 2 and "f1f1f1f1" in result.stdout


def test_no_drill_at_all_is_critical(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    result = check("webshop", "--state-dir", str(tmp_path / "state"))
    assert result.exit_code == 2 and "no drill of this plan" in result.stdout
    assert " | " not in result.stdout  # nothing measured, no performance data


# --- UNKNOWN ----------------------------------------------------------------------------------------


def test_an_unreadable_history_or_wrong_options_are_unknown(tmp_path: Path) -> None:
    missing = check("webshop", "--state-dir", str(tmp_path / "nowhere"))
    assert missing.exit_code == 3 and "no state folder" in missing.stdout
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "runs").write_text("not a folder")
    broken = check("webshop", "--state-dir", str(tmp_path / "state"))
    assert broken.exit_code == 3 and "is not a folder" in broken.stdout
    bad_age = check("webshop", "--max-age", "soon")
    assert bad_age.exit_code == 3 and "'--max-age'" in bad_age.stdout
    backwards = check("webshop", "--max-age", "1d", "--warn-age", "2d")
    assert backwards.exit_code == 3 and "--warn-age must be shorter" in backwards.stdout
    no_plan = check()
    assert no_plan.exit_code == 3
    (tmp_path / "bad.json").write_text("{")
    unreadable_plan = check(str(tmp_path / "bad.json"), "--state-dir", str(tmp_path / "state"))
    assert unreadable_plan.exit_code == 3


def test_the_help_still_exits_0() -> None:
    result = CliRunner().invoke(cli, ["check", "--help"])
    assert result.exit_code == 0 and "--max-age" in result.output


def test_a_journal_written_moments_ago_is_judged_with_the_clock(history) -> None:
    state = history("g1g1g1g1", age=timedelta(seconds=0))
    time.sleep(0.01)
    assert check("webshop", "--state-dir", str(state), "--max-age", "1m").exit_code == 0
