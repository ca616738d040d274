"""aws.rds.*: restores against moto, state checked in RDS afterwards.

Where moto cannot show a behaviour (a snapshot still being created, a restorable window with a
start), the test uses botocore's Stubber, which checks every request against the real RDS model.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from drplan.actions import registry
from drplan.actions.base import AwsAccess, StepContext
from drplan.aws import AwsSession
from drplan.engine.preflight import run_preflight
from drplan.engine.prepare import prepare
from drplan.errors import StepFailed
from drplan.model import build_plan
from drplan.sandbox import emulator_fixes
from tests import runs
from tests.runs import one_step, run_plan

SNAPSHOT = "aws.rds.restore_snapshot"
PITR = "aws.rds.restore_point_in_time"
CLUSTER = "aws.rds.restore_cluster_snapshot"
LOGIN = {"MasterUsername": "admin1", "MasterUserPassword": "password123"}


def tags_of(rds: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in rds.list_tags_for_resource(ResourceName=arn)["TagList"]}


def instance(rds: Any, name: str) -> dict[str, Any] | None:
    found = rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [name]}])["DBInstances"]
    return found[0] if found else None


def cluster_ids(rds: Any) -> set[str]:
    return {c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]}


def preflight(uses: str, params: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """The engine's preflight, through a read-only session; returns the findings and the calls made."""
    prepared = prepare(build_plan(one_step(uses, params)), "recover", registry(), run_id="t35t1d")
    calls: list[str] = []
    session = AwsSession(region="us-east-1", read_only=True)
    session.on_call = lambda call: calls.append(call.operation)
    return run_preflight(prepared, session).results["svc.s"], calls


def context(uses: str, params: dict[str, Any], aws: AwsAccess) -> StepContext:
    plan = build_plan(one_step(uses, params))
    step = next(iter(plan.steps()))
    now = datetime.now(timezone.utc)
    return StepContext(step, step.params, "recover", "t35t1d", plan, aws, plan.objectives_of("svc"), now)


def seed(uses: str, params: dict[str, Any]) -> None:
    """What the sandbox does before a run: the action's seeder makes the source from the plan's parameters."""
    runs.seed(context(uses, params, AwsSession(region="us-east-1")))


class Stubbed(AwsAccess):
    """Hands out one stubbed RDS client."""

    def __init__(self, client: Any) -> None:
        self.rds = client

    def client(self, service: str, *, region: str | None = None, role_arn: str | None = None) -> Any:
        return self.rds

    def region_of(self, region: str | None) -> str:
        return "us-east-1"


@pytest.fixture
def rds():
    with mock_aws():
        client = boto3.client("rds", region_name="us-east-1")
        client.create_db_instance(
            DBInstanceIdentifier="orders",
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            BackupRetentionPeriod=7,
            **LOGIN,
        )
        yield client


@pytest.fixture
def aurora(rds):
    rds.create_db_cluster(DBClusterIdentifier="warehouse", Engine="aurora-postgresql", Port=5432, **LOGIN)
    rds.create_db_instance(
        DBInstanceIdentifier="warehouse-a",
        DBClusterIdentifier="warehouse",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    rds.create_db_cluster_snapshot(DBClusterIdentifier="warehouse", DBClusterSnapshotIdentifier="wh-nightly")
    return rds


# --- aws.rds.restore_snapshot ---------------------------------------------------------------------


def test_restore_latest_snapshot_creates_the_instance_as_asked(rds):
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="older")
    newest = rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="newest")[
        "DBSnapshot"
    ]
    params = {
        "source_instance": "orders",
        "target": "orders-restored",
        "instance_class": "db.t3.small",
        "multi_az": True,
        "port": 5433,
        "security_groups": ["sg-0123456789abcdef0"],
        "tags": {"team": "shop"},
    }
    run = run_plan(one_step(SNAPSHOT, params))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    db = instance(rds, "orders-restored")
    assert db["DBInstanceClass"] == "db.t3.small"
    assert db["MultiAZ"] is True
    assert [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]] == ["sg-0123456789abcdef0"]
    assert rec.outputs == {
        "endpoint": db["Endpoint"]["Address"],
        "port": 5433,
        "arn": db["DBInstanceArn"],
        "instance_id": "orders-restored",
        "snapshot_id": "newest",
    }
    tags = tags_of(rds, db["DBInstanceArn"])
    assert tags["drplan:run-id"] == "t35t1d" and tags["drplan:step"] == "svc.s" and tags["team"] == "shop"
    assert rec.handle["recovery_point"] == {
        "id": "newest",
        "created": newest["SnapshotCreateTime"].isoformat(),
    }
    assert [(r.kind, r.id) for r in rec.resources] == [("rds:db", "orders-restored")]


