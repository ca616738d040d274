"""aws.backup.restore, against botocore's Stubber instead of moto.

moto does not implement AWS Backup recovery points or restore jobs ("Not yet implemented"), so
these tests put a ``botocore.stub.Stubber`` on real boto3 clients (backup, rds, dynamodb, ...).
The Stubber validates every request against the real service model, checks its parameters
exactly (``Metadata`` included) and validates every canned response too; a call nobody
expected fails the test. A tiny fake AwsAccess hands the stubbed clients to the action, whose
methods are called directly, and once through the real runner (``run_plan(aws=...)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from drplan.actions import registry
from drplan.actions._aws import aws_tags
from drplan.actions.backup.targets import TYPES, build_metadata, type_from_arn
from drplan.actions.base import AwsAccess, StepContext
from drplan.aws import READ_ONLY_PREFIXES
from drplan.engine.events import EventBus
from drplan.engine.prepare import prepare
from drplan.engine.runner import Runner
from drplan.errors import StepFailed
from drplan.model import build_plan
from drplan.removal import REMOVERS
from drplan.resources import KINDS, native_id, resource_from_arn
from tests.runs import one_step, run_plan

ACTION = registry()["aws.backup.restore"]
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
ACCOUNT = "123456789012"
VAULT = "payments-dr-vault"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole"
TOKEN = "drplan-t35t1d-svc.s"  # the runner's client token for step svc.s of run t35t1d
DB_ARN = f"arn:aws:rds:us-east-1:{ACCOUNT}:db:payments-ledger"
CLUSTER_ARN = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:analytics"
TABLE_ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/payments-idempotency"
VOLUME_ARN = f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-0a1b2c3d4e5f60718"
RESTORED_DB = f"arn:aws:rds:us-east-1:{ACCOUNT}:db:ledger-dr"
RESTORED_TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/idem-dr"
RDS_METADATA = {
    "DBInstanceIdentifier": "payments-ledger",
    "DBInstanceClass": "db.t3.micro",
    "Engine": "mysql",
    "MultiAZ": "false",
    "AvailabilityZone": "us-east-1a",
    "Port": "3306",
}


class FakeAws(AwsAccess):
    """Hands the action stubbed clients (one per service) and records every operation asked."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.stubs: dict[str, Stubber] = {}
        self.operations: list[str] = []
        self.on_call: Any = None  # run_plan sets it; nothing here reports to it

    def __getitem__(self, service: str) -> Stubber:
        if service not in self.stubs:
            client = boto3.client(service, region_name="us-east-1")
            client.meta.events.register("before-parameter-build", self._record)
            self.clients[service], self.stubs[service] = client, Stubber(client)
            self.stubs[service].activate()
        return self.stubs[service]

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(f"{model.service_model.service_name}:{model.name}")

    def client(self, service: str, *, region: str | None = None, role_arn: str | None = None) -> Any:
        self[service]
        return self.clients[service]

    def region_of(self, region: str | None) -> str:
        return region or "us-east-1"


@pytest.fixture
def aws() -> Iterator[FakeAws]:
    fake = FakeAws()
    yield fake
    for stub in fake.stubs.values():
        stub.assert_no_pending_responses()  # every call the test expected was made


def context(aws: FakeAws, params: dict[str, Any], *, rpo: str | None = None) -> StepContext:
    data = one_step("aws.backup.restore", {"iam_role_arn": ROLE, **params})
    if rpo:
        data["services"]["svc"]["objectives"] = {"rpo": rpo}
    prepared = prepare(build_plan(data), "recover", registry(), run_id="t35t1d")
    runner = Runner(prepared, aws, EventBus("t35t1d"))
    runner.started_at = NOW
    step = prepared.steps["svc.s"]
    return runner.context(step, step.params)


def rp(name: str) -> str:
    return f"arn:aws:backup:us-east-1:{ACCOUNT}:recovery-point:{name}"


