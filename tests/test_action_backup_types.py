"""aws.backup.restore of DocumentDB and Neptune clusters and FSx file systems (which moto does not
emulate, or whose restore the sandbox cannot show), and the typed parameters for restores into a DR
account, against botocore's Stubber with real response shapes (see tests/test_action_backup.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from drplan.actions._aws import aws_tags
from drplan.actions.backup.targets import OVERRIDES, TYPES, build_metadata, typed_overrides
from drplan.errors import StepFailed
from drplan.removal import REMOVERS
from drplan.resources import RESTORE_JOB_PREFIX
from tests.test_action_backup import (
    ACCOUNT,
    ACTION,
    NOW,
    VAULT,
    FakeAws,
    context,
    expect_job,
    expect_metadata,
    expect_missing,
    expect_start,
    rp,
)

DOCDB_ARN = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:catalogue"
NEPTUNE_ARN = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:graph"
FSX_ARN = f"arn:aws:fsx:us-east-1:{ACCOUNT}:file-system/fs-0123456789abcdef0"
DR_KEY = "arn:aws:kms:us-east-1:210987654321:key/2f1c6a0e-8d55-4c11-9b1e-1f2a3b4c5d6e"  # the DR account's
SG = "sg-0a1b2c3d4e5f60718"
SUBNET = "subnet-0a1b2c3d4e5f60718"


@pytest.fixture
def aws() -> Iterator[FakeAws]:
    fake = FakeAws()
    yield fake
    for stub in fake.stubs.values():
        stub.assert_no_pending_responses()  # every call the test expected was made


def expect_point(aws: FakeAws, name: str, resource: str, rtype: str | None) -> None:
    """A recovery point; ``rtype`` None: one whose description carries no ResourceType."""
    response = {"RecoveryPointArn": rp(name), "Status": "COMPLETED", "CreationDate": NOW - timedelta(hours=3),
                "ResourceArn": resource, **({"ResourceType": rtype} if rtype else {})}  # fmt: skip
    aws["backup"].add_response(
        "describe_recovery_point", response, {"BackupVaultName": VAULT, "RecoveryPointArn": rp(name)}
    )


def cluster(name: str, engine: str, port: int, **extra: Any) -> dict[str, Any]:
    """A DB cluster as DescribeDBClusters gives it (DocumentDB and Neptune answer through the RDS API)."""
    return {
        "DBClusterIdentifier": name,
        "DBClusterArn": f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:{name}",
        "Engine": engine,
        "Status": "available",
        "Endpoint": f"{name}.cluster-c1.us-east-1.{engine}.amazonaws.com",
        "ReaderEndpoint": f"{name}.cluster-ro-c1.us-east-1.{engine}.amazonaws.com",
        "Port": port,
        "DBClusterMembers": [],
        **extra,
    }


def expect_cluster(aws: FakeAws, body: dict[str, Any]) -> None:
    aws["rds"].add_response(
        "describe_db_clusters", {"DBClusters": [body]}, {"DBClusterIdentifier": body["DBClusterIdentifier"]}
    )


# --- DocumentDB and Neptune -----------------------------------------------------------------------


def test_documentdb_restore_into_a_dr_account_network_with_its_key(aws):
    """The recovery point says DocumentDB (its ARN alone reads as Aurora); the typed parameters
    become the cluster's restore metadata; the outputs are the cluster's endpoints."""
    params = {
        "recovery_point": rp("d1"), "vault": VAULT, "resource_arn": DOCDB_ARN, "target": "catalogue-dr",
        "kms_key": DR_KEY, "subnet_group": "dr-private", "security_groups": [SG],
    }  # fmt: skip
    ctx = context(aws, params)
    expect_point(aws, "d1", DOCDB_ARN, "DocumentDB")
    expect_metadata(aws, "d1", {"DBClusterIdentifier": "catalogue", "Engine": "docdb", "Port": "27017",
                                "DBSubnetGroupName": "prod-private", "VpcSecurityGroupIds": '["sg-0prod"]'})  # fmt: skip
    expect_missing(
        aws, "rds", "describe_db_clusters", {"DBClusterIdentifier": "catalogue-dr"}, "DBClusterNotFoundFault"
    )
    metadata = {
        "DBClusterIdentifier": "catalogue-dr", "Engine": "docdb", "Port": "27017",
        "DBSubnetGroupName": "dr-private", "VpcSecurityGroupIds": json.dumps([SG]), "KmsKeyId": DR_KEY,
    }  # fmt: skip
    expect_start(aws, "d1", metadata, "DocumentDB")
    handle = ACTION.start(ctx)
    assert handle["resources"][0]["kind"] == "rds:cluster" and handle["resources"][0]["id"] == "catalogue-dr"

    created = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:catalogue-dr"
    expect_job(aws, "COMPLETED", CreatedResourceArn=created)
    aws["rds"].add_response("add_tags_to_resource", {}, {"ResourceName": created, "Tags": aws_tags(ctx)})
    assert ACTION.poll(ctx, handle).note == f"restored DocumentDB cluster catalogue-dr ({created})"
    expect_cluster(aws, cluster("catalogue-dr", "docdb", 27017))
    assert ACTION.result(ctx, handle) == {
        "resource_arn": created,
        "resource_id": "catalogue-dr",
        "recovery_point_arn": rp("d1"),
        "restore_job_id": "job-1",
        "name": "catalogue-dr",
        "endpoint": "catalogue-dr.cluster-c1.us-east-1.docdb.amazonaws.com",
        "reader_endpoint": "catalogue-dr.cluster-ro-c1.us-east-1.docdb.amazonaws.com",
        "port": 27017,
    }


def test_neptune_as_declared_when_the_point_names_no_type_and_undo_deletes_instances_first(aws):
    params = {"recovery_point": rp("n1"), "vault": VAULT, "resource_type": "Neptune", "target": "graph-dr"}
    ctx = context(aws, params)
    expect_point(aws, "n1", NEPTUNE_ARN, None)  # a cluster ARN: Aurora by its look, Neptune as declared
    expect_metadata(aws, "n1", {"DBClusterIdentifier": "graph", "Engine": "neptune"})
    expect_missing(
        aws, "rds", "describe_db_clusters", {"DBClusterIdentifier": "graph-dr"}, "DBClusterNotFoundFault"
    )
    expect_start(aws, "n1", {"DBClusterIdentifier": "graph-dr", "Engine": "neptune"}, "Neptune")
    handle = ACTION.start(ctx)
    handle["resource_arn"] = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:graph-dr"  # as poll records it

    # a later step added an instance: it goes first, then the cluster, with no final snapshot
    member = {"DBInstanceIdentifier": "graph-dr-1", "IsClusterWriter": True}
    expect_cluster(aws, cluster("graph-dr", "neptune", 8182, DBClusterMembers=[member]))
    aws["rds"].add_response(
        "describe_db_instances",
        {"DBInstances": [{"DBInstanceIdentifier": "graph-dr-1", "DBInstanceStatus": "available"}]},
        {"DBInstanceIdentifier": "graph-dr-1"},
    )
    aws["rds"].add_response(
        "delete_db_instance",
        {},
        {"DBInstanceIdentifier": "graph-dr-1", "SkipFinalSnapshot": True, "DeleteAutomatedBackups": True},
    )
    aws["rds"].add_response(
        "delete_db_cluster", {}, {"DBClusterIdentifier": "graph-dr", "SkipFinalSnapshot": True}
    )
    expect_missing(
        aws, "rds", "describe_db_clusters", {"DBClusterIdentifier": "graph-dr"}, "DBClusterNotFoundFault"
    )

    undo = ACTION.undo(ctx, handle)
    assert ACTION.poll_undo(ctx, handle, undo).note == "Neptune cluster graph-dr deleted"


def test_a_declared_type_the_recovery_point_contradicts_is_refused(aws):
    expect_point(aws, "n1", NEPTUNE_ARN, "Neptune")
    params = {"recovery_point": rp("n1"), "vault": VAULT, "resource_type": "DocumentDB", "target": "graph-dr"}
    with pytest.raises(StepFailed, match=r"resource_type is DocumentDB, but .* backs up Neptune"):
        ACTION.start(context(aws, params))


# --- FSx --------------------------------------------------------------------------------------------


def test_fsx_restore_is_tagged_with_its_name_and_gives_its_dns_name(aws):
    params = {
        "recovery_point": rp("f1"), "vault": VAULT, "target": "shares-dr",
        "subnets": [SUBNET], "security_groups": [SG], "kms_key": DR_KEY,
    }  # fmt: skip
    ctx = context(aws, params)
    expect_point(aws, "f1", FSX_ARN, "FSx")
    expect_metadata(aws, "f1", {"FileSystemType": "WINDOWS", "StorageCapacity": "32"})
    metadata = {"FileSystemType": "WINDOWS", "StorageCapacity": "32", "KmsKeyId": DR_KEY,
                "SubnetIds": json.dumps([SUBNET]), "SecurityGroupIds": json.dumps([SG])}  # fmt: skip
    expect_start(aws, "f1", metadata, "FSx")  # no name to check first: FSx file systems have none
    handle = ACTION.start(ctx)
    assert handle["resources"][0] == {
        "kind": "fsx:filesystem",
        "id": RESTORE_JOB_PREFIX + "job-1",
        "region": "us-east-1",
        "extra": {"name": "shares-dr", "restore_job_id": "job-1"},
    }

    created = f"arn:aws:fsx:us-east-1:{ACCOUNT}:file-system/fs-0ffee0123456789ab"
    expect_job(aws, "COMPLETED", CreatedResourceArn=created)
    tags = aws_tags(ctx, {"Name": "shares-dr"})
    aws["fsx"].add_response("tag_resource", {}, {"ResourceARN": created, "Tags": tags})
    assert ACTION.poll(ctx, handle).done
    assert handle["resources"][0]["arn"] == created
    dns = "amznfsxq1w2e3r4.corp.example.com"
    system = {"FileSystemId": "fs-0ffee0123456789ab", "FileSystemType": "WINDOWS", "Lifecycle": "AVAILABLE",
              "DNSName": dns, "ResourceARN": created}  # fmt: skip
    aws["fsx"].add_response(
        "describe_file_systems", {"FileSystems": [system]}, {"FileSystemIds": ["fs-0ffee0123456789ab"]}
    )
    out = ACTION.result(ctx, handle)
    assert (out["file_system_id"], out["dns_name"], out["resource_id"]) == (
        "fs-0ffee0123456789ab",
        dns,
        "fs-0ffee0123456789ab",
    )


def test_cleanup_of_a_journaled_fsx_restore_asks_the_job_and_skips_the_final_backup(aws):
    """What `drplan cleanup RUN_ID` does with the journal's ``backup-restore-job:<id>``."""
    created = f"arn:aws:fsx:us-east-1:{ACCOUNT}:file-system/fs-0ffee0123456789ab"
    fs = {"FileSystemId": "fs-0ffee0123456789ab", "FileSystemType": "WINDOWS", "ResourceARN": created}
    ids = {"FileSystemIds": ["fs-0ffee0123456789ab"]}
    for lifecycle in ("AVAILABLE", "DELETING"):
        expect_job(aws, "COMPLETED", CreatedResourceArn=created)
        aws["fsx"].add_response(
            "describe_file_systems", {"FileSystems": [{**fs, "Lifecycle": lifecycle}]}, ids
        )
        if lifecycle == "AVAILABLE":
            aws["fsx"].add_response(
                "delete_file_system",
                {"FileSystemId": "fs-0ffee0123456789ab", "Lifecycle": "DELETING"},
                {"FileSystemId": "fs-0ffee0123456789ab", "WindowsConfiguration": {"SkipFinalBackup": True}},
            )
    expect_job(aws, "COMPLETED", CreatedResourceArn=created)
    aws["fsx"].add_client_error(
        "describe_file_systems", "FileSystemNotFound", http_status_code=400, expected_params=ids
    )
    remover = REMOVERS["fsx:filesystem"]
    assert (
        remover(aws.client, RESTORE_JOB_PREFIX + "job-1")
        == "FSx file system fs-0ffee0123456789ab is AVAILABLE"
    )
    assert "DELETING" in str(remover(aws.client, RESTORE_JOB_PREFIX + "job-1"))
    assert remover(aws.client, RESTORE_JOB_PREFIX + "job-1") is None


