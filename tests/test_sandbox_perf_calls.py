"""What makes a sandbox drill cheap without changing what it proves: the emulator answers as AWS
does (owned snapshots only), the sandbox looks things up by identifier and by name instead of
listing everything, seeds with batch writes, and botocore's API models are read once per process
(by drplan's sessions and by moto's). Behaviour only: no timings. That the sandbox's calls go to
the emulator in-process is tested in test_sandbox_inprocess.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from drplan import aws as aws_module
from drplan.aws import AwsSession
from drplan.errors import AwsError
from drplan.model import build_plan
from drplan.sandbox import CREDENTIALS, Sandbox, start_sandbox
from drplan.sandbox.emulator_fixes import fix_ec2_snapshot_owners
from drplan.sandbox.emulator_speedups import (
    sessions_share_the_loader,
    share_method_urls,
    share_region_lookups,
)
from drplan.sandbox.seed import seed_plan
from drplan.sandbox.seeders.dynamodb import ITEMS
from tests.runs import one_step, plan_data

ACCOUNT = "123456789012"  # moto's


def _calls(client: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every call a client makes from now on, with its parameters."""
    seen: list[tuple[str, dict[str, Any]]] = []
    client.meta.events.register(
        "provide-client-params", lambda params, model, **_: seen.append((model.name, dict(params)))
    )
    return seen


@pytest.fixture
def box() -> Iterator[Sandbox]:
    plan = build_plan(one_step("wait", {"duration": "PT1S"}))
    with start_sandbox(plan, seed=False) as sandbox:
        yield sandbox


# --- the emulator answers OwnerIds as AWS does -----------------------------------------------------


def test_describe_snapshots_owned_by_self_lists_only_the_accounts_own_snapshots(monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "true")  # snapshots owned by other accounts
    assert fix_ec2_snapshot_owners()
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
        tagged = ec2.create_snapshot(
            VolumeId=volume,
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "app", "Value": "orders"}]}],
        )["SnapshotId"]
        other = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        everything = ec2.describe_snapshots()["Snapshots"]
        assert len(everything) > 2  # moto's public images have snapshots, owned by other accounts

        for owners in (["self"], [ACCOUNT]):
            mine = ec2.describe_snapshots(OwnerIds=owners)["Snapshots"]
            assert {s["SnapshotId"] for s in mine} == {tagged, other}
            assert {s["OwnerId"] for s in mine} == {ACCOUNT}
        by_tag = ec2.describe_snapshots(
            OwnerIds=["self"],
            Filters=[{"Name": "tag:app", "Values": ["orders"]}, {"Name": "status", "Values": ["completed"]}],
        )["Snapshots"]
        assert [s["SnapshotId"] for s in by_tag] == [tagged]
        assert ec2.describe_snapshots(OwnerIds=["111122223333"])["Snapshots"] == []
        assert [
            s["SnapshotId"]
            for s in ec2.describe_snapshots(OwnerIds=["self"], SnapshotIds=[other])["Snapshots"]
        ] == [other]
        # An alias is left to moto as it was.
        assert len(ec2.describe_snapshots(OwnerIds=["amazon"])["Snapshots"]) == len(everything)


def test_the_sandbox_loads_no_public_image_catalogue_and_puts_the_setting_back(monkeypatch):
    monkeypatch.delenv("MOTO_EC2_LOAD_DEFAULT_AMIS")  # the tests' own setting (conftest)
    plan = build_plan(one_step("wait", {"duration": "PT1S"}))
    with start_sandbox(plan, seed=False) as sandbox:
        ec2 = sandbox.client("ec2", "us-east-1")
        assert ec2.describe_images(Owners=["amazon"])["Images"] == []
        assert ec2.describe_snapshots()["Snapshots"] == []
    assert "MOTO_EC2_LOAD_DEFAULT_AMIS" not in os.environ


# --- the sandbox's own look-ups ---------------------------------------------------------------------


