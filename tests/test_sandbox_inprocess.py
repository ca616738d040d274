"""The sandbox answers its own clients in this process (:mod:`drplan.sandbox.inprocess`): every
call of a sandbox session reaches the same WSGI application its loopback server serves (moto, the
AWS Backup and global cluster emulators, the refusal of what nothing emulates), without HTTP, and
botocore reads each answer as it would have read the server's."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from drplan.model import build_plan
from drplan.sandbox import CREDENTIALS, MOTO_CONFIG, Sandbox, start_sandbox
from drplan.sandbox.inprocess import InProcessRoute
from tests.runs import one_step

ACCOUNT = "123456789012"  # moto's


@pytest.fixture
def box() -> Iterator[Sandbox]:
    plan = build_plan(one_step("wait", {"duration": "PT1S"}))
    with start_sandbox(plan, seed=False) as sandbox:
        yield sandbox


@pytest.fixture
def no_http(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request that leaves through botocore's HTTP layer, refused and recorded."""
    from botocore.httpsession import URLLib3Session

    sent: list[str] = []

    def refuse(self: Any, request: Any) -> Any:
        sent.append(f"{request.method} {request.url}")
        raise AssertionError(f"sent over HTTP: {request.method} {request.url}")

    monkeypatch.setattr(URLLib3Session, "send", refuse)
    return sent


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_s3_objects_stream_in_and_out_without_http(box, no_http):
    s3 = box.client("s3", "us-east-1")
    s3.create_bucket(Bucket="inprocess-example")
    s3.put_bucket_versioning(Bucket="inprocess-example", VersioningConfiguration={"Status": "Enabled"})
    data = os.urandom(300_000)
    key = "dir/a key+with spaces/ünïcode%20.bin"  # the raw path must reach moto as sent
    first = s3.put_object(Bucket="inprocess-example", Key=key, Body=io.BytesIO(data))  # a file body
    s3.put_object(Bucket="inprocess-example", Key=key, Body=b"second")

    got = s3.get_object(Bucket="inprocess-example", Key=key, VersionId=first["VersionId"])
    assert got["ContentLength"] == len(data)
    chunks = list(got["Body"].iter_chunks(64 * 1024))
    assert len(chunks) > 1 and b"".join(chunks) == data
    assert s3.get_object(Bucket="inprocess-example", Key=key)["Body"].read() == b"second"
    ranged = s3.get_object(
        Bucket="inprocess-example", Key=key, VersionId=first["VersionId"], Range="bytes=10-19"
    )
    assert ranged["Body"].read() == data[10:20]
    assert s3.head_object(Bucket="inprocess-example", Key=key)["ContentLength"] == len(b"second")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="inprocess-example")["Contents"]] == [key]
    versions = s3.list_object_versions(Bucket="inprocess-example")["Versions"]
    assert len(versions) == 2 and {v["Key"] for v in versions} == {key}
    assert no_http == []


def test_the_emulators_errors_are_client_errors_with_their_codes(box, no_http):
    s3 = box.client("s3", "us-east-1")
    s3.create_bucket(Bucket="inprocess-errors")
    with pytest.raises(ClientError) as missing_key:
        s3.get_object(Bucket="inprocess-errors", Key="nothing")
    assert _code(missing_key) == "NoSuchKey"
    with pytest.raises(ClientError) as missing_bucket:
        s3.head_bucket(Bucket="inprocess-nothing")
    assert _code(missing_bucket) == "404"  # a HEAD answer has no body: the status is the code
    with pytest.raises(ClientError) as missing_table:
        box.client("dynamodb", "eu-west-1").describe_table(TableName="nothing")
    assert _code(missing_table) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as missing_zone:
        box.client("route53", "us-east-1").get_hosted_zone(Id="Z0000000000000")
    assert _code(missing_zone) == "NoSuchHostedZone"
    assert missing_zone.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert no_http == []