def test_cleanup_of_an_instance_restore_still_running_waits_for_the_job(aws):
    expect_job(aws, "RUNNING")
    expect_job(aws, "ABORTED")
    remover = REMOVERS["ec2:instance"]
    assert "RUNNING" in str(remover(aws.client, RESTORE_JOB_PREFIX + "job-1"))
    assert remover(aws.client, RESTORE_JOB_PREFIX + "job-1") is None  # it created nothing
    assert "ec2" not in aws.clients  # never a guess from a name


# --- typed parameters ---------------------------------------------------------------------------


def test_typed_parameters_map_to_each_types_own_keys():
    assert typed_overrides("DynamoDB", {"kms_key": DR_KEY}) == {
        "kmsMasterKeyArn": DR_KEY,
        "encryptionType": "KMS",
    }
    assert typed_overrides("EBS", {"kms_key": DR_KEY, "availability_zone": "us-west-2b"}) == {
        "kmsKeyId": DR_KEY,
        "encrypted": "true",
        "availabilityZone": "us-west-2b",
    }
    assert typed_overrides("RDS", {"instance_type": "db.r6g.large", "security_groups": [SG, "sg-1"]}) == {
        "DBInstanceClass": "db.r6g.large",
        "VpcSecurityGroupIds": json.dumps([SG, "sg-1"]),
    }
    assert typed_overrides("EC2", {"subnet": SUBNET, "instance_profile": "web"}) == {
        "SubnetId": SUBNET,
        "IamInstanceProfileName": "web",
    }
    with pytest.raises(
        ValueError, match="`subnet_group` does not apply to a EFS restore, which takes `kms_key`"
    ):
        typed_overrides("EFS", {"subnet_group": "dr"})
    with pytest.raises(ValueError, match="takes no typed parameters"):
        typed_overrides("S3", {"kms_key": DR_KEY})


