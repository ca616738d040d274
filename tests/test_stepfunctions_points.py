"""The recovery point of an execution that restores a named backup or snapshot, or a point in time:
read from the execution's history into the evidence, the same as drplan's own run records it, so
the RPO of a recovery run by Step Functions is measured like a local one.

Each case seeds moto, runs the plan locally (tests/runs.py) for the recovery point it records, then
seeds a fresh moto the same way, executes the exported state machine through ``drplan start``
(which follows the history and writes the report) and compares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from drplan.actions.base import handle_recovery_point
from tests.runs import plan_data, run_plan
from tests.test_sfn_run import REGION, SFN, create_machine, invoke, report_of, start, write_plan


@pytest.fixture(autouse=True)
def _empty_aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    empty = tmp_path / "aws-config"
    empty.write_text("", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    yield


def table(pitr: bool = False) -> str:
    """The source table ``orders`` with a row and a backup (the backup's ARN)."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="orders", Item={"pk": {"S": "row-1"}})
    if pitr:
        ddb.update_continuous_backups(
            TableName="orders", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    return str(
        ddb.create_backup(TableName="orders", BackupName="orders-nightly")["BackupDetails"]["BackupArn"]
    )


def database() -> str:
    rds = boto3.client("rds", region_name=REGION)
    rds.create_db_instance(
        DBInstanceIdentifier="orders-db",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="admin1",
        MasterUserPassword="password123",
    )
    rds.create_db_snapshot(DBInstanceIdentifier="orders-db", DBSnapshotIdentifier="orders-db-nightly")
    return "orders-db-nightly"


def one_restore(uses: str, params: dict[str, Any]) -> dict[str, Any]:
    return plan_data(
        {"db": {"steps": [{"id": "restore", "uses": uses, "with": params, "estimate": "PT5M"}]}},
        name="points",
    )


CASES: dict[str, tuple[Callable[[], str], Callable[[str], dict[str, Any]]]] = {
    "named DynamoDB backup": (
        table,
        lambda arn: one_restore(
            "aws.dynamodb.restore_backup",
            {"source_table": "orders", "target": "orders-restored", "backup": arn},
        ),
    ),
    "latest point in time": (
        lambda: table(pitr=True),
        lambda _: one_restore(
            "aws.dynamodb.restore_point_in_time", {"source_table": "orders", "target": "orders-restored"}
        ),
    ),
    "named DB snapshot": (
        database,
        lambda name: one_restore(
            "aws.rds.restore_snapshot",
            {"source_instance": "orders-db", "target": "orders-db-restored", "snapshot": name},
        ),
    ),
}


def created_at(case: str, named: str) -> datetime | None:
    """When the named backup or snapshot was made, as AWS says (None for a point in time)."""
    if case == "named DynamoDB backup":
        ddb = boto3.client("dynamodb", region_name=REGION)
        return ddb.describe_backup(BackupArn=named)["BackupDescription"]["BackupDetails"][
            "BackupCreationDateTime"
        ]
    if case == "named DB snapshot":
        rds = boto3.client("rds", region_name=REGION)
        return rds.describe_db_snapshots(DBSnapshotIdentifier=named)["DBSnapshots"][0]["SnapshotCreateTime"]
    return None


@pytest.mark.parametrize("case", list(CASES))
def test_the_execution_records_the_recovery_point_the_local_run_records(case: str, tmp_path: Path) -> None:
    """Both name the backup or snapshot the plan names and give its creation time; a point in time
    is ``SOURCE@TIME`` at the latest restorable time."""
    seed, plan_for = CASES[case]
    with mock_aws():
        named = seed()
        local = run_plan(plan_for(named))
        point = handle_recovery_point(local.record("db.restore").handle)
        made = created_at(case, named)
    assert local.record("db.restore").status == "succeeded" and point is not None

    state = tmp_path / "state"
    with mock_aws(config=SFN):
        named_here = seed()  # the same sources again: a backup ARN has the time in it, so it differs
        plan = write_plan(tmp_path, plan_for(named_here))
        made_here = created_at(case, named_here)
        machine = create_machine(plan, "recover")
        result = invoke(
            start,
            [str(plan), "--engine", "stepfunctions", "--state-machine", machine, "--yes", "--poll-interval",
             "0.2", "--run-id", "0a1b2c3d", "--state-dir", str(state)],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    (recorded,) = report_of(state, "0a1b2c3d")["recovery_points"]
    assert recorded["step"] == "db.restore"
    created = datetime.fromisoformat(recorded["created"])
    if made is None:  # a point in time: the latest restorable time, which moto gives as "now"
        assert point.id == f"orders@{point.created.isoformat()}"
        assert recorded["id"] == f"orders@{created.isoformat()}"
        assert 0 <= (created - point.created).total_seconds() < 120
    else:
        assert made_here is not None
        assert (point.id, point.created) == (named, made)
        assert (recorded["id"], created) == (named_here, made_here)