def test_a_named_snapshot_wins_over_newer_ones_by_name_or_arn(rds):
    older = rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="older")["DBSnapshot"]
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="newer")
    by_name = run_plan(one_step(SNAPSHOT, {"snapshot": "older", "target": "by-name"}))
    by_arn = run_plan(one_step(SNAPSHOT, {"snapshot": older["DBSnapshotArn"], "target": "by-arn"}))

    assert by_name.record().status == "succeeded", by_name.record().error
    assert by_arn.record().status == "succeeded", by_arn.record().error
    assert by_name.record().outputs["snapshot_id"] == by_arn.record().outputs["snapshot_id"] == "older"
    assert instance(rds, "by-name") and instance(rds, "by-arn")


def test_a_named_snapshot_of_another_instance_or_a_missing_one_is_refused(rds):
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="orders-snap")
    other = run_plan(
        one_step(SNAPSHOT, {"snapshot": "orders-snap", "source_instance": "billing", "target": "t1"})
    )
    missing = run_plan(one_step(SNAPSHOT, {"snapshot": "nope", "target": "t2"}))
    assert "was taken of orders, not of billing" in other.record().error
    assert "DB snapshot nope does not exist" in missing.record().error
    assert instance(rds, "t1") is None and instance(rds, "t2") is None


def test_automated_snapshots_count_unless_include_automated_is_false(rds):
    manual_only = run_plan(
        one_step(SNAPSHOT, {"source_instance": "orders", "target": "m", "include_automated": False})
    )
    assert manual_only.record().status == "failed"
    assert "DB instance orders has no available DB snapshots" in manual_only.record().error
    assert instance(rds, "m") is None

    default = run_plan(one_step(SNAPSHOT, {"source_instance": "orders", "target": "a"}))
    assert default.record().status == "succeeded", default.record().error
    assert default.record().outputs["snapshot_id"].startswith("rds:orders-")  # the automated one
    named = run_plan(one_step(SNAPSHOT, {"snapshot": default.record().outputs["snapshot_id"], "target": "n"}))
    assert named.record().status == "succeeded", named.record().error  # by its rds:... identifier


def test_max_age_refuses_a_snapshot_older_than_allowed(rds):
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="s1")
    run = run_plan(one_step(SNAPSHOT, {"source_instance": "orders", "target": "fresh", "max_age": "PT0S"}))
    assert run.record().status == "failed"
    assert "older than the allowed" in run.record().error
    assert instance(rds, "fresh") is None
    assert run.record().resources == []


def test_refuses_to_overwrite_an_existing_instance(rds):
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="s1")
    run = run_plan(
        one_step(SNAPSHOT, {"source_instance": "orders", "target": "orders", "instance_class": "db.m5.large"})
    )
    assert run.record().status == "failed"
    assert "DB instance orders already exists; refusing to overwrite it" in run.record().error
    assert run.record().resources == []  # so no cleanup would ever delete it
    db = instance(rds, "orders")
    assert db["DBInstanceClass"] == "db.t3.micro" and db["DBInstanceStatus"] == "available"


def test_a_retried_restore_takes_back_the_instance_it_created_itself(rds):
    """A restore whose response was lost is retried: the instance carrying this run's and step's
    tags is this step's own, recorded (so cleanup deletes it); another run's is refused."""
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="s1")
    params = {"source_instance": "orders", "target": "orders-copy"}
    assert run_plan(one_step(SNAPSHOT, params)).record().status == "succeeded"

    again = run_plan(one_step(SNAPSHOT, params))
    assert again.record().status == "succeeded", again.record().error
    assert [(r.kind, r.id) for r in again.record().resources] == [("rds:db", "orders-copy")]
    other_run = run_plan(one_step(SNAPSHOT, params), run_id="0th3r")
    assert "already exists" in other_run.record().error


def test_undo_deletes_the_restored_instance_only(rds):
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="s1")
    run = run_plan(one_step(SNAPSHOT, {"source_instance": "orders", "target": "orders-drill"}))
    assert run.record().status == "succeeded", run.record().error

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert instance(rds, "orders-drill") is None
    assert instance(rds, "orders") is not None
    assert run.runner.undo(["svc.s"], reason="again") == []  # already undone: nothing to do
    action = registry()[SNAPSHOT]  # and undo tolerates an instance that is already gone
    ctx = context(SNAPSHOT, {"target": "orders-drill"}, AwsSession(region="us-east-1"))
    assert action.undo(ctx, run.record().handle) == {"instance": "orders-drill"}
    assert action.poll_undo(ctx, run.record().handle, {}).done