def test_every_typed_parameter_has_a_schema_property_and_applies_somewhere():
    from drplan.actions import registry

    properties = registry()["aws.backup.restore"].params_schema or {}
    schema = properties.get("properties") or {}
    used = {param for overrides in OVERRIDES.values() for param in overrides}
    assert set(OVERRIDES) == set(TYPES)
    assert used <= set(schema), sorted(used - set(schema))


def test_typed_keys_keep_the_recovery_points_spelling_and_flags_follow_them():
    rtype = TYPES["EC2"]
    typed = typed_overrides("EC2", {"instance_type": "m7g.large", "security_groups": [SG]})
    restored = {"instanceType": "t3.micro", "NetworkInterfaces": "[...]", "disableApiTermination": "false"}
    assert build_metadata(rtype, restored, "web", {}, typed) == {
        "instanceType": "m7g.large",  # AWS Backup matches keys case-insensitively: one key, its spelling
        "disableApiTermination": "false",
        "SecurityGroupIds": json.dumps([SG]),  # the source's network interfaces are dropped
    }
    efs = build_metadata(
        TYPES["EFS"], {"Encrypted": "false"}, "share", {}, typed_overrides("EFS", {"kms_key": DR_KEY})
    )
    assert efs == {"Encrypted": "true", "CreationToken": "share", "newFileSystem": "true", "KmsKeyId": DR_KEY}


