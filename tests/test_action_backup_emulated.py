"""aws.backup.restore of EC2 instances, EFS and FSx file systems and Aurora clusters, against moto in
the same process, through the sandbox's AWS Backup emulator.

moto 5.2 has no AWS Backup recovery points or restore jobs; the sandbox answers those calls with
:mod:`drplan.sandbox.backup_emulator`, which carries each restore out with moto's own EC2, EFS, FSx
and RDS. Here a backup client's requests are handed to the emulator in-process (a ``before-send``
hook, as moto's own), every other call goes to moto (``mock_aws``): the action, the engine, undo,
cleanup and the removers all meet the real (emulated) resources a restore created.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.core.botocore_stubber import MockRawResponse

from drplan.actions import registry
from drplan.aws import AwsSession
from drplan.engine.events import EventBus
from drplan.engine.prepare import prepare
from drplan.engine.runner import Runner
from drplan.engine.sweep import find_drill_resources, remove
from drplan.model import build_plan
from drplan.removal import FINDERS, REMOVERS
from drplan.resources import RESTORE_JOB_PREFIX, Resource
from drplan.sandbox.backup_emulator import BackupEmulator
from drplan.sandbox.seeders import SeedContext
from drplan.sandbox.seeders.backup import seed_recovery_point
from tests.runs import one_step, run_plan

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole"
VAULT = "dr-vault"
SOURCES = {
    "EC2": f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0",
    "EFS": f"arn:aws:elasticfilesystem:us-east-1:{ACCOUNT}:file-system/fs-0123456789abcdef0",
    "FSx": f"arn:aws:fsx:us-east-1:{ACCOUNT}:file-system/fs-0fedcba9876543210",
    "Aurora": f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:ledger",
}


def _to_emulator(emulator: BackupEmulator, request: Any, **_: Any) -> AWSResponse:
    """A backup request, answered by the emulator's WSGI app instead of going over the network."""
    url = urlsplit(request.url)
    body = request.body or b""
    body = body.encode() if isinstance(body, str) else bytes(body)
    environ = {
        "REQUEST_METHOD": request.method,
        "PATH_INFO": url.path,
        "QUERY_STRING": url.query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{"HTTP_" + k.upper().replace("-", "_"): v.decode() if isinstance(v, bytes) else v
           for k, v in request.headers.items()},
    }  # fmt: skip
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    data = b"".join(emulator(environ, start_response))
    return AWSResponse(request.url, answer["status"], answer["headers"], MockRawResponse(data))


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[BackupEmulator, AwsSession]]:
    """moto, plus the AWS Backup emulator answering backup clients (restores go to moto)."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        emulator = BackupEmulator(
            native=lambda service, region, account=None: boto3.client(service, region_name=region)
        )

        def customize(client: Any) -> None:
            if client.meta.service_model.service_name == "backup":
                client.meta.events.register_first("before-send.backup", partial(_to_emulator, emulator))

        yield emulator, AwsSession(region="us-east-1", customize=customize)


def restore_plan(rtype: str, target: str, **extra: Any) -> dict[str, Any]:
    params = {"vault": VAULT, "resource_arn": SOURCES[rtype], "iam_role_arn": ROLE, "target": target, **extra}
    if rtype != "Aurora":
        params["resource_type"] = rtype
    return one_step("aws.backup.restore", params)


def seeded(emulator: BackupEmulator, session: AwsSession, data: dict[str, Any]) -> None:
    """What the sandbox does before a run: the seeder makes a recovery point in the emulator."""
    prepared = prepare(build_plan(data), "recover", registry(), run_id="seed")
    step = prepared.steps["svc.s"]
    ctx = Runner(prepared, session, EventBus("seed")).context(step, step.params)
    seed_recovery_point(SeedContext.of(ctx, {}, backup=emulator))


def instance(session: AwsSession, instance_id: str) -> dict[str, Any]:
    found = session.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(found[0]["Instances"][0])


# --- EC2 ---------------------------------------------------------------------------------------------


def test_ec2_restore_launches_an_instance_from_the_points_ami_tags_it_and_undo_terminates_it(emulated):
    emulator, session = emulated
    data = restore_plan("EC2", "web-dr", instance_type="t3.large", tags={"team": "web"})
    seeded(emulator, session, data)

    run = run_plan(data, aws=session)

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    out = rec.outputs
    assert out["instance_id"].startswith("i-") and out["resource_id"] == out["instance_id"]
    assert out["resource_arn"] == f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{out['instance_id']}"
    assert out["private_ip"] and out["name"] == "web-dr"
    launched = instance(session, out["instance_id"])
    assert launched["InstanceType"] == "t3.large"  # the typed parameter, through the restore metadata
    point = next(iter(emulator.points.values()))
    assert launched["ImageId"] == point.backing  # launched from the recovery point's AMI
    tags = {t["Key"]: t["Value"] for t in launched["Tags"]}
    assert tags["Name"] == "web-dr" and tags["team"] == "web" and tags["drplan:run-id"] == "t35t1d"
    job = next(iter(emulator.jobs.values()))
    assert job.metadata["InstanceType"] == "t3.large"
    # journaled as the restore job until it named the instance
    [resource] = rec.resources
    assert (resource.kind, resource.id) == ("ec2:instance", RESTORE_JOB_PREFIX + job.id)
    assert resource.extra["name"] == "web-dr" and resource.arn == out["resource_arn"]

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert instance(session, out["instance_id"])["State"]["Name"] == "terminated"


def test_ec2_drill_isolates_the_name_and_cleanup_leaves_nothing(emulated):
    emulator, session = emulated
    data = restore_plan("EC2", "web-dr", subnet="subnet-0123456789abcdef0")
    seeded(emulator, session, data)

    run = run_plan(data, "drill", run_id="d1r2i3l4", aws=session)

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    name = rec.outputs["name"]
    assert name.startswith("web-dr") and "d1r2i3l4" in name
    assert run.prepared.steps["svc.s"].params["subnet"] == "subnet-0123456789abcdef0"  # kept in drills
    # the emulator accepts a DR account's subnet, and the source's network interfaces are dropped
    assert next(iter(emulator.jobs.values())).metadata["SubnetId"] == "subnet-0123456789abcdef0"
    found = find_drill_resources(session, "us-east-1", run_id="d1r2i3l4")
    assert [(f.resource.kind, f.resource.id) for f in found] == [("ec2:instance", rec.outputs["instance_id"])]

    assert run.runner.cleanup() == []
    assert instance(session, rec.outputs["instance_id"])["State"]["Name"] == "terminated"
    assert find_drill_resources(session, "us-east-1", run_id="d1r2i3l4") == []


# --- EFS ---------------------------------------------------------------------------------------------


def test_efs_restore_makes_a_new_file_system_and_undo_deletes_it_with_its_mount_targets(emulated):
    emulator, session = emulated
    data = restore_plan("EFS", "share-dr", kms_key=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/dr")
    seeded(emulator, session, data)

    run = run_plan(data, aws=session)

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    fs_id = rec.outputs["file_system_id"]
    assert rec.outputs["dns_name"] == f"{fs_id}.efs.us-east-1.amazonaws.com"
    efs = session.client("efs")
    [fs] = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"]
    assert fs["CreationToken"] == "share-dr" and fs["Encrypted"] is True  # kms_key implies Encrypted
    job = next(iter(emulator.jobs.values()))
    assert job.metadata["KmsKeyId"].endswith(":key/dr") and job.metadata["newFileSystem"] == "true"
    assert {t["Key"]: t["Value"] for t in fs["Tags"]}["drplan:step"] == "svc.s"
    # a later step mounts it: the mount target must go before the file system can
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    efs.create_mount_target(FileSystemId=fs_id, SubnetId=subnet)

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert efs.describe_file_systems(CreationToken="share-dr")["FileSystems"] == []


def test_a_drill_that_died_mid_restore_is_cleaned_up_through_the_restore_job(emulated):
    """The journal holds the restore job, not yet the file system it is making: cleanup asks the
    job what it created (never a guess from the name), whether it finished or not."""
    emulator, session = emulated
    data = restore_plan("EFS", "share-dr")
    seeded(emulator, session, data)
    point = next(iter(emulator.points.values()))
    backup = session.client("backup")
    job = backup.start_restore_job(
        RecoveryPointArn=point.arn,
        Metadata={"CreationToken": "share-dr-d1", "newFileSystem": "true"},
        IamRoleArn=ROLE,
        ResourceType="EFS",
    )["RestoreJobId"]
    journaled = Resource(
        "efs:filesystem", RESTORE_JOB_PREFIX + job, "us-east-1", extra={"name": "share-dr-d1"}
    )
    remover = REMOVERS["efs:filesystem"]

    def client(service: str) -> Any:
        return session.client(service)

    assert remover(client, journaled.id) is not None  # job RUNNING (first look): wait for it
    [removal] = remove(session, [journaled], timeout=10, interval=0.01)
    assert removal.removed, removal.error
    assert session.client("efs").describe_file_systems(CreationToken="share-dr-d1")["FileSystems"] == []
    # a job that failed created nothing: nothing to delete
    failed = backup.start_restore_job(
        RecoveryPointArn=point.arn, Metadata={"newFileSystem": "false"}, IamRoleArn=ROLE, ResourceType="EFS"
    )["RestoreJobId"]
    assert remover(client, RESTORE_JOB_PREFIX + failed) is None
    assert remover(client, RESTORE_JOB_PREFIX + "no-such-job") is None


# --- FSx ---------------------------------------------------------------------------------------------


def test_fsx_restore_names_the_file_system_by_tag_and_undo_deletes_it_without_a_final_backup(emulated):
    emulator, session = emulated
    data = restore_plan("FSx", "scratch-dr", subnets=["subnet-0123456789abcdef0"])
    seeded(emulator, session, data)

    run = run_plan(data, aws=session)

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    fs_id = rec.outputs["file_system_id"]
    assert rec.outputs["dns_name"] == f"{fs_id}.fsx.us-east-1.amazonaws.com"
    fsx = session.client("fsx")
    [fs] = fsx.describe_file_systems(FileSystemIds=[fs_id])["FileSystems"]
    tags = {t["Key"]: t["Value"] for t in fs["Tags"]}
    assert tags["Name"] == "scratch-dr" and tags["drplan:run-id"] == "t35t1d"
    assert json.loads(next(iter(emulator.jobs.values())).metadata["SubnetIds"]) == [
        "subnet-0123456789abcdef0"
    ]
    assert FINDERS["fsx:filesystem"](session.client, "scratch-dr", "t35t1d", False, None) == [fs_id]
    assert FINDERS["fsx:filesystem"](session.client, "scratch-dr", "0th3rrun", False, None) == []

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert fsx.describe_file_systems(FileSystemIds=[fs_id])["FileSystems"] == []


# --- Aurora ------------------------------------------------------------------------------------------


def test_aurora_restore_gives_the_cluster_endpoints_and_undo_deletes_the_cluster(emulated):
    emulator, session = emulated
    data = restore_plan("Aurora", "ledger-dr")
    seeded(emulator, session, data)

    run = run_plan(data, aws=session)

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    out = rec.outputs
    assert out["resource_id"] == "ledger-dr" and out["port"] == 5432
    assert out["endpoint"].startswith("ledger-dr.cluster-") and out["reader_endpoint"].startswith(
        "ledger-dr.cluster-ro-"
    )
    [resource] = rec.resources
    assert (resource.kind, resource.id) == ("rds:cluster", "ledger-dr")  # named: journaled by name

    rds = session.client("rds")
    rds.create_db_instance(
        DBInstanceIdentifier="ledger-dr-1", DBClusterIdentifier="ledger-dr", Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )  # fmt: skip
    assert run.runner.undo(["svc.s"], reason="test") == []  # its instances first, no final snapshot
    assert rds.describe_db_clusters()["DBClusters"] == []
    snapshots = rds.describe_db_cluster_snapshots(DBClusterIdentifier="ledger-dr")["DBClusterSnapshots"]
    assert [s for s in snapshots if s.get("SnapshotType") != "automated"] == []  # no final snapshot


def test_types_moto_cannot_emulate_fail_their_job_saying_so(emulated):
    emulator, session = emulated
    point = emulator.seed(
        region="us-east-1", vault=VAULT, resource_arn=SOURCES["Aurora"], resource_type="Neptune",
        age=timedelta(hours=1),
    )  # fmt: skip
    backup = session.client("backup")
    job = backup.start_restore_job(
        RecoveryPointArn=point.arn, Metadata={"DBClusterIdentifier": "graph-dr"}, IamRoleArn=ROLE
    )["RestoreJobId"]
    described = backup.describe_restore_job(RestoreJobId=job)
    assert described["Status"] == "FAILED" and "not Neptune" in described["StatusMessage"]


# --- the sandbox, end to end ------------------------------------------------------------------------


@pytest.mark.slow
def test_sandbox_drill_of_instance_file_system_and_cluster_restores_leaves_nothing(tmp_path):
    """``drplan drill --sandbox``: seeded recovery points, restore jobs over HTTP, the restored
    resources really made in the emulated EC2, EFS, FSx and RDS, then cleaned up and verified gone."""
    from drplan.engine.records import RunOptions
    from drplan.runs import RunRequest
    from drplan.runs import run_plan as run_request
    from drplan.sandbox import start_sandbox

    def restore(rtype: str, target: str, **extra: Any) -> dict[str, Any]:
        return restore_plan(rtype, target, **extra)["services"]["svc"]["steps"][0]

    services = {
        "web": {
            "steps": [restore("EC2", "web-dr", instance_type="t3.large", subnet="subnet-0123456789abcdef0")]
        },
        "files": {"steps": [restore("EFS", "share-dr", kms_key="alias/dr")]},
        "scratch": {"steps": [restore("FSx", "scratch-dr")]},
        "ledger": {"steps": [restore("Aurora", "ledger-dr", subnet_group="default")]},
    }
    plan = build_plan(
        {"drplan": 1, "name": "backup-types", "aws": {"region": "us-east-1"}, "services": services}
    )
    fast = RunOptions(poll_initial=0.05, poll_factor=1.2, poll_max=0.5, backoff_base=0.05, retry_delay=0.05)
    with start_sandbox(plan) as box:
        session = box.session()
        options = RunOptions(**{**fast.__dict__, **box.run_options()})
        result = run_request(RunRequest(plan, "drill", tmp_path, options=options, sandbox=True), session)
        left = find_drill_resources(session, "us-east-1")
        instances = session.client("ec2").describe_instances()["Reservations"]
    records = result.outcome.records
    assert result.outcome.ok, {k: (r.status, r.error) for k, r in records.items()}
    assert result.exit_code == 0 and not result.cleanup_failed
    assert left == [], f"drill resources left behind: {left}"
    suffix = result.prepared.suffix
    assert records["web.s"].outputs["name"] == "web-dr" + suffix
    assert records["ledger.s"].outputs["endpoint"].startswith("ledger-dr" + suffix)
    kinds = sorted(r.kind for rec in records.values() for r in rec.resources)
    assert kinds == ["ec2:instance", "efs:filesystem", "fsx:filesystem", "rds:cluster"]
    restored = [
        i
        for r in instances
        for i in r["Instances"]
        if i["InstanceId"] == records["web.s"].outputs["instance_id"]
    ]
    assert restored[0]["State"]["Name"] == "terminated" and restored[0]["InstanceType"] == "t3.large"