def point(
    name: str, status: str = "COMPLETED", age: timedelta = timedelta(hours=2), **extra: Any
) -> dict[str, Any]:
    fields = {"ResourceType": "RDS", "ResourceArn": DB_ARN, **extra}
    return {
        "RecoveryPointArn": rp(name),
        "BackupVaultName": VAULT,
        "Status": status,
        "CreationDate": NOW - age,
        **fields,
    }


def expect_points(aws: FakeAws, pages: list[list[dict[str, Any]]], resource: str = DB_ARN) -> None:
    for i, page in enumerate(pages):
        params = {
            "BackupVaultName": VAULT,
            "ByResourceArn": resource,
            **({"NextToken": f"t{i}"} if i else {}),
        }
        response = {"RecoveryPoints": page, **({"NextToken": f"t{i + 1}"} if i + 1 < len(pages) else {})}
        aws["backup"].add_response("list_recovery_points_by_backup_vault", response, params)


def expect_point(
    aws: FakeAws, name: str, status: str = "COMPLETED", rtype: str = "RDS", resource: str = DB_ARN
) -> None:
    response = {"RecoveryPointArn": rp(name), "Status": status, "CreationDate": NOW - timedelta(hours=3),
                "ResourceType": rtype, "ResourceArn": resource}  # fmt: skip
    aws["backup"].add_response(
        "describe_recovery_point", response, {"BackupVaultName": VAULT, "RecoveryPointArn": rp(name)}
    )


def expect_metadata(aws: FakeAws, name: str, metadata: dict[str, str]) -> None:
    response = {"RecoveryPointArn": rp(name), "RestoreMetadata": metadata}
    aws["backup"].add_response(
        "get_recovery_point_restore_metadata",
        response,
        {"BackupVaultName": VAULT, "RecoveryPointArn": rp(name)},
    )


def expect_missing(aws: FakeAws, service: str, operation: str, params: dict[str, Any], code: str) -> None:
    aws[service].add_client_error(
        operation, service_error_code=code, http_status_code=404, expected_params=params
    )


def expect_start(aws: FakeAws, name: str, metadata: dict[str, str], rtype: str, job: str = "job-1") -> None:
    params = {
        "RecoveryPointArn": rp(name),
        "Metadata": metadata,
        "IamRoleArn": ROLE,
        "IdempotencyToken": TOKEN,
        "ResourceType": rtype,
    }
    aws["backup"].add_response("start_restore_job", {"RestoreJobId": job}, params)


def expect_job(aws: FakeAws, status: str, job: str = "job-1", **extra: Any) -> None:
    aws["backup"].add_response(
        "describe_restore_job", {"RestoreJobId": job, "Status": status, **extra}, {"RestoreJobId": job}
    )


def expect_db(aws: FakeAws, name: str, status: str, **extra: Any) -> None:
    instance = {"DBInstanceIdentifier": name, "DBInstanceStatus": status, **extra}
    aws["rds"].add_response(
        "describe_db_instances", {"DBInstances": [instance]}, {"DBInstanceIdentifier": name}
    )


def expect_table(aws: FakeAws, name: str, status: str) -> None:
    aws["dynamodb"].add_response(
        "describe_table", {"Table": {"TableName": name, "TableStatus": status}}, {"TableName": name}
    )


def start_rds(aws: FakeAws, ctx: StepContext) -> dict[str, Any]:
    """A started RDS restore of payments-ledger as ledger-dr (job-1)."""
    expect_point(aws, "p1")
    expect_metadata(aws, "p1", RDS_METADATA)
    expect_missing(
        aws, "rds", "describe_db_instances", {"DBInstanceIdentifier": "ledger-dr"}, "DBInstanceNotFound"
    )
    expect_start(aws, "p1", {**RDS_METADATA, "DBInstanceIdentifier": "ledger-dr"}, "RDS")
    return ACTION.start(ctx)


