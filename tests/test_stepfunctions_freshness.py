"""``max_age`` in an exported state machine: the recovery point's age when the run started,
against the step's limit, worked out by two JSONata states (JSONPath has no date arithmetic), with
the local action's message and before anything is restored.

The plans are written from docs/plan-format.md (``max_age``: a duration, or ``rpo``); the backups'
creation times are set back in moto's backends, so the ages are hours, as in a real recovery, and
the message (``3h``) is the same whichever run reads it a second later.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from drplan.durations import humanize
from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.tasks import jsonata_humanize
from tests.moto_jsonata import jsonata, moto_evaluates_jsonata
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    SFN,
    TABLE,
    aws_state,
    execute,
    lint_definition,
    records,
    statuses,
)

HOURS_OLD = 3


@pytest.mark.parametrize(
    "seconds", [0, 0.04, 2.25, 9.94, 10, 42.5, 59.4, 60, 61, 3599, 3600, 3661, 7322.5, 86400, 90061, 954000]
)
def test_the_jsonata_durations_read_as_the_local_ones(seconds: float) -> None:
    assert jsonata.Jsonata(jsonata_humanize(str(seconds))).evaluate(None) == humanize(seconds)


def _age_backups(hours: float) -> None:
    """Every DynamoDB backup and RDS snapshot in moto's backends, taken ``hours`` ago."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.rds.models import rds_backends

    then = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)
    for backup in dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].backups.values():
        backup.creation_date_time = then.replace(tzinfo=None)  # moto keeps naive UTC
    for snapshot in rds_backends[DEFAULT_ACCOUNT_ID][REGION].database_snapshots.values():
        snapshot.created = snapshot.original_snapshot_create_time = then


def _same_ids(message: str) -> str:
    """A DynamoDB backup's ARN ends in an id made of its creation time: another in each emulator."""
    return re.sub(r"/backup/[0-9a-f-]+", "/backup/ID", message)


def _orders_instance() -> Any:
    """The source DB instance `orders`; its RDS client."""
    rds = boto3.client("rds", region_name=REGION)
    rds.create_db_instance(
        DBInstanceIdentifier="orders",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="admin1",
        MasterUserPassword="password123",
    )
    return rds


def _seed() -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    for name in ("ledger", "carts"):
        ddb.create_table(TableName=name, **TABLE)
        ddb.put_item(TableName=name, Item={"pk": {"S": f"{name}-1"}})
        ddb.create_backup(TableName=name, BackupName=f"{name}-nightly")
    rds = _orders_instance()
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="orders-nightly")
    # Half a minute over: the age reads "3h" whether a run truncates its start to the second or not.
    _age_backups(HOURS_OLD + 30 / 3600)


def _plan() -> dict[str, Any]:
    """Three restores of 3-hour-old backups: one allowed 1 hour (too old), one allowed its
    service's RPO of 4 hours, a DB instance from a named snapshot allowed 2 hours (too old); the
    service that depends on the first is skipped."""

    def table(source: str, max_age: str) -> dict[str, Any]:
        return {
            "id": "restore",
            "uses": "aws.dynamodb.restore_backup",
            "with": {"source_table": source, "target": f"{source}-restored", "max_age": max_age},
        }

    return plan_data(
        {
            "ledger": {"steps": [table("ledger", "PT1H")]},
            "carts": {"objectives": {"rpo": "PT4H"}, "steps": [table("carts", "rpo")]},
            "orders": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.rds.restore_snapshot",
                        "with": {
                            "source_instance": "orders",
                            "snapshot": "orders-nightly",
                            "target": "orders-restored",
                            "max_age": "PT2H",
                        },
                    }
                ]
            },
            "reports": {
                "depends_on": ["ledger"],
                "steps": [{"id": "settle", "uses": "wait", "with": {"duration": "PT1S"}}],
            },
        },
        name="freshness",
    )