def test_preflight_reports_the_snapshot_its_age_and_the_target_with_read_calls_only(rds):
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="s1")
    results, calls = preflight(SNAPSHOT, {"source_instance": "orders", "target": "orders-new"})
    assert [r.status for r in results] == ["ok", "ok"]
    assert results[0].facts["recovery_point"] == "s1"
    assert results[0].facts["age_seconds"] >= 0
    assert results[1].facts == {"target": "orders-new"}
    assert calls and all(c.startswith("Describe") for c in calls)

    taken, _ = preflight(SNAPSHOT, {"source_instance": "orders", "target": "orders"})
    assert taken[1].status == "error" and taken[1].facts == {"target": "orders"}
    missing, _ = preflight(SNAPSHOT, {"source_instance": "ghost", "target": "x"})
    assert missing[0].status == "error" and "ghost has no available DB snapshots" in missing[0].message
    old, _ = preflight(SNAPSHOT, {"source_instance": "orders", "target": "x", "max_age": "PT0S"})
    assert old[0].status == "error" and "over max_age" in old[0].message


def test_latest_skips_snapshots_that_are_not_available():
    """Stubber: moto's snapshots are available at once; a newer one still being created must be
    passed over for the newest available one."""
    client = boto3.client("rds", region_name="us-east-1")
    now = datetime.now(timezone.utc)
    snapshots = [
        {"DBSnapshotIdentifier": "creating", "Status": "creating", "SnapshotCreateTime": now},
        {
            "DBSnapshotIdentifier": "ready",
            "Status": "available",
            "SnapshotCreateTime": now - timedelta(hours=1),
        },
        {
            "DBSnapshotIdentifier": "old",
            "Status": "available",
            "SnapshotCreateTime": now - timedelta(hours=5),
        },
    ]
    with Stubber(client) as stub:
        stub.add_response(
            "describe_db_snapshots", {"DBSnapshots": snapshots}, {"DBInstanceIdentifier": "orders"}
        )
        stub.add_client_error("describe_db_instances", "DBInstanceNotFound", http_status_code=404)
        results = registry()[SNAPSHOT].preflight(
            context(SNAPSHOT, {"source_instance": "orders", "target": "new"}, Stubbed(client))
        )
        stub.assert_no_pending_responses()
    assert results[0].facts["recovery_point"] == "ready"
    assert results[1].status == "ok"


def test_a_copied_snapshot_is_as_old_as_its_original():
    """Stubber: a snapshot copied across regions has a new SnapshotCreateTime; the data is as old
    as OriginalSnapshotCreateTime, which is what max_age and the measured RPO must use."""
    client = boto3.client("rds", region_name="us-east-1")
    now = datetime.now(timezone.utc)
    copy = {
        "DBSnapshotIdentifier": "copy",
        "Status": "available",
        "SnapshotCreateTime": now,
        "OriginalSnapshotCreateTime": now - timedelta(hours=6),
    }
    with Stubber(client) as stub:
        stub.add_response(
            "describe_db_snapshots", {"DBSnapshots": [copy]}, {"DBInstanceIdentifier": "orders"}
        )
        stub.add_client_error("describe_db_instances", "DBInstanceNotFound", http_status_code=404)
        params = {"source_instance": "orders", "target": "new", "max_age": "PT1H"}
        results = registry()[SNAPSHOT].preflight(context(SNAPSHOT, params, Stubbed(client)))
    assert results[0].status == "error" and results[0].facts["age_seconds"] >= 6 * 3600


def test_seed_makes_a_source_the_restore_can_use_with_the_plans_subnet_and_parameter_groups():
    with mock_aws():
        params = {
            "source_instance": "shop-orders",
            "target": "shop-orders-restored",
            "subnet_group": "shop-db-private",
            "parameter_group": "shop-postgres",
            "security_groups": ["sg-0a1b2c3d4e5f60718"],
        }
        seed(SNAPSHOT, params)
        seed(SNAPSHOT, params)  # idempotent
        rds = boto3.client("rds", region_name="us-east-1")
        manual = rds.describe_db_snapshots(DBInstanceIdentifier="shop-orders", SnapshotType="manual")[
            "DBSnapshots"
        ]
        assert len(manual) == 1

        run = run_plan(one_step(SNAPSHOT, params))
        assert run.record().status == "succeeded", run.record().error
        db = instance(rds, "shop-orders-restored")
        assert db["DBSubnetGroup"]["DBSubnetGroupName"] == "shop-db-private"
        assert db["DBParameterGroups"][0]["DBParameterGroupName"] == "shop-postgres"
        assert run.record().outputs["snapshot_id"] == manual[0]["DBSnapshotIdentifier"]