def start_table(aws: FakeAws, ctx: StepContext) -> dict[str, Any]:
    """A DynamoDB restore as idem-dr, completed and tagged."""
    expect_point(aws, "t1", rtype="DynamoDB", resource=TABLE_ARN)
    expect_metadata(aws, "t1", {"targetTableName": "payments-idempotency", "encryptionType": "Default"})
    expect_missing(aws, "dynamodb", "describe_table", {"TableName": "idem-dr"}, "ResourceNotFoundException")
    expect_start(aws, "t1", {"targetTableName": "idem-dr", "encryptionType": "Default"}, "DynamoDB")
    handle = ACTION.start(ctx)
    expect_job(aws, "COMPLETED", CreatedResourceArn=RESTORED_TABLE)
    aws["dynamodb"].add_response("tag_resource", {}, {"ResourceArn": RESTORED_TABLE, "Tags": aws_tags(ctx)})
    assert ACTION.poll(ctx, handle).done
    return handle


# --- choosing the recovery point ----------------------------------------------------------------


def test_latest_picks_the_newest_completed_point_across_pages(aws):
    expect_points(aws, [
        [point("old", age=timedelta(days=3)), point("partial", "PARTIAL", age=timedelta(minutes=10))],
        [point("newest", age=timedelta(hours=2)), point("expired", "EXPIRED", age=timedelta(minutes=1))],
    ])  # fmt: skip
    expect_metadata(aws, "newest", RDS_METADATA)
    expect_missing(
        aws, "rds", "describe_db_instances", {"DBInstanceIdentifier": "ledger-dr"}, "DBInstanceNotFound"
    )
    expect_start(aws, "newest", {**RDS_METADATA, "DBInstanceIdentifier": "ledger-dr"}, "RDS")

    handle = ACTION.start(context(aws, {"vault": VAULT, "resource_arn": DB_ARN, "target": "ledger-dr"}))

    assert handle["recovery_point"] == {"id": rp("newest"), "created": (NOW - timedelta(hours=2)).isoformat()}
    assert handle["restore_job_id"] == "job-1"
    assert handle["resources"] == [
        {"kind": "rds:db", "id": "ledger-dr", "region": "us-east-1", "extra": {"restore_job_id": "job-1"}}
    ]


def test_no_completed_point_fails_naming_vault_and_resource(aws):
    expect_points(aws, [[point("partial", "PARTIAL")]])
    with pytest.raises(StepFailed, match=f"vault {VAULT} has no completed recovery point of {DB_ARN}"):
        ACTION.start(context(aws, {"vault": VAULT, "resource_arn": DB_ARN, "target": "ledger-dr"}))


def test_explicit_recovery_point_arn(aws):
    ctx = context(aws, {"recovery_point": rp("p1"), "vault": VAULT, "target": "ledger-dr"})
    handle = start_rds(aws, ctx)  # describe_recovery_point, not a listing
    assert handle["recovery_point"]["id"] == rp("p1")
    assert handle["resource_type"] == "RDS"  # from the recovery point's ResourceType


def test_explicit_arn_without_vault_finds_it_through_the_resource(aws):
    listing = {"RecoveryPoints": [{"RecoveryPointArn": rp("other"), "BackupVaultName": "x"},
                                  {"RecoveryPointArn": rp("p1"), "BackupVaultName": VAULT}]}  # fmt: skip
    aws["backup"].add_response("list_recovery_points_by_resource", listing, {"ResourceArn": DB_ARN})
    ctx = context(aws, {"recovery_point": rp("p1"), "resource_arn": DB_ARN, "target": "ledger-dr"})
    assert start_rds(aws, ctx)["vault"] == VAULT


def test_explicit_arn_needs_a_vault_or_the_resource(aws):
    with pytest.raises(StepFailed, match="needs `vault`"):
        ACTION.start(context(aws, {"recovery_point": rp("p1"), "target": "ledger-dr"}))