@pytest.mark.slow
def test_too_old_recovery_points_fail_with_the_local_message_and_restore_nothing() -> None:
    with mock_aws():
        _seed()
        local = run_plan(_plan(), run_id=RUN_ID)
        expected_status = {k: r.status for k, r in local.outcome.records.items()}
        expected_errors = {k: r.error for k, r in local.outcome.records.items() if r.error}
        expected = aws_state()
    assert expected_status == {
        "ledger.restore": "failed",
        "carts.restore": "succeeded",
        "orders.restore": "failed",
        "reports.settle": "skipped",
    }
    assert expected_errors["ledger.restore"].endswith(
        f"is {HOURS_OLD}h old, older than the allowed 1h (max_age); nothing restored"
    )
    assert set(expected["tables"]) == {"ledger", "carts", "carts-restored"}
    assert set(expected["instances"]) == {"orders"}

    exported = export_plan(build_plan(_plan()), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with mock_aws(config=SFN), moto_evaluates_jsonata():
        _seed()
        created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        described = execute(exported.definition, table=exported.coordination_table, created=created)
        assert aws_state() == expected
    doc = records(described)
    assert statuses(doc, exported.sids) == expected_status
    for key in ("ledger.restore", "orders.restore"):
        assert _same_ids(doc["steps"][exported.sids[key]]["cause"]) == _same_ids(expected_errors[key])


@pytest.mark.slow
def test_a_recovery_point_young_enough_is_restored_as_locally() -> None:
    """The same limit, the backups one hour old: everything restores, as locally."""
    with mock_aws():
        _seed()
        _age_backups(0.5)
        local = run_plan(_plan(), run_id=RUN_ID)
        assert {r.status for r in local.outcome.records.values()} == {"succeeded"}
        expected = aws_state()
    exported = export_plan(build_plan(_plan()), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN), moto_evaluates_jsonata():
        _seed()
        _age_backups(0.5)
        created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        described = execute(exported.definition, table=exported.coordination_table, created=created)
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert aws_state() == expected


def _ages(hours: dict[str, float]) -> None:
    """The DynamoDB backups and RDS snapshots named in ``hours``, taken that many hours ago."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.rds.models import rds_backends

    now = dt.datetime.now(dt.timezone.utc)
    for backup in dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].backups.values():
        if backup.name in hours:
            backup.creation_date_time = (now - dt.timedelta(hours=hours[backup.name])).replace(tzinfo=None)
    for name, snapshot in rds_backends[DEFAULT_ACCOUNT_ID][REGION].database_snapshots.items():
        if name in hours:
            snapshot.created = snapshot.original_snapshot_create_time = now - dt.timedelta(hours=hours[name])


def _seed_several() -> None:
    """Backups and snapshots whose listing order is not their age order: the newest usable one is
    neither the first nor the last listed."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName="ledger", **TABLE)
    for name in ("ledger-a", "ledger-b", "ledger-c"):
        ddb.create_backup(TableName="ledger", BackupName=name)
    rds = _orders_instance()
    for name in ("orders-a", "orders-b", "orders-c"):
        rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier=name)
    _ages({"ledger-a": 5, "ledger-b": 1, "ledger-c": 3, "orders-a": 4, "orders-b": 2, "orders-c": 6})


def _chosen_backup_name(arn: str) -> str:
    described = boto3.client("dynamodb", region_name=REGION).describe_backup(BackupArn=arn)
    return str(described["BackupDescription"]["BackupDetails"]["BackupName"])


@pytest.mark.slow
def test_the_newest_of_several_backups_is_chosen_as_locally() -> None:
    """`latest` among several backups and snapshots, end to end: moto hands the listings' times
    to its interpreter as text, as Step Functions does (tests/moto_timestamps.py)."""
    from tests.moto_timestamps import moto_passes_timestamps_as_text

    data = plan_data(
        {
            "ledger": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "ledger", "target": "ledger-restored", "max_age": "PT2H"},
                    }
                ]
            },
            "orders": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.rds.restore_snapshot",
                        "with": {
                            "source_instance": "orders",
                            "target": "orders-restored",
                            "include_automated": False,
                        },
                    }
                ]
            },
        },
        name="newest",
    )
    with mock_aws():
        _seed_several()
        local = run_plan(data, run_id=RUN_ID)
        assert {r.status for r in local.outcome.records.values()} == {"succeeded"}
        local_backup = _chosen_backup_name(local.outcome.records["ledger.restore"].outputs["backup_arn"])
        expected = aws_state()
    assert local_backup == "ledger-b"
    assert local.outcome.records["orders.restore"].outputs["snapshot_id"] == "orders-b"

    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN), moto_evaluates_jsonata(), moto_passes_timestamps_as_text():
        _seed_several()
        created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        described = execute(exported.definition, table=exported.coordination_table, created=created)
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert aws_state() == expected
        doc = records(described)
        chosen = _chosen_backup_name(doc["steps"][exported.sids["ledger.restore"]]["out"]["backup_arn"])
    assert chosen == local_backup
    assert doc["steps"][exported.sids["orders.restore"]]["out"]["snapshot_id"] == "orders-b"