def test_seed_makes_the_named_snapshot():
    with mock_aws():
        seed(SNAPSHOT, {"snapshot": "orders-final", "target": "orders"})
        run = run_plan(one_step(SNAPSHOT, {"snapshot": "orders-final", "target": "orders"}))
        assert run.record().status == "succeeded", run.record().error
        assert run.record().outputs["snapshot_id"] == "orders-final"


# --- aws.rds.restore_point_in_time ----------------------------------------------------------------


def test_point_in_time_latest_restores_and_records_the_latest_restorable_time(rds):
    before = instance(rds, "orders")["LatestRestorableTime"]
    run = run_plan(
        one_step(
            PITR, {"source_instance": "orders", "target": "orders-pitr", "instance_class": "db.t3.small"}
        )
    )

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    db = instance(rds, "orders-pitr")
    assert db["DBInstanceClass"] == "db.t3.small"
    assert tags_of(rds, db["DBInstanceArn"])["drplan:run-id"] == "t35t1d"
    assert rec.outputs == {
        "endpoint": db["Endpoint"]["Address"],
        "port": db["Endpoint"]["Port"],
        "arn": db["DBInstanceArn"],
        "instance_id": "orders-pitr",
    }
    point = rec.handle["recovery_point"]
    assert point["id"].startswith("orders@")
    assert datetime.fromisoformat(point["created"]) >= before
    assert [(r.kind, r.id) for r in rec.resources] == [("rds:db", "orders-pitr")]


def test_point_in_time_to_a_given_moment(rds):
    moment = (datetime.now(timezone.utc) - timedelta(seconds=1)).replace(microsecond=0)
    when = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    run = run_plan(
        one_step(PITR, {"source_instance": "orders", "target": "orders-then", "restore_time": when})
    )
    assert run.record().status == "succeeded", run.record().error
    assert run.record().handle["recovery_point"] == {
        "id": f"orders@{moment.isoformat()}",
        "created": moment.isoformat(),
    }
    assert instance(rds, "orders-then") is not None


def test_point_in_time_outside_the_window_is_refused_in_preflight_and_run(rds):
    params = {"source_instance": "orders", "target": "orders-future", "restore_time": "2999-01-01T00:00:00Z"}
    results, calls = preflight(PITR, params)
    assert results[0].status == "error" and "outside the restorable window" in results[0].message
    assert all(c.startswith("Describe") for c in calls)
    run = run_plan(one_step(PITR, params))
    assert run.record().status == "failed"
    assert "outside the restorable window" in run.record().error
    assert instance(rds, "orders-future") is None


def test_point_in_time_preflight_reports_the_source_and_target_read_only(rds):
    results, calls = preflight(PITR, {"source_instance": "orders", "target": "orders-pitr"})
    assert [r.status for r in results] == ["ok", "ok"]
    assert results[0].facts["recovery_point"].startswith("orders@")
    assert calls and all(c.startswith("Describe") for c in calls)

    missing, _ = preflight(PITR, {"source_instance": "ghost", "target": "x"})
    assert missing[0].status == "error" and "source DB instance ghost does not exist" in missing[0].message
    taken, _ = preflight(PITR, {"source_instance": "orders", "target": "orders"})
    assert taken[1].status == "error" and taken[1].facts == {"target": "orders"}


def test_point_in_time_needs_automated_backups(rds):
    rds.create_db_instance(
        DBInstanceIdentifier="nobackup",
        Engine="mysql",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        BackupRetentionPeriod=0,
        **LOGIN,
    )
    run = run_plan(one_step(PITR, {"source_instance": "nobackup", "target": "nb-pitr"}))
    assert run.record().status == "failed"
    assert "automated backups are disabled" in run.record().error