def test_a_database_endpoint_is_looked_up_by_its_identifier_not_by_listing_every_database(box):
    rds = box.client("rds", "us-east-1")
    for name in ("orders", "billing"):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBInstanceClass="db.t4g.micro",
            Engine="postgres",
            AllocatedStorage=20,
            MasterUsername="app",
            MasterUserPassword="sandbox-secret",
        )
    address = rds.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]["Endpoint"][
        "Address"
    ]
    calls = _calls(rds)

    route = box.route(address, 5432, False, content=False)
    assert route.unverifiable is None and route.port == box.standin.port
    missing = box.route(address.replace("orders", "nothing", 1), 5432, False, content=False)
    assert missing.unverifiable is not None

    described = [params for name, params in calls if name in ("DescribeDBInstances", "DescribeDBClusters")]
    assert described and all(
        params.get("DBInstanceIdentifier") or params.get("DBClusterIdentifier") for params in described
    )
    assert {p.get("DBInstanceIdentifier") for p in described} >= {"orders", "nothing"}


def test_a_name_is_resolved_from_the_records_of_that_name_not_the_whole_zone(box):
    rds = box.client("rds", "us-east-1")
    rds.create_db_instance(
        DBInstanceIdentifier="orders",
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="app",
        MasterUserPassword="sandbox-secret",
    )
    address = rds.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]["Endpoint"][
        "Address"
    ]
    route53 = box.client("route53", "us-east-1")
    zone = route53.create_hosted_zone(Name="example.com.", CallerReference="perf-test")["HostedZone"]["Id"]
    changes = [
        {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": f"host-{i:03d}.example.com.",
                "Type": "A",
                "TTL": 60,
                "ResourceRecords": [{"Value": "192.0.2.1"}],
            },
        }
        for i in range(40)
    ]
    changes.append(
        {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": "zz-db.example.com.",  # listed after the 40 others
                "Type": "CNAME",
                "TTL": 60,
                "ResourceRecords": [{"Value": address}],
            },
        }
    )
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    calls = _calls(route53)

    assert box.route("zz-db.example.com", 5432, False, content=False).unverifiable is None
    assert box.route("host-007.example.com", 80, False, content=False).unverifiable is not None

    listed = [params for name, params in calls if name == "ListResourceRecordSets"]
    assert listed and all(params.get("StartRecordName") for params in listed)
    assert sum(name == "ListHostedZones" for name, _ in calls) == 1  # nothing changed in between


def test_a_check_reuses_what_it_looked_up_in_route53_until_route53_changes(box):
    """Each routed check listed the hosted zones again (ListHostedZones: ~58 of an 80-service
    drill's ~1,270 calls; now ~4) and each try a name's records. The answers are reused while no
    call has changed Route 53, and a change (here over the loopback server, which the same
    application serves) is seen by the next try."""
    rds = box.client("rds", "us-east-1")
    rds.create_db_instance(
        DBInstanceIdentifier="orders",
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="app",
        MasterUserPassword="sandbox-secret",
    )
    address = rds.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]["Endpoint"][
        "Address"
    ]
    route53 = box.client("route53", "us-east-1")
    zone = route53.create_hosted_zone(Name="example.com.", CallerReference="reuse")["HostedZone"]["Id"]

    def point(target: str, client: Any = route53) -> None:
        change = {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": "db.example.com.",
                "Type": "CNAME",
                "TTL": 60,
                "ResourceRecords": [{"Value": target}],
            },
        }
        client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [change]})

    point(address)
    calls = _calls(route53)
    for _ in range(5):
        assert box.route("db.example.com", 5432, False, content=False).unverifiable is None
    asked = [name for name, _ in calls]
    assert asked.count("ListHostedZones") == 1 and asked.count("ListResourceRecordSets") == 1

    outside = boto3.client(
        "route53",
        region_name="us-east-1",
        endpoint_url=box.endpoint_url,
        aws_access_key_id=CREDENTIALS[0],
        aws_secret_access_key=CREDENTIALS[1],
    )
    point("nowhere.invalid", outside)
    assert box.route("db.example.com", 5432, False, content=False).unverifiable is not None
    point(address)
    assert box.route("db.example.com", 5432, False, content=False).unverifiable is None


# --- seeding ---------------------------------------------------------------------------------------