def test_explicit_arn_must_be_completed(aws):
    expect_point(aws, "p1", status="PARTIAL")
    with pytest.raises(StepFailed, match="is PARTIAL, not COMPLETED"):
        ACTION.start(context(aws, {"recovery_point": rp("p1"), "vault": VAULT, "target": "ledger-dr"}))


@pytest.mark.parametrize(("max_age", "rpo"), [("PT24H", None), ("rpo", "PT12H")])
def test_max_age_refuses_an_old_point(aws, max_age, rpo):
    expect_points(aws, [[point("old", age=timedelta(days=2))]])
    ctx = context(
        aws, {"vault": VAULT, "resource_arn": DB_ARN, "target": "ledger-dr", "max_age": max_age}, rpo=rpo
    )
    with pytest.raises(StepFailed, match="2d old, older than the allowed"):
        ACTION.start(ctx)
    assert "backup:StartRestoreJob" not in aws.operations


# --- restore metadata ------------------------------------------------------------------------------

KMS_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k1"
METADATA_CASES = {
    "RDS": (
        DB_ARN, "ledger-dr", RDS_METADATA, {"DBInstanceClass": "db.m6g.large", "MultiAZ": "true"},
        # AvailabilityZone dropped: RDS refuses one for a Multi-AZ instance
        {"DBInstanceIdentifier": "ledger-dr", "DBInstanceClass": "db.m6g.large", "Engine": "mysql",
         "MultiAZ": "true", "Port": "3306"},
        ("rds", "describe_db_instances", {"DBInstanceIdentifier": "ledger-dr"}, "DBInstanceNotFound"),
    ),
    "Aurora": (
        CLUSTER_ARN, "analytics-dr",
        {"DBClusterIdentifier": "analytics", "Engine": "aurora-postgresql", "DBSubnetGroupName": "default"},
        {"DBSubnetGroupName": "dr-subnets"},
        {"DBClusterIdentifier": "analytics-dr", "Engine": "aurora-postgresql",
         "DBSubnetGroupName": "dr-subnets"},
        ("rds", "describe_db_clusters", {"DBClusterIdentifier": "analytics-dr"}, "DBClusterNotFoundFault"),
    ),
    "DynamoDB": (
        TABLE_ARN, "idem-dr", {"targetTableName": "payments-idempotency", "encryptionType": "Default"},
        {"encryptionType": "KMS", "kmsMasterKeyArn": KMS_KEY},
        {"targetTableName": "idem-dr", "encryptionType": "KMS", "kmsMasterKeyArn": KMS_KEY},
        ("dynamodb", "describe_table", {"TableName": "idem-dr"}, "ResourceNotFoundException"),
    ),
    "EBS": (
        VOLUME_ARN, "settlement-dr",
        {"availabilityZone": "us-west-2a", "encrypted": "false", "volumeSize": "100", "volumeType": "gp2"},
        {"availabilityZone": "us-east-1b", "volumeType": "gp3"},
        {"availabilityZone": "us-east-1b", "encrypted": "false", "volumeSize": "100", "volumeType": "gp3"},
        None,  # volumes have no name to check: the result is tagged Name=target
    ),
}  # fmt: skip


@pytest.mark.parametrize("rtype", list(METADATA_CASES))
def test_metadata_per_type_with_overrides_last(aws, rtype):
    resource, target, restore, overrides, expected, lookup = METADATA_CASES[rtype]
    expect_point(aws, "p1", rtype=rtype, resource=resource)
    expect_metadata(aws, "p1", restore)
    if lookup:
        expect_missing(aws, *lookup)
    expect_start(aws, "p1", expected, rtype)  # the Stubber compares Metadata exactly
    params = {"recovery_point": rp("p1"), "vault": VAULT, "target": target, "metadata": overrides}
    handle = ACTION.start(context(aws, params))
    assert handle["resources"][0]["kind"] == TYPES[rtype].kind