@pytest.mark.parametrize(
    ("params", "raw"),
    [
        ({"kms_key": DR_KEY}, {"kmskeyid": "arn:aws:kms:us-east-1:1:key/other"}),
        ({"kms_key": DR_KEY}, {"Encrypted": "true"}),  # set by kms_key too (EFS requires it)
        ({"security_groups": [SG]}, {"VpcSecurityGroupIds": "[]"}),
    ],
)
def test_metadata_setting_what_a_typed_parameter_sets_is_a_conflict(params, raw):
    rtype = "EFS" if "Encrypted" in raw else "Aurora"
    with pytest.raises(ValueError, match="both set restore metadata"):
        build_metadata(TYPES[rtype], {}, "x", raw, typed_overrides(rtype, params))


def test_a_typed_parameter_of_another_type_fails_the_step_before_anything_is_started(aws):
    expect_point(aws, "d1", DOCDB_ARN, "DocumentDB")
    params = {"recovery_point": rp("d1"), "vault": VAULT, "target": "catalogue-dr", "subnet": SUBNET}
    with pytest.raises(StepFailed, match="`subnet` does not apply to a DocumentDB restore"):
        ACTION.start(context(aws, params))
    assert "backup:StartRestoreJob" not in aws.operations


def test_preflight_checks_typed_parameters_even_when_the_recovery_point_is_not_known_yet(aws):
    params = {
        "recovery_point": "${backup.copy.recovery_point_arn}", "vault": VAULT, "resource_arn": FSX_ARN,
        "target": "shares-dr", "instance_type": "t3.large",
    }  # fmt: skip
    results = ACTION.preflight(context(aws, params))
    assert [r.status for r in results] == ["warning", "ok", "error"]
    assert "`instance_type` does not apply to a FSx restore" in results[2].message


