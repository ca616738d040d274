"""Removal by kind and by tag: every kind a drill can create is deleted and verified gone;
nothing without the drill tag is touched."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from drplan.aws import AwsSession
from drplan.engine.sweep import find_drill_resources, older_than, remove

DRILL = [{"Key": "drplan:mode", "Value": "drill"}, {"Key": "drplan:created", "Value": "2026-01-01T00:00:00Z"}]


@pytest.fixture
def estate():
    """One resource of every kind, tagged as drill leftovers, next to an untagged 'production' twin."""
    with mock_aws():
        region = "us-east-1"
        rds = boto3.client("rds", region_name=region)
        ddb = boto3.client("dynamodb", region_name=region)
        ec2 = boto3.client("ec2", region_name=region)
        s3 = boto3.client("s3", region_name=region)
        efs = boto3.client("efs", region_name=region)
        for name, tags in (("db-drill", DRILL), ("db-prod", [])):
            rds.create_db_instance(
                DBInstanceIdentifier=name,
                DBInstanceClass="db.t3.micro",
                Engine="postgres",
                AllocatedStorage=20,
                MasterUsername="u",
                MasterUserPassword="password1",
                Tags=tags,
            )
        rds.create_db_cluster(
            DBClusterIdentifier="wh-drill",
            Engine="aurora-postgresql",
            MasterUsername="u",
            MasterUserPassword="password1",
            Tags=DRILL,
        )
        rds.create_db_instance(
            DBInstanceIdentifier="wh-drill-1",
            DBInstanceClass="db.r6g.large",
            Engine="aurora-postgresql",
            DBClusterIdentifier="wh-drill",
            Tags=DRILL,
        )
        for name, tags in (("t-drill", DRILL), ("t-prod", [])):
            arn = ddb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )["TableDescription"]["TableArn"]
            if tags:
                ddb.tag_resource(ResourceArn=arn, Tags=tags)
        ec2.create_volume(
            AvailabilityZone="us-east-1a",
            Size=5,
            TagSpecifications=[{"ResourceType": "volume", "Tags": DRILL}],
        )
        ec2.create_volume(AvailabilityZone="us-east-1a", Size=5)
        ec2.run_instances(
            ImageId="ami-12345678",
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": DRILL}],
        )
        s3.create_bucket(Bucket="files-drill")
        s3.put_bucket_versioning(Bucket="files-drill", VersioningConfiguration={"Status": "Enabled"})
        for body in (b"one", b"two"):
            s3.put_object(Bucket="files-drill", Key="a.txt", Body=body)
        s3.delete_object(Bucket="files-drill", Key="a.txt")
        s3.put_bucket_tagging(Bucket="files-drill", Tagging={"TagSet": DRILL})
        s3.create_bucket(Bucket="files-prod")
        efs.create_file_system(CreationToken="fs-drill", Tags=DRILL)
        yield {"rds": rds, "ddb": ddb, "ec2": ec2, "s3": s3, "efs": efs}


def test_every_drill_kind_is_found_removed_and_production_kept(estate):
    aws = AwsSession(region="us-east-1")
    found = find_drill_resources(aws, "us-east-1")
    kinds = sorted(f.resource.kind for f in found)
    assert kinds == sorted(
        [
            "rds:db",
            "rds:db",
            "rds:cluster",
            "dynamodb:table",
            "ec2:volume",
            "ec2:instance",
            "s3:bucket",
            "efs:filesystem",
        ]
    )
    order = [f.resource.kind for f in found]
    assert order.index("rds:cluster") > max(i for i, k in enumerate(order) if k == "rds:db")
    results = remove(aws, [f.resource for f in found], interval=0.01)
    assert [r for r in results if not r.removed] == []
    assert find_drill_resources(aws, "us-east-1") == []
    assert [d["DBInstanceIdentifier"] for d in estate["rds"].describe_db_instances()["DBInstances"]] == [
        "db-prod"
    ]
    assert estate["ddb"].list_tables()["TableNames"] == ["t-prod"]
    assert [b["Name"] for b in estate["s3"].list_buckets()["Buckets"]] == ["files-prod"]
    volumes = estate["ec2"].describe_volumes()["Volumes"]
    assert len(volumes) == 1 and not volumes[0].get("Tags")


def test_older_than_uses_the_creation_tag(estate):
    from datetime import datetime, timedelta, timezone

    found = find_drill_resources(AwsSession(region="us-east-1"), "us-east-1")
    now = datetime(2026, 1, 3, tzinfo=timezone.utc)
    assert len(older_than(found, timedelta(days=1), now=now)) == len(found)
    assert older_than(found, timedelta(days=3), now=now) == []


def test_aws_errors_outside_a_step_are_a_message_not_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true"
    )
    done = subprocess.run(
        [sys.executable, "-m", "drplan", "cleanup", "--sweep", "--region", "us-east-1", "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "drplan: error: AWS:" in done.stderr and "credentials" in done.stderr
    assert "Traceback" not in done.stderr


class _Clock:
    """time.monotonic and time.sleep for drplan.engine.sweep, without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _removal_with(monkeypatch, behaviour, *, timeout=1800.0):
    from drplan.engine import sweep
    from drplan.resources import Resource

    clock = _Clock()
    monkeypatch.setattr(sweep.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(sweep.time, "sleep", clock.sleep)
    calls = []

    def remover(client, native):
        calls.append(clock.now)
        return behaviour(len(calls))

    monkeypatch.setitem(sweep.REMOVERS, "dynamodb:table", remover)
    [removal] = sweep.remove(object(), [Resource("dynamodb:table", "t", "eu-west-1")], timeout=timeout)
    return removal, calls, clock


def _unreachable():
    from botocore.exceptions import EndpointConnectionError

    return EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")


def test_an_endpoint_unreachable_for_90_seconds_ends_that_removal_early(monkeypatch):
    from drplan.aws import UNREACHABLE_GIVE_UP

    def behaviour(n):
        raise _unreachable()

    removal, calls, _ = _removal_with(monkeypatch, behaviour)
    assert not removal.removed
    assert "unreachable for 90 s" in removal.error and "dynamodb.eu-west-1" in removal.error
    # it kept trying with a back-off, and stopped at the give-up, not at the 30-minute deadline
    assert len(calls) > 3
    assert UNREACHABLE_GIVE_UP <= calls[-1] - calls[0] < UNREACHABLE_GIVE_UP + 15


def test_a_short_outage_is_waited_out_and_the_removal_proved(monkeypatch):
    def behaviour(n):
        if n <= 4:
            raise _unreachable()
        return None if n >= 6 else "deleting"

    removal, calls, _ = _removal_with(monkeypatch, behaviour)
    assert removal.removed and removal.error is None
    assert len(calls) == 6


def test_throttling_is_retried_until_the_deadline_and_then_reported(monkeypatch):
    from botocore.exceptions import ClientError

    def behaviour(n):
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DeleteTable"
        )

    removal, calls, _ = _removal_with(monkeypatch, behaviour, timeout=120.0)
    assert not removal.removed
    assert "kept failing" in removal.error and "ThrottlingException" in removal.error
    assert calls[-1] - calls[0] <= 120.0