ARNS = {
    "RDS": (DB_ARN, "payments-ledger"),
    "Aurora": (CLUSTER_ARN, "analytics"),
    "DynamoDB": (TABLE_ARN, "payments-idempotency"),
    "EBS": (VOLUME_ARN, "vol-0a1b2c3d4e5f60718"),
    "EC2": (f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0abc", "i-0abc"),
    "EFS": (f"arn:aws:elasticfilesystem:us-east-1:{ACCOUNT}:file-system/fs-0abc", "fs-0abc"),
    "S3": ("arn:aws:s3:::payments-files", "payments-files"),
    "FSx": (f"arn:aws:fsx:us-east-1:{ACCOUNT}:file-system/fs-0def", "fs-0def"),
    # DB cluster ARNs look alike: without resource_type they read as Aurora (the recovery point's
    # own ResourceType tells DocumentDB and Neptune apart)
    "DocumentDB": (f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:catalogue", "catalogue"),
    "Neptune": (f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:graph", "graph"),
}


@pytest.mark.parametrize("rtype", list(TYPES))
def test_each_type_is_a_resource_kind_with_an_arn_and_a_remover(rtype):
    """One registry: the kind of every type AWS Backup restores names its ARN (drplan.resources) and
    its deletion (drplan.removal); the action keeps no parsing or deleting of its own."""
    arn, native = ARNS[rtype]
    kind = TYPES[rtype].kind
    assert kind in KINDS and kind in REMOVERS
    assert type_from_arn(arn) == ("Aurora" if kind == "rds:cluster" else rtype)
    assert native_id(arn) == native
    found = resource_from_arn(arn, "us-east-1")
    assert found is not None and (found.kind, found.id, found.region, found.arn) == (
        kind,
        native,
        "us-east-1",
        arn,
    )


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:rds:us-east-1:1:snapshot:s1",  # not a resource AWS Backup restores
        "arn:aws:ec2:us-east-1:1:image/ami-1",
        "arn:aws:kms:us-east-1:1:key/k1",
        "not-an-arn",
        "${db.restore.arn}",
    ],
)
def test_arns_of_other_resources_have_no_type(arn):
    assert type_from_arn(arn) is None


def test_native_id_of_an_arn_drplan_has_no_kind_for_is_its_last_part():
    assert native_id("arn:aws:kms:us-east-1:1:key/k1") == "k1"
    assert native_id("arn:aws:sns:us-east-1:1:alerts") == "alerts"


def test_metadata_rules_for_names_flags_and_keys():
    s3 = build_metadata(
        TYPES["S3"], {"DestinationBucketName": "src", "Encrypted": "false"}, "files-dr", {"NewBucket": "true"}
    )
    assert s3 == {"DestinationBucketName": "files-dr", "NewBucket": "true", "Encrypted": "false"}
    efs = build_metadata(TYPES["EFS"], {"file-system-id": "fs-1", "CreationToken": "x"}, "share-dr", {})
    assert efs == {"file-system-id": "fs-1", "CreationToken": "share-dr", "newFileSystem": "true"}
    ec2 = build_metadata(
        TYPES["EC2"],
        {"InstanceType": "t3.micro", "NetworkInterfaces": "[...]"},
        "web",
        {"SubnetId": "subnet-1"},
    )
    assert ec2 == {"InstanceType": "t3.micro", "SubnetId": "subnet-1"}
    # keys match case-insensitively; the user's spelling wins
    assert build_metadata(TYPES["EBS"], {"volumeType": "gp2"}, "v", {"VolumeType": "gp3"}) == {
        "VolumeType": "gp3"
    }
    with pytest.raises(ValueError, match="set `target` instead"):
        build_metadata(TYPES["RDS"], RDS_METADATA, "ledger-dr", {"dbinstanceidentifier": "payments-ledger"})
    with pytest.raises(ValueError, match="never into an existing one"):
        build_metadata(TYPES["S3"], {}, "files-dr", {"NewBucket": "false"})


def test_refuses_an_existing_target_and_leaves_it_alone(aws):
    expect_point(aws, "p1")
    expect_metadata(aws, "p1", RDS_METADATA)
    expect_db(aws, "ledger-dr", "available")
    with pytest.raises(StepFailed, match="DB instance ledger-dr already exists; refusing to overwrite it"):
        ACTION.start(context(aws, {"recovery_point": rp("p1"), "vault": VAULT, "target": "ledger-dr"}))
    assert "backup:StartRestoreJob" not in aws.operations


# --- the job --------------------------------------------------------------------------------------


def test_poll_running_then_completed_with_endpoint(aws):
    ctx = context(aws, {"recovery_point": rp("p1"), "vault": VAULT, "target": "ledger-dr"})
    handle = start_rds(aws, ctx)
    expect_job(aws, "RUNNING", PercentDone="40.00%")
    expect_job(aws, "COMPLETED", CreatedResourceArn=RESTORED_DB)
    aws["rds"].add_response("add_tags_to_resource", {}, {"ResourceName": RESTORED_DB, "Tags": aws_tags(ctx)})
    expect_db(
        aws,
        "ledger-dr",
        "available",
        Endpoint={"Address": "ledger-dr.c1.us-east-1.rds.amazonaws.com", "Port": 3306},
    )

    running = ACTION.poll(ctx, handle)
    assert not running.done and running.note == "restore job job-1 RUNNING (40.00% done)"
    assert ACTION.poll(ctx, handle).done
    assert handle["resources"][0]["arn"] == RESTORED_DB
    assert ACTION.result(ctx, handle) == {
        "resource_arn": RESTORED_DB,
        "resource_id": "ledger-dr",
        "recovery_point_arn": rp("p1"),
        "restore_job_id": "job-1",
        "name": "ledger-dr",
        "endpoint": "ledger-dr.c1.us-east-1.rds.amazonaws.com",
        "port": 3306,
    }


def test_failed_job_fails_the_step_with_its_message(aws):
    ctx = context(aws, {"recovery_point": rp("p1"), "vault": VAULT, "target": "ledger-dr"})
    handle = start_rds(aws, ctx)
    expect_job(aws, "FAILED", StatusMessage="Access denied to KMS key")
    poll = ACTION.poll(ctx, handle)
    assert poll.failed == "restore job job-1 FAILED: Access denied to KMS key"


def test_ebs_volume_is_tagged_with_its_name(aws):
    resource, target, restore, overrides, expected, _ = METADATA_CASES["EBS"]
    ctx = context(aws, {"recovery_point": rp("v1"), "vault": VAULT, "target": target, "metadata": overrides})
    expect_point(aws, "v1", rtype="EBS", resource=resource)
    expect_metadata(aws, "v1", restore)
    expect_start(aws, "v1", expected, "EBS")
    handle = ACTION.start(ctx)
    created = f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-0ffee"
    expect_job(aws, "COMPLETED", CreatedResourceArn=created)
    aws["ec2"].add_response(
        "create_tags", {}, {"Resources": ["vol-0ffee"], "Tags": aws_tags(ctx, {"Name": target})}
    )
    assert ACTION.poll(ctx, handle).done
    assert ACTION.result(ctx, handle)["resource_arn"] == created  # no endpoint, no extra call


# --- undo -----------------------------------------------------------------------------------------


def test_undo_deletes_the_restored_table_and_verifies(aws):
    ctx = context(aws, {"recovery_point": rp("t1"), "vault": VAULT, "target": "idem-dr"})
    handle = start_table(aws, ctx)
    expect_table(aws, "idem-dr", "ACTIVE")
    aws["dynamodb"].add_response("delete_table", {}, {"TableName": "idem-dr"})
    expect_table(aws, "idem-dr", "DELETING")
    expect_missing(aws, "dynamodb", "describe_table", {"TableName": "idem-dr"}, "ResourceNotFoundException")

    undo = ACTION.undo(ctx, handle)
    assert not ACTION.poll_undo(ctx, handle, undo).done
    assert ACTION.poll_undo(ctx, handle, undo).note == "table idem-dr deleted"


def test_undo_unprotects_and_deletes_the_restored_instance(aws):
    ctx = context(aws, {"recovery_point": rp("p1"), "vault": VAULT, "target": "ledger-dr"})
    handle = start_rds(aws, ctx)
    handle["resource_arn"] = RESTORED_DB  # as poll records it
    protected = "Cannot delete protected DB Instance, please disable deletion protection and try again."
    delete = {"DBInstanceIdentifier": "ledger-dr", "SkipFinalSnapshot": True, "DeleteAutomatedBackups": True}
    expect_db(aws, "ledger-dr", "available")
    aws["rds"].add_client_error(
        "delete_db_instance", "InvalidParameterCombination", protected, 400, expected_params=delete
    )
    aws["rds"].add_response(
        "modify_db_instance",
        {},
        {"DBInstanceIdentifier": "ledger-dr", "DeletionProtection": False, "ApplyImmediately": True},
    )
    expect_db(aws, "ledger-dr", "available")
    aws["rds"].add_response("delete_db_instance", {}, delete)
    expect_missing(
        aws, "rds", "describe_db_instances", {"DBInstanceIdentifier": "ledger-dr"}, "DBInstanceNotFound"
    )

    undo = ACTION.undo(ctx, handle)
    assert not ACTION.poll_undo(ctx, handle, undo).done  # deletes now that protection is off
    assert ACTION.poll_undo(ctx, handle, undo).note == "DB instance ledger-dr deleted"


def test_undo_waits_for_a_running_job_then_deletes_what_it_made(aws):
    ctx = context(aws, {"recovery_point": rp("p1"), "vault": VAULT, "target": "ledger-dr"})
    handle = start_rds(aws, ctx)
    expect_job(aws, "RUNNING")  # undo: nothing created yet
    expect_job(aws, "RUNNING")
    expect_job(aws, "COMPLETED", CreatedResourceArn=RESTORED_DB)
    expect_db(aws, "ledger-dr", "available")
    aws["rds"].add_response(
        "delete_db_instance",
        {},
        {"DBInstanceIdentifier": "ledger-dr", "SkipFinalSnapshot": True, "DeleteAutomatedBackups": True},
    )
    expect_missing(
        aws, "rds", "describe_db_instances", {"DBInstanceIdentifier": "ledger-dr"}, "DBInstanceNotFound"
    )

    undo = ACTION.undo(ctx, handle)
    assert "waiting for restore job job-1" in ACTION.poll_undo(ctx, handle, undo).note
    assert not ACTION.poll_undo(ctx, handle, undo).done  # the job completed: delete issued
    assert ACTION.poll_undo(ctx, handle, undo).done


def test_undo_of_a_job_that_created_nothing(aws):
    ctx = context(aws, {"recovery_point": rp("p1"), "vault": VAULT, "target": "ledger-dr"})
    handle = start_rds(aws, ctx)
    expect_job(aws, "FAILED")
    expect_job(aws, "FAILED")
    undo = ACTION.undo(ctx, handle)
    assert ACTION.poll_undo(ctx, handle, undo).note == "restore job job-1 ended FAILED, creating nothing"
    assert not any(op.startswith("rds:Delete") for op in aws.operations)  # the name is never trusted


# --- preflight ------------------------------------------------------------------------------------


def test_preflight_reports_point_role_metadata_and_free_target_with_reads_only(aws):
    expect_points(aws, [[point("p1", age=timedelta(hours=5))]])
    expect_metadata(aws, "p1", RDS_METADATA)
    expect_missing(
        aws, "rds", "describe_db_instances", {"DBInstanceIdentifier": "ledger-dr"}, "DBInstanceNotFound"
    )
    ctx = context(aws, {"vault": VAULT, "resource_arn": DB_ARN, "target": "ledger-dr"}, rpo="PT4H")

    results = ACTION.preflight(ctx)

    assert [r.status for r in results] == ["warning", "ok", "ok", "ok"]
    assert "over the RPO" in results[0].message and results[0].facts["recovery_point"] == rp("p1")
    assert results[2].facts["metadata"]["DBInstanceIdentifier"] == "ledger-dr"
    assert results[3].message == "DB instance name ledger-dr is free"
    assert aws.operations and all(op.split(":")[1].startswith(READ_ONLY_PREFIXES) for op in aws.operations)


def test_preflight_errors_without_raising(aws):
    expect_points(aws, [[]])
    expect_db(aws, "ledger-dr", "available")
    ctx = context(aws, {"vault": VAULT, "resource_arn": DB_ARN, "target": "ledger-dr"})
    ctx = dataclasses.replace(ctx, params={**ctx.params, "iam_role_arn": f"arn:aws:iam::{ACCOUNT}:user/ops"})

    results = ACTION.preflight(ctx)

    assert [r.status for r in results] == ["error", "error", "error"]
    assert "no completed recovery point" in results[0].message
    assert "is no role ARN" in results[1].message
    assert results[2].facts == {"target": "ledger-dr"}  # a collision: drills refuse to start


def test_preflight_warns_about_a_volume_outside_the_region_and_about_references(aws):
    expect_point(aws, "v1", rtype="EBS", resource=VOLUME_ARN)
    expect_metadata(aws, "v1", {"availabilityZone": "us-west-2a"})
    ctx = context(aws, {"recovery_point": rp("v1"), "vault": VAULT, "target": "settlement-dr"})
    assert ACTION.preflight(ctx)[-1].message.startswith(
        "the volume would be made in us-west-2a, not us-east-1"
    )

    deferred = dataclasses.replace(
        ctx, params={**ctx.params, "recovery_point": "${backup.copy.recovery_point_arn}"}
    )
    assert ACTION.preflight(deferred)[0].status == "warning"  # no AWS call for an unknown point


# --- through the engine ---------------------------------------------------------------------------


def test_one_step_plan_through_the_real_runner_and_undo(aws):
    expect_points(aws, [[point("t1", ResourceType="DynamoDB", ResourceArn=TABLE_ARN)]], resource=TABLE_ARN)
    expect_metadata(aws, "t1", {"targetTableName": "payments-idempotency", "encryptionType": "Default"})
    expect_missing(aws, "dynamodb", "describe_table", {"TableName": "idem-dr"}, "ResourceNotFoundException")
    expect_start(aws, "t1", {"targetTableName": "idem-dr", "encryptionType": "Default"}, "DynamoDB")
    expect_job(aws, "RUNNING", PercentDone="10%")
    expect_job(aws, "COMPLETED", CreatedResourceArn=RESTORED_TABLE)
    aws["dynamodb"].add_response("tag_resource", {}, {"ResourceArn": RESTORED_TABLE, "Tags": ANY})
    params = {"vault": VAULT, "resource_arn": TABLE_ARN, "iam_role_arn": ROLE, "target": "idem-dr"}

    run = run_plan(one_step("aws.backup.restore", params), aws=aws)

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert rec.outputs == {
        "resource_arn": RESTORED_TABLE,
        "resource_id": "idem-dr",
        "recovery_point_arn": rp("t1"),
        "restore_job_id": "job-1",
        "name": "idem-dr",
    }
    assert [(r.kind, r.id) for r in rec.resources] == [("dynamodb:table", "idem-dr")]
    assert "restore job job-1 RUNNING (10% done)" in [e.data.get("note") for e in run.events]

    expect_table(aws, "idem-dr", "ACTIVE")
    aws["dynamodb"].add_response("delete_table", {}, {"TableName": "idem-dr"})
    expect_missing(aws, "dynamodb", "describe_table", {"TableName": "idem-dr"}, "ResourceNotFoundException")
    assert run.runner.undo(["svc.s"], reason="test") == []
