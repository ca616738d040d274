"""``drplan plan`` and ``drplan docs`` through click's CliRunner, with golden files.

Golden files live in tests/golden/: ``<plan>.plan.json`` (``plan --format json``) for every
example plan and ``webshop.plan.md`` (``plan --format markdown``). After an intended change of
the output, regenerate them and review the diff:

    UPDATE_GOLDEN=1 python -m pytest tests/test_review_cli.py tests/test_runbook.py
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drplan.cli import cli, main
from drplan.errors import PlanInvalid
from tests.conftest import EXAMPLE_PLANS, ROOT

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
HAVE_MERMAID = importlib.util.find_spec("drplan.render.mermaid") is not None
NO_DIAGRAM = [] if HAVE_MERMAID else ["--no-diagram"]  # until drplan/render/mermaid.py lands


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        return
    assert path.exists(), f"no golden file {path}; create it with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} changed; if intended, regenerate with UPDATE_GOLDEN=1"
    )


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Invoke drplan from the repository root, so plan paths in outputs are ``plans/<file>``."""
    monkeypatch.chdir(ROOT)
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(cli, list(args))

    return invoke


def write_plan(path: Path, services: dict[str, Any], **top: Any) -> str:
    path.write_text(json.dumps({"drplan": 1, "name": "small", "services": services, **top}), encoding="utf-8")
    return str(path)


def wait(sid: str, estimate: str) -> dict[str, Any]:
    return {"id": sid, "uses": "wait", "with": {"duration": estimate}, "estimate": estimate}


def check(sid: str) -> dict[str, Any]:
    return {
        "id": sid,
        "uses": "check.tcp",
        "with": {"host": "db.example.com", "port": 5432},
        "estimate": "PT10M",
    }