def test_a_seeded_table_gets_all_its_items_in_batch_writes(box):
    plan = build_plan(
        plan_data(
            {
                "svc": {
                    "steps": [
                        {
                            "id": "s",
                            "uses": "aws.dynamodb.restore_backup",
                            "with": {"source_table": "orders", "target": "orders-restored"},
                        }
                    ]
                }
            }
        )
    )
    box.plan = plan
    dynamodb = box.client("dynamodb", "us-east-1")
    calls = _calls(dynamodb)

    assert seed_plan(box) == []

    names = [name for name, _ in calls]
    assert "PutItem" not in names
    assert 1 <= names.count("BatchWriteItem") <= -(-ITEMS // 25) * 2
    items = dynamodb.scan(TableName="orders")["Items"]
    assert sorted(i["pk"]["S"] for i in items) == [f"item-{i:03d}" for i in range(ITEMS)]
    assert dynamodb.list_backups(TableName="orders")["BackupSummaries"]


# --- botocore's API models, read once ----------------------------------------------------------------


def test_sessions_share_one_model_loader_and_keep_their_own_settings():
    first = AwsSession(credentials=("a", "b"), region="us-east-1", endpoint_url="http://127.0.0.1:9")
    second = AwsSession(credentials=("c", "d"), region="eu-west-1", endpoint_url="http://127.0.0.1:9")
    first.client("s3"), second.client("s3")
    loaders = {id(s._base_session()._session.get_component("data_loader")) for s in (first, second)}
    assert len(loaders) == 1
    loader = first._base_session()._session.get_component("data_loader")
    assert len(loader.search_paths) == len(set(loader.search_paths))
    assert first.client("s3").meta.region_name == "us-east-1"
    assert second.client("s3").meta.region_name == "eu-west-1"
    assert first._base_session().get_credentials().access_key == "a"
    assert second._base_session().get_credentials().access_key == "c"
    assert aws_module._LOADERS


def test_an_unknown_profile_still_says_so():
    with pytest.raises(AwsError, match="cannot open AWS profile"):
        AwsSession(profile="drplan-no-such-profile", region="us-east-1").client("s3")


# --- moto reads botocore's files once, through the shared loader ------------------------------------


def test_moto_finds_rest_operations_in_the_same_table_without_a_client_per_region(box, monkeypatch):
    from moto.core import responses

    assert share_method_urls() and share_method_urls()  # idempotent
    # botocore's S3 clients rewrite the request URIs of the models they use (the bucket moves to
    # the host), and the sandbox's clients share their models: the table must not follow them.
    s3 = box.client("s3", "us-east-1")
    s3.create_bucket(Bucket="uris-example")
    s3.head_bucket(Bucket="uris-example")
    shared = responses._get_method_urls
    moto_own = shared.__wrapped__.__wrapped__  # moto's, without its cache
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # moto's own reads a fresh default session
    for service in ("s3", "route53", "lambda", "backup", "awslambda"):
        table = shared(service, "us-east-1")
        assert table == moto_own(service, "eu-west-1")  # the same URIs, whatever the Region
        assert shared(service, "ap-south-1") is table  # built once per service
    assert shared("s3", "us-east-1")["PUT"]["^/(?P<Bucket>.+)$"] == "CreateBucket"


def test_moto_lists_regions_through_the_shared_loader_with_the_same_answers():
    from moto.core.base_backend import AccountSpecificBackend

    assert share_region_lookups()
    session = AccountSpecificBackend.get_session()
    assert session is AccountSpecificBackend.get_session()
    plain = boto3.Session()
    for service in ("ec2", "rds", "s3", "dynamodb"):
        for partition in plain.get_available_partitions():
            assert session.get_available_regions(
                service, partition_name=partition
            ) == plain.get_available_regions(service, partition_name=partition)
    shared_loader = aws_module._botocore_session().get_component("data_loader")
    assert session._session.get_component("data_loader") is shared_loader


def test_sessions_made_while_the_sandbox_starts_share_the_loader_and_boto3_is_put_back():
    original = boto3.Session
    shared_loader = aws_module._botocore_session().get_component("data_loader")
    with sessions_share_the_loader():
        made = boto3.Session()
        assert made._session.get_component("data_loader") is shared_loader
        assert made.get_available_regions("ec2") == original().get_available_regions("ec2")
        own = boto3.Session(botocore_session=aws_module._botocore_session())
        assert own._session.get_component("data_loader") is shared_loader
    assert boto3.Session is original
    assert boto3.Session()._session.get_component("data_loader") is not shared_loader