@pytest.mark.parametrize(
    ("rtype", "extra"),
    [
        ("DocumentDB", {"endpoint", "reader_endpoint", "port"}),
        ("Neptune", {"endpoint", "reader_endpoint", "port"}),
        ("EC2", {"instance_id", "private_ip"}),
        ("EFS", {"file_system_id", "dns_name"}),
        ("FSx", {"file_system_id", "dns_name"}),
        ("S3", set()),
    ],
)
def test_declared_outputs_are_each_types_own(rtype, extra):
    common = {"resource_arn", "resource_id", "recovery_point_arn", "restore_job_id", "name"}
    assert set(ACTION.declared_outputs({"resource_type": rtype})) == common | extra
    assert set(ACTION.declared_outputs({"resource_arn": "${a.b.arn}"})) == set(ACTION.outputs)


# --- IAM --------------------------------------------------------------------------------------------


def _statements(rtype: str, resource_arn: str, mode: str = "drill") -> dict[str, dict[str, Any]]:
    """Action -> its statement in the policy of a one-step restore plan."""
    from drplan.iam import build_policy
    from drplan.model import build_plan
    from tests.runs import one_step

    params = {"vault": VAULT, "resource_arn": resource_arn, "resource_type": rtype, "target": "x-dr",
              "iam_role_arn": f"arn:aws:iam::{ACCOUNT}:role/restore"}  # fmt: skip
    policy = build_policy(build_plan(one_step("aws.backup.restore", params)), mode, account_id=ACCOUNT)  # type: ignore[arg-type]
    return {action: st for st in policy.document["Statement"] for action in st["Action"]}


def test_an_fsx_restore_may_delete_only_tagged_fsx_file_systems_and_nothing_of_other_services():
    by_action = _statements("FSx", FSX_ARN)
    delete = by_action["fsx:DeleteFileSystem"]
    assert delete["Resource"] == f"arn:aws:fsx:us-east-1:{ACCOUNT}:file-system/*"
    assert delete["Condition"]["StringEquals"] == {"aws:ResourceTag/drplan:mode": "drill"}
    assert by_action["fsx:TagResource"]["Resource"] == f"arn:aws:fsx:us-east-1:{ACCOUNT}:file-system/*"
    assert "backup:DescribeRestoreJob" in by_action  # cleanup asks the job what it created
    assert not any(
        a.startswith(("rds:Delete", "ec2:Terminate", "elasticfilesystem:Delete")) for a in by_action
    )


def test_a_documentdb_restore_is_scoped_to_its_cluster_name():
    by_action = _statements("DocumentDB", DOCDB_ARN)
    assert (
        by_action["rds:DeleteDBCluster"]["Resource"]
        == f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:x-dr-drill-*"
    )
    assert "fsx:DeleteFileSystem" not in by_action


def test_preflight_warns_that_an_instance_from_another_regions_copy_needs_a_subnet(aws):
    source = f"arn:aws:ec2:us-west-2:{ACCOUNT}:instance/i-0123456789abcdef0"  # copied to us-east-1's vault
    for params in ({}, {"subnet": SUBNET}):
        expect_point(aws, "e1", source, "EC2")
        expect_metadata(aws, "e1", {"InstanceType": "t3.micro", "SubnetId": "subnet-0west"})
        ctx = context(aws, {"recovery_point": rp("e1"), "vault": VAULT, "target": "web-dr", **params})
        messages = [r.message for r in ACTION.preflight(ctx)]
        warned = any("backed up in us-west-2" in m and "set `subnet`" in m for m in messages)
        assert warned == (not params), messages