def test_a_dead_endpoint_costs_one_give_up_not_one_per_round_of_deletions(monkeypatch):
    """DB instances are deleted in a round before their clusters: with AWS unreachable, the second
    round gives up at once instead of waiting another 90 s."""
    from drplan.aws import UNREACHABLE_GIVE_UP
    from drplan.engine import sweep
    from drplan.resources import Resource

    clock = _Clock()
    monkeypatch.setattr(sweep.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(sweep.time, "sleep", clock.sleep)
    calls: dict[str, list[float]] = {"rds:db": [], "rds:cluster": []}

    def remover(kind):
        def remove(client, native):
            calls[kind].append(clock.now)
            raise _unreachable()

        return remove

    for kind in calls:
        monkeypatch.setitem(sweep.REMOVERS, kind, remover(kind))
    start = clock.now
    removals = sweep.remove(
        object(), [Resource("rds:cluster", "c", "eu-west-1"), Resource("rds:db", "i", "eu-west-1")]
    )
    assert [r.removed for r in removals] == [False, False]
    assert all("unreachable" in r.error for r in removals)
    assert calls["rds:cluster"] == []  # the endpoint had been down for 90 s already: not tried
    assert "not tried" in removals[0].error
    assert clock.now - start < UNREACHABLE_GIVE_UP + 15


def test_reachability_forgets_an_outage_nobody_has_seen_lately():
    from drplan.aws import Reachability

    now = [0.0]
    seen = Reachability(lambda: now[0])
    assert seen.unreachable() == 0.0 and seen.down_for() == 0.0
    now[0] = 20.0
    assert seen.unreachable() == 20.0 and seen.down_for() == 20.0
    now[0] = 20.0 + Reachability.STALE + 1  # no call has found it down since: it may be back
    assert seen.down_for() == 0.0
    assert seen.unreachable() == 0.0  # a new outage starts counting again
    seen.answered()
    assert seen.down_for() == 0.0
