"""Two accounts in the sandbox: plans/failover.json restores its ledger in a DR account (a step with
``role_arn`` and ``external_id``) from the copy in that account's own AWS Backup vault, while the
rest of the plan runs in the production account. The sandbox answers each request in the account
its keys belong to (an assumed role's keys belong to the role's account), seeds the DR vault there,
and its Backup emulator restores there; the drill cleans up in both accounts."""

from __future__ import annotations

from pathlib import Path

from drplan.engine.sweep import find_drill_resources
from drplan.pipeline import load_plan
from drplan.sandbox import start_sandbox
from tests.conftest import ROOT
from tests.test_drill import check_evidence, drill_in

DR_ROLE = "arn:aws:iam::210987654321:role/drplan-dr-restore"
RECOVERY = "us-west-2"


def test_the_failover_example_restores_its_ledger_in_the_dr_account_and_leaves_nothing_in_either(
    tmp_path: Path,
) -> None:
    plan, _ = load_plan(ROOT / "plans" / "failover.json")
    with start_sandbox(plan) as box:
        session = box.session(region=RECOVERY)
        result = drill_in(box, plan, tmp_path, session, report_dir=tmp_path / "evidence")
        left_in_dr = find_drill_resources(session, RECOVERY, role_arn=DR_ROLE)
        left_here = find_drill_resources(session, RECOVERY)
        ledger_tables_here = session.client("dynamodb", region=RECOVERY).list_tables()["TableNames"]
    assert result.exit_code == 0, {k: (r.status, r.error) for k, r in result.outcome.records.items()}
    [restored] = result.outcome.records["ledger.restore"].resources
    assert restored.role_arn == DR_ROLE
    assert restored.arn is not None and ":210987654321:table/orders-ledger-drill-" in restored.arn
    assert left_in_dr == [] and left_here == []
    assert not [t for t in ledger_tables_here if t.startswith("orders-ledger")]  # never in production
    report = check_evidence(tmp_path / "evidence", passed=True)
    cleaned = {r["step"]: r for r in report["cleanup"]["resources"]}
    assert cleaned["ledger.restore"]["deleted"] is True and cleaned["ledger.restore"]["role_arn"] == DR_ROLE
    [point] = [p for p in report["recovery_points"] if p["step"] == "ledger.restore"]
    assert ":210987654321:recovery-point:" in point["id"]  # the DR vault's copy, not production's


def test_a_recovery_restores_the_ledger_in_the_dr_account(tmp_path: Path) -> None:
    plan, _ = load_plan(ROOT / "plans" / "failover.json")
    with start_sandbox(plan) as box:
        from drplan.engine.records import RunOptions
        from drplan.runs import RunRequest, run_plan
        from tests.runs import FAST

        options = RunOptions(**{**FAST, **box.run_options()}, approvals=_approve_all())
        session = box.session(region=RECOVERY)
        result = run_plan(RunRequest(plan, "recover", tmp_path, options=options, sandbox=True), session)
        in_dr = box.client("dynamodb", RECOVERY, "210987654321").list_tables()["TableNames"]
        here = box.client("dynamodb", RECOVERY).list_tables()["TableNames"]
    assert result.outcome.records["ledger.restore"].status == "succeeded"
    assert "orders-ledger" in in_dr and "orders-ledger" not in here


def _approve_all():  # type: ignore[no-untyped-def]
    from drplan.actions.base import Approvals

    return Approvals(all=True)