# --- golden files -------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", EXAMPLE_PLANS, ids=lambda p: p.stem)
def test_plan_json_golden(run: Any, plan: Path) -> None:
    result = run("plan", f"plans/{plan.name}", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "met" and "generated_at" not in doc
    check_golden(f"{plan.stem}.plan.json", result.stdout)


def test_plan_markdown_golden(run: Any) -> None:
    result = run("plan", "plans/webshop.json", "--format", "markdown")
    assert result.exit_code == 0, result.output
    check_golden("webshop.plan.md", result.stdout)


# --- the dry run --------------------------------------------------------------------------------


def test_plan_text_lists_steps_in_order_then_objectives(run: Any) -> None:
    result = run("plan", "plans/webshop.json")
    assert result.exit_code == 0, result.output
    out = result.stdout
    # In the order they start; * marks the critical path; references stay symbolic.
    assert out.index("orders-db.restore") < out.index("orders-db.reachable") < out.index("web.approve")
    assert "wave 1  +0m → +25m   * orders-db.restore" in out
    assert "wave 1  +0m → +20m     carts.restore" in out
    assert "host: ${orders-db.restore.endpoint}" in out
    assert "MANUAL - approver: Confirm the restored orders DB" in out  # the action's plain words
    assert "  orders-db  1     27m        45m        met" in out
    assert "  web        1     50m        2h (plan)  met" in out
    assert "  plan             50m        2h         met" in out
    assert out.rstrip().endswith("Verdict: every objective would be met (predicted RTO 50m, objective 2h).")


def test_plan_drill_mode(run: Any) -> None:
    result = run("plan", "plans/webshop.json", "--mode", "drill", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["mode"] == "drill"
    assert doc["drill"]["name_suffix"] == "-drill-<run-id>"
    steps = {s["key"]: s for s in doc["steps"]}
    assert steps["carts.restore"]["params"]["target"] == "shop-carts-restored-drill-<run-id>"
    assert steps["carts.restore"]["drill_changes"] == {"target": "renamed"}
    assert {k["key"]: k["reason"].split(":")[0] for k in doc["skipped"]} == {
        "web.approve": "only in real recoveries",
        "web.scale": "it would change production in a drill (give `drill_with` to redirect it)",
        "web.healthy": "only in real recoveries",
    }
    text = run("plan", "plans/webshop.json", "--mode", "drill").stdout
    assert "Drill names end in -drill-<run-id>; cleanup: always." in text
    assert "name: orders-db.drill.shop.example.com  (drill_with)" in text


def test_plan_exits_1_when_an_objective_would_be_missed(run: Any, tmp_path: Path) -> None:
    # db: 25 + 10 = 35 minutes, over its own 20 and over the plan's 30.
    path = write_plan(
        tmp_path / "slow.json",
        {"db": {"objectives": {"rto": "PT20M"}, "steps": [wait("restore", "PT25M"), check("up")]}},
        objectives={"rto": "PT30M"},
    )
    # validate calls these errors (DR301 service, DR302 plan) ...
    validated = run("validate", path, "--format", "json")
    assert validated.exit_code == 1
    assert {d["code"] for d in json.loads(validated.stdout)["diagnostics"]} == {"DR301", "DR302"}
    # ... and plan still shows the dry run, which explains them, then exits 1.
    result = run("plan", path)
    assert result.exit_code == 1
    assert "wave 2  +25m → +35m  * db.up" in result.stdout
    assert "  db       -     35m        20m        MISSED" in result.stdout
    assert (
        "Verdict: MISSED: 2 objectives would be missed: db (35m > 20m), the plan (35m > 30m)."
        in result.stdout
    )
    doc = json.loads(run("plan", path, "--format", "json").stdout)
    assert (doc["verdict"], doc["missed"]) == ("missed", ["db", "plan"])
    assert run("plan", path, "--format", "markdown").exit_code == 1
    assert run("plan", path, "--mode", "drill").exit_code == 1  # waits and checks run in drills too


def test_plan_exits_0_when_met(run: Any, tmp_path: Path) -> None:
    path = write_plan(
        tmp_path / "ok.json",
        {"db": {"steps": [wait("restore", "PT5M"), check("up")]}},
        objectives={"rto": "PT30M"},
    )
    assert run("plan", path).exit_code == 0


def test_invalid_plan_prints_the_findings_of_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An unknown `after` is an error; with it, the missed objective does not let the dry run through.
    bad = wait("restore", "PT2H") | {"after": ["nowhere"]}
    path = write_plan(
        tmp_path / "bad.json", {"db": {"steps": [bad, check("up")]}}, objectives={"rto": "PT1H"}
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", path])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no dry run
    assert "error DR" in captured.err and "nowhere" in captured.err
    assert "the plan has" in captured.err

    result = CliRunner().invoke(cli, ["plan", path])
    assert isinstance(result.exception, PlanInvalid) and result.exit_code == 1


def test_output_file_and_date(run: Any, tmp_path: Path) -> None:
    out = tmp_path / "dry.json"
    result = run("plan", "plans/status-page.json", "--format", "json", "-o", str(out), "--date")
    assert result.exit_code == 0 and result.stdout == ""
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["generated_at"].endswith("Z")


def test_missing_file_is_a_usage_error(run: Any) -> None:
    assert run("plan", "plans/nope.json").exit_code == 2


# --- docs ---------------------------------------------------------------------------------------


def test_docs_writes_the_runbook(run: Any, tmp_path: Path) -> None:
    out = tmp_path / "runbook.md"
    result = run("docs", "plans/webshop.json", "-o", str(out), *NO_DIAGRAM)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Recovery runbook: webshop\n")
    assert ("```mermaid" in text) is HAVE_MERMAID
    drill = run("docs", "plans/webshop.json", "--mode", "drill", *NO_DIAGRAM).stdout
    assert drill.startswith("# Drill runbook: webshop\n")
    assert "shop-orders-restored-drill-<run-id>" in drill


def test_docs_is_deterministic_unless_dated(run: Any) -> None:
    first = run("docs", "plans/payments-backup.json", *NO_DIAGRAM).stdout
    assert first == run("docs", "plans/payments-backup.json", *NO_DIAGRAM).stdout
    dated = run("docs", "plans/payments-backup.json", "--date", *NO_DIAGRAM).stdout
    assert "Generated by `drplan docs` on 20" in dated and "Generated by `drplan docs` on" not in first


def test_warnings_go_to_stderr_and_the_json_stays_clean(run: Any, tmp_path: Path) -> None:
    # Nothing depends on `db` and it has no check: a warning (DR304), not an error.
    path = write_plan(
        tmp_path / "warn.json", {"db": {"steps": [wait("restore", "PT5M")]}}, objectives={"rto": "PT1H"}
    )
    result = run("plan", path, "--format", "json")
    assert result.exit_code == 0
    assert "warning DR304" in result.stderr
    assert json.loads(result.stdout)["verdict"] == "met"
