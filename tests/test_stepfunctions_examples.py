"""The example plans in plans/ that export, executed as Step Functions state machines in moto
against drplan's own run of the same plan: the same AWS state after a recovery, nothing left after
a drill.

The plans are read as shipped; only a check's URL is pointed at a server on this machine (the
plan's host does not exist here), and the sources the plan restores from are seeded.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from tests.moto_jsonata import moto_evaluates_jsonata
from tests.moto_lambda_runs import moto_runs_lambda_code
from tests.runs import run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    TABLE,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    aws_state,
    execute,
    lint_definition,
    records,
    statuses,
)
from tests.test_stepfunctions_checks import Service, deploy_checks_function

PLANS = Path(__file__).resolve().parent.parent / "plans"
AWS = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}


def status_page(port: int) -> dict[str, Any]:
    data = json.loads((PLANS / "status-page.json").read_text())
    ready = data["services"]["incidents"]["steps"][1]
    for where in (ready["with"], ready["drill_with"]):
        where["url"] = where["url"].replace("https://status.example.com", f"http://127.0.0.1:{port}")
        where["url"] = where["url"].replace("https://status-drill.example.com", f"http://127.0.0.1:{port}")
    return dict(data)


def seed_status_page() -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName="status-incidents", **TABLE)
    ddb.put_item(TableName="status-incidents", Item={"pk": {"S": "incident-1"}})
    ddb.create_backup(TableName="status-incidents", BackupName="nightly")


@pytest.fixture
def service() -> Any:
    running = Service(warming=0)
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["recover", "drill"])
def test_status_page_executes_as_drplan_runs_it(mode: str, service: Service) -> None:
    """A recovery leaves what the local recovery leaves; a drill restores the same copy (named
    with the run id), checks it the same way, and leaves nothing (the local engine's run here has
    no cleanup phase: its drill leaves the copy for `drplan drill`'s cleanup)."""
    data = status_page(service.port)
    with mock_aws():
        seed_status_page()
        before = aws_state()
        local = run_plan(data, mode, run_id=RUN_ID)
        expected_status = {k: r.status for k, r in local.outcome.records.items()}
        expected = before if mode == "drill" else aws_state()
    assert expected_status == {"incidents.restore": "succeeded", "incidents.ready": "succeeded"}
    restored = local.outcome.records["incidents.restore"].outputs["table_name"]
    suffix = f"-drill-{RUN_ID}" if mode == "drill" else ""
    assert restored == f"status-incidents-restored{suffix}"
    local_paths = list(service.paths)
    assert local_paths == [f"/api/health?table={restored}"]

    exported = export_plan(build_plan(data), mode, options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    service.reset()
    with mock_aws(config=AWS), moto_runs_lambda_code(), moto_evaluates_jsonata():
        seed_status_page()
        deploy_checks_function(exported.template)
        # The run starts now: `max_age: rpo` judges the backup just taken (a day's RPO).
        created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        described = execute(exported.definition, table=exported.coordination_table, created=created)
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert aws_state() == expected
    doc = records(described)
    assert statuses(doc, exported.sids) == expected_status
    assert doc["steps"][exported.sids["incidents.restore"]]["out"]["table_name"] == restored
    assert service.paths == local_paths
    if mode == "drill":
        assert doc["cleanup"][exported.sids["incidents.restore"]]["status"] == "removed"