def test_a_service_nothing_emulates_is_refused_at_once(box, no_http):
    client = box.client("route53-recovery-cluster", "us-east-1")
    with pytest.raises(ClientError) as refused:
        client.get_routing_control_state(
            RoutingControlArn=f"arn:aws:route53-recovery-control::{ACCOUNT}:controlpanel/p/routingcontrol/r"
        )
    assert _code(refused) == "NotEmulatedInSandbox"
    assert "does not emulate Route 53 ARC" in refused.value.response["Error"]["Message"]
    assert refused.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert no_http == []


def test_aws_backup_restores_run_through_the_emulator_and_moto_in_process(box, no_http):
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/orders"
    point = box.backup.seed(
        region="us-east-1",
        vault="dr-vault",
        resource_arn=table,
        resource_type="DynamoDB",
        age=timedelta(hours=2),
    )
    backup = box.client("backup", "us-east-1")
    listed = backup.list_recovery_points_by_backup_vault(BackupVaultName="dr-vault")["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in listed] == [point.arn]
    by_resource = backup.list_recovery_points_by_resource(ResourceArn=table)["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in by_resource] == [point.arn]

    job = backup.start_restore_job(
        RecoveryPointArn=point.arn,
        IamRoleArn=f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole",
        Metadata={"targetTableName": "orders-restored"},
        ResourceType="DynamoDB",
    )["RestoreJobId"]
    status = ""
    for _ in range(100):
        status = backup.describe_restore_job(RestoreJobId=job)["Status"]
        if status in ("COMPLETED", "FAILED", "ABORTED"):
            break
        time.sleep(0.05)
    assert status == "COMPLETED"
    ddb = box.client("dynamodb", "us-east-1")
    assert "orders-restored" in ddb.list_tables()["TableNames"]
    assert ddb.scan(TableName="orders-restored")["Count"] == 20
    with pytest.raises(ClientError) as missing:
        backup.list_recovery_points_by_backup_vault(BackupVaultName="no-such-vault")
    assert _code(missing) == "ResourceNotFoundException"
    assert no_http == []


def test_global_cluster_switchovers_reach_drplans_emulator(box, no_http):
    rds = box.client("rds", "us-east-1")
    with pytest.raises(ClientError) as missing:
        rds.switchover_global_cluster(GlobalClusterIdentifier="nothing", TargetDbClusterIdentifier="other")
    assert _code(missing) == "GlobalClusterNotFoundFault"  # moto has no switchover: the emulator answered
    assert no_http == []


def test_calls_from_many_threads_at_once(box, no_http):
    ddb = box.client("dynamodb", "us-east-1")
    ddb.create_table(
        TableName="concurrent",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3 = box.client("s3", "us-east-1")
    s3.create_bucket(Bucket="inprocess-concurrent")
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        try:
            start.wait()
            for i in range(15):
                ddb.put_item(TableName="concurrent", Item={"pk": {"S": f"{worker}-{i}"}})
                body = f"{worker}-{i}".encode() * 100
                s3.put_object(Bucket="inprocess-concurrent", Key=f"{worker}/{i}", Body=body)
                assert (
                    s3.get_object(Bucket="inprocess-concurrent", Key=f"{worker}/{i}")["Body"].read() == body
                )
                got = ddb.get_item(TableName="concurrent", Key={"pk": {"S": f"{worker}-{i}"}})
                assert got["Item"]["pk"]["S"] == f"{worker}-{i}"
        except BaseException as exc:  # reported below, with the thread's traceback
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert ddb.scan(TableName="concurrent", Select="COUNT")["Count"] == 8 * 15
    assert s3.list_objects_v2(Bucket="inprocess-concurrent")["KeyCount"] == 8 * 15
    assert no_http == []


def test_moto_answers_one_request_at_a_time(box, no_http, monkeypatch):
    """moto's backends are not thread-safe: an RDS restore listing snapshots while another thread
    created one failed a sandbox drill of 80 services now and then ("OrderedDict mutated during
    iteration", answered 500). While one thread is inside moto, another thread's call waits."""
    from moto.rds.models import RDSBackend

    inside, release = threading.Event(), threading.Event()
    listing = RDSBackend.describe_db_snapshots

    def held(self: Any, *args: Any, **kwargs: Any) -> Any:
        inside.set()
        assert release.wait(30)
        return listing(self, *args, **kwargs)

    monkeypatch.setattr(RDSBackend, "describe_db_snapshots", held)
    rds = box.client("rds", "us-east-1")
    done: dict[str, float] = {}

    def call(name: str, fn: Any) -> None:
        fn()
        done[name] = time.monotonic()

    first = threading.Thread(target=call, args=("snapshots", rds.describe_db_snapshots))
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=call, args=("instances", rds.describe_db_instances))
    second.start()
    second.join(timeout=0.5)
    assert "instances" not in done  # waits for the first to leave moto
    released = time.monotonic()
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert done["instances"] >= released and "snapshots" in done
    # drplan's own emulators call moto again while answering: the lock is reentrant for them.
    box.client("backup", "us-east-1").list_backup_vaults()


def test_the_loopback_server_still_serves_the_same_emulated_aws(box):
    """What needs a real endpoint (a ``drplan --endpoint-url`` subprocess, tests) still has one,
    and sees what the sandbox's own clients made, and the other way round."""
    box.client("s3", "us-east-1").create_bucket(Bucket="made-in-process")
    outside = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=box.endpoint_url,
        aws_access_key_id=CREDENTIALS[0],
        aws_secret_access_key=CREDENTIALS[1],
    )
    outside.create_bucket(Bucket="made-over-http")
    names = {b["Name"] for b in outside.list_buckets()["Buckets"]}
    assert names == {b["Name"] for b in box.client("s3", "us-east-1").list_buckets()["Buckets"]}
    assert names == {"made-in-process", "made-over-http"}


def test_an_emulator_that_fails_answers_500_as_the_server_did():
    def broken(environ: dict[str, Any], start_response: Any) -> Any:
        raise RuntimeError("emulator bug")

    route = InProcessRoute(broken, ("127.0.0.1", 9))
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": io.BytesIO(b"")}
    status, headers, body = route.answer(environ)
    assert status == 500 and b"Internal Server Error" in body
    assert "Date" in headers


def test_moto_settings_are_set_in_process_and_put_back():
    from moto.moto_api._internal.models import moto_api_backend

    before = moto_api_backend.get_config()["lambda"]
    plan = build_plan(one_step("wait", {"duration": "PT1S"}))
    with start_sandbox(plan, seed=False):
        assert moto_api_backend.get_config()["lambda"] == MOTO_CONFIG["lambda"]
        assert moto_api_backend.get_config()["lambda"] is not MOTO_CONFIG["lambda"]  # a copy
    assert moto_api_backend.get_config()["lambda"] == before


def test_a_check_asks_route53_nothing_while_nothing_has_called_it(box, monkeypatch):
    asked: list[str] = []
    client = box.client
    monkeypatch.setattr(
        box, "client", lambda service, region: asked.append(service) or client(service, region)
    )
    route = box.route("shop.example.com", 443, True, content=False)
    assert route.unverifiable is not None and asked == []  # moto starts without hosted zones

    client("route53", "us-east-1").create_hosted_zone(Name="example.com.", CallerReference="inprocess")
    route = box.route("shop.example.com", 443, True, content=False)
    assert route.unverifiable is not None and asked[0] == "route53"


def test_a_client_in_another_account_acts_there(box):
    """What the AWS Backup emulator restores with in a cross-account step: a role assumed in that
    account (its AssumeRole goes to the loopback server; the calls then go in-process)."""
    other = box.client("dynamodb", "us-east-1", "222233334444")
    other.create_table(
        TableName="elsewhere",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert other.describe_table(TableName="elsewhere")["Table"]["TableArn"].split(":")[4] == "222233334444"
    assert "elsewhere" not in box.client("dynamodb", "us-east-1").list_tables()["TableNames"]
    assert box.client("dynamodb", "us-east-1", ACCOUNT) is box.client("dynamodb", "us-east-1")