def test_point_in_time_before_the_earliest_restorable_time_is_refused():
    """Stubber: moto does not report the automated backups' RestoreWindow; AWS does, and a time
    before its start cannot be restored."""
    client = boto3.client("rds", region_name="us-east-1")
    now = datetime.now(timezone.utc)
    source = {
        "DBInstanceIdentifier": "orders",
        "DBInstanceStatus": "available",
        "BackupRetentionPeriod": 7,
        "LatestRestorableTime": now,
        "DbiResourceId": "db-ABC",
    }
    backups = {
        "DBInstanceAutomatedBackups": [
            {"DbiResourceId": "db-OLD", "RestoreWindow": {"EarliestTime": now - timedelta(days=30)}},
            {
                "DbiResourceId": "db-ABC",
                "Status": "active",
                "RestoreWindow": {"EarliestTime": now - timedelta(days=7)},
            },
        ]
    }
    when = (now - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with Stubber(client) as stub:
        stub.add_response(
            "describe_db_instances", {"DBInstances": [source]}, {"DBInstanceIdentifier": "orders"}
        )
        stub.add_response(
            "describe_db_instance_automated_backups", backups, {"DBInstanceIdentifier": "orders"}
        )
        params = {"source_instance": "orders", "target": "x", "restore_time": when}
        results = registry()[PITR].preflight(context(PITR, params, Stubbed(client)))
    assert results[0].status == "error"
    assert "outside the restorable window" in results[0].message
    assert (now - timedelta(days=7)).isoformat() in results[0].message


def test_point_in_time_undo_and_seed():
    with mock_aws():  # an empty account: the seed makes the source
        seed(PITR, {"source_instance": "billing-primary", "target": "billing-reporting"})
        seed(PITR, {"source_instance": "billing-primary", "target": "billing-reporting"})
        run = run_plan(one_step(PITR, {"source_instance": "billing-primary", "target": "billing-reporting"}))
        assert run.record().status == "succeeded", run.record().error
        client = boto3.client("rds", region_name="us-east-1")
        assert instance(client, "billing-reporting") is not None

        assert run.runner.undo(["svc.s"], reason="test") == []
        assert instance(client, "billing-reporting") is None
        assert instance(client, "billing-primary") is not None


# --- aws.rds.restore_cluster_snapshot -------------------------------------------------------------

CLUSTER_PARAMS = {
    "source_cluster": "warehouse",
    "target": "wh-restored",
    "instance_class": "db.r6g.xlarge",
    "instances": 2,
}


def test_restore_cluster_creates_the_cluster_then_its_instances(aurora):
    run = run_plan(one_step(CLUSTER, {**CLUSTER_PARAMS, "port": 5433, "tags": {"team": "data"}}))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    cluster = aurora.describe_db_clusters(DBClusterIdentifier="wh-restored")["DBClusters"][0]
    assert cluster["Engine"] == "aurora-postgresql"  # taken from the snapshot
    assert rec.outputs == {
        "endpoint": cluster["Endpoint"],
        "reader_endpoint": cluster["ReaderEndpoint"],
        "port": 5433,
        "arn": cluster["DBClusterArn"],
        "cluster_id": "wh-restored",
        "snapshot_id": "wh-nightly",  # newer than the automated snapshot taken at creation
    }
    for name in ("wh-restored-1", "wh-restored-2"):
        db = instance(aurora, name)
        assert db["DBClusterIdentifier"] == "wh-restored"
        assert db["DBInstanceClass"] == "db.r6g.xlarge"
        assert tags_of(aurora, db["DBInstanceArn"])["team"] == "data"
    assert tags_of(aurora, cluster["DBClusterArn"])["drplan:run-id"] == "t35t1d"
    assert [(r.kind, r.id) for r in rec.resources] == [
        ("rds:cluster", "wh-restored"),
        ("rds:db", "wh-restored-1"),
        ("rds:db", "wh-restored-2"),
    ]
    assert rec.handle["recovery_point"]["id"] == "wh-nightly"


def test_undo_deletes_the_instances_then_the_cluster(aurora):
    run = run_plan(one_step(CLUSTER, CLUSTER_PARAMS))
    assert run.record().status == "succeeded", run.record().error

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert "wh-restored" not in cluster_ids(aurora)
    assert instance(aurora, "wh-restored-1") is None and instance(aurora, "wh-restored-2") is None
    assert "warehouse" in cluster_ids(aurora) and instance(aurora, "warehouse-a") is not None


def test_refuses_to_overwrite_an_existing_cluster(aurora):
    """moto would replace the cluster; drplan checks first, as real RDS would refuse."""
    before = aurora.describe_db_clusters(DBClusterIdentifier="warehouse")["DBClusters"][0]
    run = run_plan(one_step(CLUSTER, {**CLUSTER_PARAMS, "target": "warehouse"}))
    assert run.record().status == "failed"
    assert "DB cluster warehouse already exists; refusing to overwrite it" in run.record().error
    assert run.record().resources == []
    after = aurora.describe_db_clusters(DBClusterIdentifier="warehouse")["DBClusters"][0]
    assert after["DbClusterResourceId"] == before["DbClusterResourceId"]
    assert instance(aurora, "warehouse-1") is None


def test_refuses_when_an_instance_name_is_taken_before_creating_anything(aurora):
    aurora.create_db_instance(
        DBInstanceIdentifier="wh-restored-2",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        **LOGIN,
    )
    results, _ = preflight(CLUSTER, CLUSTER_PARAMS)
    assert [(r.status, r.facts.get("target")) for r in results[1:]] == [
        ("ok", "wh-restored"),
        ("error", "wh-restored-2"),
    ]

    run = run_plan(one_step(CLUSTER, CLUSTER_PARAMS))
    assert run.record().status == "failed"
    assert "DB instance wh-restored-2 already exists" in run.record().error
    assert "wh-restored" not in cluster_ids(aurora)
    assert "DBClusterIdentifier" not in instance(aurora, "wh-restored-2")  # untouched


def test_cluster_max_age_and_missing_snapshots(aurora):
    old = run_plan(one_step(CLUSTER, {**CLUSTER_PARAMS, "max_age": "PT0S"}))
    assert "older than the allowed" in old.record().error
    none = run_plan(one_step(CLUSTER, {**CLUSTER_PARAMS, "source_cluster": "ghost"}))
    assert "DB cluster ghost has no available DB cluster snapshots" in none.record().error
    assert "wh-restored" not in cluster_ids(aurora)


def test_cluster_preflight_is_read_only(aurora):
    results, calls = preflight(CLUSTER, CLUSTER_PARAMS)
    assert [r.status for r in results] == ["ok", "ok"]
    assert results[0].facts["recovery_point"] == "wh-nightly"
    assert calls and all(c.startswith("Describe") for c in calls)


def test_undo_leaves_a_cluster_alone_when_someone_else_added_an_instance(aurora):
    run = run_plan(one_step(CLUSTER, {**CLUSTER_PARAMS, "instances": 1}))
    assert run.record().status == "succeeded", run.record().error
    aurora.create_db_instance(
        DBInstanceIdentifier="intruder",
        DBClusterIdentifier="wh-restored",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    assert run.runner.undo(["svc.s"], reason="test", timeout=2) == ["svc.s"]
    failed = [e.data["error"] for e in run.events if e.kind == "undo.failed"]
    assert failed == [
        "DB cluster wh-restored has DB instances drplan did not create (intruder); not deleting them"
    ]
    assert instance(aurora, "intruder") is not None
    assert instance(aurora, "wh-restored-1") is None  # what drplan created is gone


def test_seed_makes_an_aurora_cluster_and_snapshot_to_restore():
    with mock_aws():
        params = {
            "source_cluster": "analytics-warehouse",
            "target": "analytics-restored",
            "engine": "aurora-postgresql",
            "instance_class": "db.r6g.xlarge",
            "subnet_group": "analytics-private",
            "parameter_group": "analytics-pg",
        }
        seed(CLUSTER, params)
        seed(CLUSTER, params)
        rds = boto3.client("rds", region_name="us-east-1")
        snaps = rds.describe_db_cluster_snapshots(
            DBClusterIdentifier="analytics-warehouse", SnapshotType="manual"
        )
        assert len(snaps["DBClusterSnapshots"]) == 1

        run = run_plan(one_step(CLUSTER, params))
        assert run.record().status == "succeeded", run.record().error
        cluster = rds.describe_db_clusters(DBClusterIdentifier="analytics-restored")["DBClusters"][0]
        assert cluster["DBSubnetGroup"] == "analytics-private"
        assert instance(rds, "analytics-restored-1")["DBClusterIdentifier"] == "analytics-restored"


def test_a_multi_az_db_cluster_brings_its_own_instances():
    """engine mysql/postgres is a Multi-AZ DB cluster: instance_class goes on the cluster, and
    drplan creates no instances of its own."""
    with mock_aws():
        params = {
            "source_cluster": "ledger",
            "snapshot": "ledger-snap",
            "target": "ledger-copy",
            "engine": "postgres",
            "instance_class": "db.m6gd.large",
        }
        seed(CLUSTER, params)
        run = run_plan(one_step(CLUSTER, params))
        assert run.record().status == "succeeded", run.record().error
        assert [(r.kind, r.id) for r in run.record().resources] == [("rds:cluster", "ledger-copy")]
        assert run.record().outputs["snapshot_id"] == "ledger-snap"
        rds = boto3.client("rds", region_name="us-east-1")
        assert run.runner.undo(["svc.s"], reason="test") == []
        assert "ledger-copy" not in cluster_ids(rds)


# --- aws.rds.promote_read_replica -----------------------------------------------------------------

PROMOTE = "aws.rds.promote_read_replica"


@pytest.fixture
def replicas(rds):
    """``orders`` (us-east-1) with a cross-Region replica ``orders-dr`` (us-west-2) and a replica in
    its own Region, ``orders-local``. moto keeps a promoted replica's source: the sandbox's fix
    (applied here too) makes it answer as AWS does."""
    emulator_fixes.apply()
    arn = rds.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]["DBInstanceArn"]
    west = boto3.client("rds", region_name="us-west-2")
    west.create_db_instance_read_replica(
        DBInstanceIdentifier="orders-dr", SourceDBInstanceIdentifier=arn, DBInstanceClass="db.t3.micro"
    )
    rds.create_db_instance_read_replica(
        DBInstanceIdentifier="orders-local",
        SourceDBInstanceIdentifier="orders",
        DBInstanceClass="db.t3.micro",
    )
    return {"east": rds, "west": west, "source_arn": arn}


def test_promote_a_cross_region_replica_waits_until_it_is_standalone(replicas):
    west = replicas["west"]
    data = one_step(
        PROMOTE,
        {"instance": "orders-dr", "source_instance": replicas["source_arn"], "backup_retention_days": 3},
        region="us-west-2",
    )
    run = run_plan(data)
    rec = run.record()
    assert rec.status == "succeeded", rec.error
    promoted = instance(west, "orders-dr")
    assert promoted is not None and "ReadReplicaSourceDBInstanceIdentifier" not in promoted
    assert promoted["BackupRetentionPeriod"] == 3
    assert rec.outputs == {
        "endpoint": promoted["Endpoint"]["Address"],
        "port": 5432,
        "arn": promoted["DBInstanceArn"],
        "instance_id": "orders-dr",
    }
    assert {(c.operation, c.region) for c in run.calls if c.operation == "PromoteReadReplica"} == {
        ("PromoteReadReplica", "us-west-2")
    }
    source = instance(replicas["east"], "orders")
    assert source is not None and source["ReadReplicaDBInstanceIdentifiers"] == ["orders-local"]
    assert rec.resources == []  # nothing created: nothing for cleanup to delete


def test_promote_cannot_be_undone_and_says_so(replicas):
    run = run_plan(one_step(PROMOTE, {"instance": "orders-local"}))
    assert run.record().status == "succeeded", run.record().error
    action = registry()[PROMOTE]
    assert action.undoable is False and "cannot be undone" in action.summary
    assert run.runner.undo(["svc.s"], reason="test") == []
    assert instance(replicas["east"], "orders-local") is not None  # left as promoted


def test_promote_refuses_a_primary_a_missing_instance_and_a_replica_of_something_else(replicas):
    primary = run_plan(one_step(PROMOTE, {"instance": "orders"}))
    assert primary.record().status == "failed"
    assert primary.record().error == (
        "DB instance orders is not a read replica (promoted already, or a primary); nothing to promote"
    )
    missing = run_plan(one_step(PROMOTE, {"instance": "ghost"}))
    assert missing.record().error == "DB instance ghost does not exist"
    other = run_plan(one_step(PROMOTE, {"instance": "orders-local", "source_instance": "billing"}))
    assert other.record().error == (
        "DB instance orders-local is a replica of orders, not of billing; not promoting it"
    )
    for run in (primary, missing, other):
        assert "PromoteReadReplica" not in [c.operation for c in run.calls]
    local = instance(replicas["east"], "orders-local")
    assert local is not None and local["ReadReplicaSourceDBInstanceIdentifier"] == "orders"


def test_a_promoted_replica_is_not_promoted_again(replicas):
    first = run_plan(one_step(PROMOTE, {"instance": "orders-local", "source_instance": "orders"}))
    assert first.record().status == "succeeded", first.record().error
    again = run_plan(one_step(PROMOTE, {"instance": "orders-local"}))
    assert again.record().status == "failed" and "is not a read replica" in again.record().error


def test_promote_is_skipped_in_drills_unless_drill_with_names_a_drill_replica(replicas):
    skipped = run_plan(one_step(PROMOTE, {"instance": "orders-local"}), "drill")
    assert "svc.s" in skipped.prepared.skipped
    replicas["east"].create_db_instance_read_replica(
        DBInstanceIdentifier="orders-drill-replica",
        SourceDBInstanceIdentifier="orders",
        DBInstanceClass="db.t3.micro",
    )
    data = one_step(PROMOTE, {"instance": "orders-local"}, drill_with={"instance": "orders-drill-replica"})
    drill = run_plan(data, "drill")
    assert drill.record().status == "succeeded", drill.record().error
    assert drill.record().outputs["instance_id"] == "orders-drill-replica"
    assert "ReadReplicaSourceDBInstanceIdentifier" not in (
        instance(replicas["east"], "orders-drill-replica") or {}
    )
    local = instance(replicas["east"], "orders-local")
    assert local is not None and local["ReadReplicaSourceDBInstanceIdentifier"] == "orders"  # untouched


def test_promote_preflight_is_read_only(replicas):
    results, calls = preflight(PROMOTE, {"instance": "orders-local", "source_instance": "orders"})
    assert [(r.status, r.message) for r in results] == [
        ("ok", "would promote read replica orders-local of orders")
    ]
    assert results[0].facts == {"instance": "orders-local", "source": "orders", "status": "available"}
    assert set(calls) == {"DescribeDBInstances"}
    primary, _ = preflight(PROMOTE, {"instance": "orders"})
    assert primary[0].status == "error" and "not a read replica" in primary[0].message
    ref, calls = preflight(PROMOTE, {"instance": "${db.replica.instance_id}"})
    assert ref[0].status == "ok" and calls == []


def _db(status: str, source: str | None) -> dict[str, Any]:
    db: dict[str, Any] = {
        "DBInstanceIdentifier": "orders-dr",
        "DBInstanceArn": "arn:aws:rds:us-west-2:123456789012:db:orders-dr",
        "DBInstanceStatus": status,
        "Endpoint": {"Address": "orders-dr.abc.us-west-2.rds.amazonaws.com", "Port": 5432},
    }
    if source:
        db["ReadReplicaSourceDBInstanceIdentifier"] = source
    return {"DBInstances": [db]}


def test_promote_waits_for_the_replica_to_leave_replication_then_to_be_available():
    """Stubber: moto promotes at once; AWS goes through modifying and rebooting, and keeps naming the
    source for a while."""
    client = boto3.client("rds", region_name="us-west-2")
    source = "arn:aws:rds:us-east-1:123456789012:db:orders"
    ctx = context(PROMOTE, {"instance": "orders-dr"}, Stubbed(client))
    action = registry()[PROMOTE]
    by_id = {"DBInstanceIdentifier": "orders-dr"}
    with Stubber(client) as stub:
        stub.add_response("describe_db_instances", _db("available", source), by_id)
        stub.add_response(
            "promote_read_replica", {"DBInstance": _db("modifying", source)["DBInstances"][0]}, by_id
        )
        for status, still in (("modifying", source), ("rebooting", None), ("available", None)):
            stub.add_response("describe_db_instances", _db(status, still), by_id)
        handle = action.start(ctx)
        assert handle == {
            "instance": "orders-dr",
            "arn": "arn:aws:rds:us-west-2:123456789012:db:orders-dr",
            "source": source,
        }
        polls = [action.poll(ctx, handle) for _ in range(3)]
        stub.assert_no_pending_responses()
    assert [(p.done, p.note) for p in polls] == [
        (False, f"orders-dr is modifying, still a replica of {source}"),
        (False, "orders-dr is standalone, rebooting"),
        (True, "orders-dr is a standalone DB instance, available"),
    ]


def test_promote_explains_a_refusal_of_rds():
    client = boto3.client("rds", region_name="us-west-2")
    ctx = context(PROMOTE, {"instance": "orders-dr"}, Stubbed(client))
    by_id = {"DBInstanceIdentifier": "orders-dr"}
    with Stubber(client) as stub:
        stub.add_response("describe_db_instances", _db("backing-up", "orders"), by_id)
        stub.add_client_error(
            "promote_read_replica",
            "InvalidDBInstanceState",
            "DB Instance is not in an available state.",
            expected_params=by_id,
        )
        with pytest.raises(StepFailed) as failed:
            registry()[PROMOTE].start(ctx)
    assert failed.value.reason == (
        "RDS refused to promote orders-dr now: DB Instance is not in an available state."
    )


def test_seed_makes_a_source_in_its_region_and_the_replica_the_step_promotes():
    with mock_aws():
        emulator_fixes.apply()
        source = "arn:aws:rds:us-east-1:123456789012:db:shop-orders"
        params = {"instance": "shop-orders-dr", "source_instance": source}
        data = one_step(PROMOTE, params, region="us-west-2")
        plan = build_plan(data)
        step = next(iter(plan.steps()))
        now = datetime.now(timezone.utc)
        ctx = StepContext(
            step,
            step.params,
            "recover",
            "seed",
            plan,
            AwsSession(region="us-east-1"),
            plan.objectives_of("svc"),
            now,
        )
        runs.seed(ctx)
        runs.seed(ctx)  # idempotent
        west = boto3.client("rds", region_name="us-west-2")
        replica = instance(west, "shop-orders-dr")
        assert replica is not None and replica["ReadReplicaSourceDBInstanceIdentifier"] == source
        assert instance(boto3.client("rds", region_name="us-east-1"), "shop-orders") is not None

        run = run_plan(data)
        assert run.record().status == "succeeded", run.record().error
