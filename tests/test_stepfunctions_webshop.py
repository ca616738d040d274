"""plans/webshop.json executed as a Step Functions state machine in moto against drplan's own run of
the same plan: the same steps, outputs and AWS state after a recovery; after a drill, the same
copies, then nothing left.

The plan is read as shipped; only what cannot exist on this machine is changed in the loaded data
(:func:`webshop`):

- ids AWS picks: moto picks the ids of the security group the restored database goes into, of the
  EC2 instance the media volume is attached to and of the two hosted zones, so the plan's
  ``sg-0a1b2c3d4e5f60718``, ``i-0123456789abcdef0``, ``Z0SHOPEXAMPLE123`` (``web.dns``) and
  ``Z0SHOPDRILL12345`` (its ``drill_with``) are replaced by the ids of what the seed made. moto's
  random generator is seeded the same before each seed, so both runs get the same ids and the
  exported plan is the very plan run locally;
- hosts: ``orders-db.reachable`` connects to ``127.0.0.1`` instead of
  ``${orders-db.restore.endpoint}`` (a name moto makes up); its port is still
  ``${orders-db.restore.port}``, the restore's output: the seeded instance "listens" on the port
  of an HTTP server on this machine (tests/test_stepfunctions_checks.py ``Service``), which
  ``web.healthy`` asks at ``http://127.0.0.1:PORT/healthz`` instead of
  ``https://shop.example.com/healthz``.

Nothing else changes, the manual step included: ``web.approve`` (recover only) is approved up front
in the local run, as ``--approve web.approve`` does, with the identity :data:`APPROVER`; in the
execution it publishes to the approvals topic (created here as the template does, an SQS queue
subscribed) and waits for its task token, and the approver answers the message as ``drplan
approve RUN_ID STEP --execution-arn ARN`` does (SendTaskSuccess), as :data:`APPROVER`.

moto's interpreter runs with the helpers the per-action tests use: Lambda code run in-process
(the checks function), JSONata evaluated, errors named as Step Functions names them, timestamps
as text, and (tests/conftest.py, for every Step Functions test) parameters and answers spelled as
Step Functions spells them. This test found that the RDS translation read RDS's answers in boto3's
spelling (``DBSnapshots``) where Step Functions gives ``DbSnapshots``: fixed, and every exported
machine's tests now run with that spelling.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api._internal import mock_random

from drplan.actions.base import Approvals
from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.approve import NotWaiting, answer
from tests.moto_error_names import moto_names_errors_as_step_functions
from tests.moto_jsonata import moto_evaluates_jsonata
from tests.moto_lambda_runs import moto_runs_lambda_code
from tests.moto_timestamps import moto_passes_timestamps_as_text
from tests.runs import run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    aws_state,
    execute,
    lint_definition,
    records,
    statuses,
)
from tests.test_stepfunctions_checks import Service, deploy_checks_function
from tests.test_stepfunctions_ec2 import ec2_state
from tests.test_stepfunctions_s3 import s3_state

PLANS = Path(__file__).resolve().parent.parent / "plans"
AWS = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
#: moto's ids come from its own random generator: seeded the same, both runs' seeds get the same
#: ids, so the exported plan is the very plan run locally.
SEED = 20260101
ZONE = f"{REGION}a"
BUCKET = "shop-assets-example"
GROUP = "shop-web"
#: Who approves ``web.approve``: the local run's identity, and ``drplan approve``'s ``by``.
APPROVER = "dana@shop-laptop"
#: Versions of keys of the assets bucket: (minutes before now, body or None for a delete marker),
#: oldest first. The plan rewinds static/ to an hour ago.
HISTORY: dict[str, list[tuple[int, str | None]]] = {
    "static/app.css": [(180, "css-1"), (30, "css-2")],  # back to css-1
    "static/app.js": [(180, "js-1")],  # unchanged
    "static/banner.png": [(20, "banner")],  # younger than an hour: deleted
    "static/logo.svg": [(180, "logo-1"), (10, None)],  # deleted since: back
    "index.html": [(180, "index-1"), (5, "index-2")],  # outside the prefix: left alone
}
#: EC2 snapshots: (label, app and volume tags, hours old). The plan takes the newest with its
#: tags (``newer``), not the newest of all.
SNAPSHOTS = (
    ("older", {"app": "webshop", "volume": "media"}, 30),
    ("newer", {"app": "webshop", "volume": "media"}, 2),
    ("other", {"app": "webshop", "volume": "logs"}, 0.5),
)
#: The zones the plan's records go into: the recovery's and the drill's.
ZONES = {"Z0SHOPEXAMPLE123": "internal.shop.example.com", "Z0SHOPDRILL12345": "drill.shop.example.com"}


@pytest.fixture(autouse=True)
def _random_ids_again() -> Iterator[None]:
    """After the test, moto's random generator (seeded by :func:`seed`) is seeded at random again:
    the tests after these get moto's ids at random."""
    yield
    mock_random.seed()


@pytest.fixture
def service() -> Iterator[Service]:
    """The orders database's port and the storefront: a server on this machine."""
    running = Service(warming=0)
    yield running
    running.server.shutdown()
    running.server.server_close()


# --- the sources, and what AWS holds ------------------------------------------------------------------


def _naive_ago(**delta: float) -> dt.datetime:
    """A time before now, as moto keeps times (naive UTC)."""
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(**delta)).replace(tzinfo=None)


def seed(port: int) -> dict[str, str]:
    """Everything webshop.json restores from or changes, as it would be in its account: the ids
    moto picked for what the plan names by id."""
    mock_random.seed(SEED)
    ids: dict[str, str] = {}
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"][
            "SubnetId"
        ]
        for i, z in enumerate("ab")
    ]
    ids["sg"] = ec2.create_security_group(GroupName="shop-db", Description="orders DB", VpcId=vpc)["GroupId"]

    # orders-db: the instance (listening, as far as the check goes, on the server's port), a
    # manual snapshot, and the automated one moto makes set ten minutes back (both within the RPO).
    from moto.rds.models import rds_backends

    rds = boto3.client("rds", region_name=REGION)
    rds.create_db_subnet_group(
        DBSubnetGroupName="shop-db-private", DBSubnetGroupDescription="private", SubnetIds=subnets
    )
    rds.create_db_instance(
        DBInstanceIdentifier="shop-orders",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="shop",
        MasterUserPassword="password123",
        Port=port,
        DBSubnetGroupName="shop-db-private",
        VpcSecurityGroupIds=[ids["sg"]],
    )
    rds.create_db_snapshot(DBInstanceIdentifier="shop-orders", DBSnapshotIdentifier="shop-orders-nightly")
    for snapshot in rds_backends[DEFAULT_ACCOUNT_ID][REGION].database_snapshots.values():
        if snapshot.snapshot_type == "automated":
            snapshot.created = _naive_ago(minutes=10)
            snapshot.original_snapshot_create_time = snapshot.created

    # carts: a table with point-in-time recovery.
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName="shop-carts",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for cart in ("cart-1", "cart-2"):
        ddb.put_item(TableName="shop-carts", Item={"pk": {"S": cart}})
    ddb.update_continuous_backups(
        TableName="shop-carts", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )

    # media: snapshots of the media volume (and of another), the host to attach to.
    from moto.ec2.models import ec2_backends

    for label, tags, hours in SNAPSHOTS:
        volume = ec2.create_volume(AvailabilityZone=ZONE, Size=50, VolumeType="gp3")["VolumeId"]
        tagged = [{"Key": k, "Value": v} for k, v in {**tags, "label": label}.items()]
        made = ec2.create_snapshot(
            VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": tagged}]
        )["SnapshotId"]
        ec2_backends[DEFAULT_ACCOUNT_ID][REGION].snapshots[made].start_time = _naive_ago(hours=hours)
        ids[label] = made
    ids["instance"] = ec2.run_instances(
        ImageId="ami-12345678",
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": ZONE},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "media-host"}]}],
    )["Instances"][0]["InstanceId"]

    # assets: a versioned bucket whose versions are set back in moto's S3 backend.
    from moto.s3.models import s3_backends

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for key, versions in HISTORY.items():
        for _, body in versions:
            if body is None:
                s3.delete_object(Bucket=BUCKET, Key=key)
            else:
                s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
        stored = s3_backends[DEFAULT_ACCOUNT_ID]["global"].buckets[BUCKET].keys.getlist(key)
        for entry, (minutes, _) in zip(stored, versions, strict=True):
            entry.last_modified = _naive_ago(minutes=minutes)

    # web: the group, and the zones.
    asg = boto3.client("autoscaling", region_name=REGION)
    asg.create_launch_configuration(
        LaunchConfigurationName="web", ImageId="ami-12c6146b", InstanceType="t3.micro"
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        LaunchConfigurationName="web",
        MinSize=1,
        MaxSize=4,
        DesiredCapacity=2,
        AvailabilityZones=[ZONE],
    )
    r53 = boto3.client("route53", region_name=REGION)
    for placeholder, name in ZONES.items():
        zone = r53.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"]
        ids[placeholder] = str(zone).split("/")[-1]
    return ids


def webshop(ids: Mapping[str, str], port: int, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """plans/webshop.json as shipped, with the ids moto picked and this machine's server (see the
    module's docstring)."""
    data = json.loads((PLANS / "webshop.json").read_text())
    steps = {f"{s}.{step['id']}": step for s, svc in data["services"].items() for step in svc["steps"]}
    steps["orders-db.restore"]["with"]["security_groups"] = [ids["sg"]]
    assert steps["orders-db.reachable"]["with"]["host"] == "${orders-db.restore.endpoint}"
    steps["orders-db.reachable"]["with"]["host"] = "127.0.0.1"
    steps["media.volume"]["with"]["attach"]["instance_id"] = ids["instance"]
    for where in (steps["web.dns"]["with"], steps["web.dns"]["drill_with"]):
        where["zone_id"] = ids[where["zone_id"]]
    assert steps["web.healthy"]["with"]["url"] == "https://shop.example.com/healthz"
    steps["web.healthy"]["with"]["url"] = f"http://127.0.0.1:{port}/healthz"
    if only:
        data["services"] = {name: data["services"][name] for name in only}
    return dict(data)


def webshop_state() -> dict[str, Any]:
    """What webshop.json touches, without what differs between two runs (ids and times moto
    picks): tables, DB instances and DNS records (tests/test_stepfunctions.py), volumes and their
    attachments (named by tags), every bucket's versions per key, the group's capacity."""
    state = aws_state()
    rds = boto3.client("rds", region_name=REGION)
    groups = {
        g["GroupId"]: g["GroupName"]
        for g in boto3.client("ec2", region_name=REGION).describe_security_groups()["SecurityGroups"]
    }
    for db in rds.describe_db_instances()["DBInstances"]:
        state["instances"][db["DBInstanceIdentifier"]].update(
            port=db.get("Endpoint", {}).get("Port"),
            subnet_group=db.get("DBSubnetGroup", {}).get("DBSubnetGroupName"),
            security_groups=sorted(groups.get(g["VpcSecurityGroupId"], "?") for g in db["VpcSecurityGroups"]),
        )
    state["volumes"] = ec2_state()
    state["buckets"] = s3_state()
    (group,) = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups(
        AutoScalingGroupNames=[GROUP]
    )["AutoScalingGroups"]
    state["group"] = {"min": group["MinSize"], "max": group["MaxSize"], "desired": group["DesiredCapacity"]}
    return state


def volume_names(history: Sequence[Mapping[str, Any]] = ()) -> dict[str, str]:
    """Volume id -> Name tag: of the volumes there are, and of those an execution's history says
    it created (a drill's are gone by the time it ends)."""
    names: dict[str, str] = {}
    for event in history:
        details = event.get("taskSucceededEventDetails") or {}
        if event["type"] == "TaskSucceeded" and details.get("resource") == "createVolume":
            made = json.loads(details["output"])
            names[made["VolumeId"]] = next(
                (t["Value"] for t in made.get("Tags", []) if t["Key"] == "Name"), ""
            )
    for volume in boto3.client("ec2", region_name=REGION).describe_volumes()["Volumes"]:
        names[volume["VolumeId"]] = next(
            (t["Value"] for t in volume.get("Tags", []) if t["Key"] == "Name"), ""
        )
    return names


def named(outputs: Mapping[str, Any], ids: Mapping[str, str], volumes: Mapping[str, str]) -> dict[str, Any]:
    """A step's outputs with the ids moto picks named: what the seed made by its label (as
    :func:`seed` returns them), a volume by its Name tag."""
    labels = {v: k for k, v in ids.items()}
    out = dict(outputs)
    for name, value in out.items():
        if isinstance(value, str) and value in labels:
            out[name] = labels[value]
        elif name == "volume_id" and value:
            out[name] = volumes[value]
    return out


# --- the run and the execution -----------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def subscribe_approver(topic: str) -> str:
    """The approvals topic, as the template creates it, with an approver subscribed (an SQS
    queue, to read what approvers are sent): the queue's URL."""
    topic_arn = boto3.client("sns", region_name=REGION).create_topic(Name=topic)["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue = str(sqs.create_queue(QueueName="approver")["QueueUrl"])
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns", region_name=REGION).subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return queue


def approve_when_asked(queue: str, done: threading.Event, answered: list[dict[str, Any]]) -> None:
    """What an approver does: on the message asking for approval, ``drplan approve RUN_ID STEP
    --execution-arn ARN`` as the message says (SendTaskSuccess with the step's token, as
    APPROVER); each message is kept in ``answered`` (with ``error`` when it could not be
    answered, for the test to say)."""
    sqs = boto3.client("sqs", region_name=REGION)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    while not done.wait(0.3):
        for message in sqs.receive_message(QueueUrl=queue).get("Messages", []):
            body = json.loads(message["Body"])
            answered.append(body)
            found = re.search(r"drplan approve (\S+) (\S+) --execution-arn (\S+)", body["Message"])
            if found is None or found[1] != RUN_ID:
                body["error"] = "the message does not say how to approve this run"
                continue
            while True:  # the message may come before the history has the step's task
                try:
                    answer(sfn, found[3], found[2], by=APPROVER)
                    break
                except NotWaiting as exc:
                    if done.wait(0.3):
                        body["error"] = str(exc)
                        return
                except Exception as exc:  # the test says what went wrong
                    body["error"] = repr(exc)
                    return


def run_exported(data: dict[str, Any], mode: str, port: int) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Seed again, execute the exported plan (approving its manual step as asked): the export, the
    execution's description, and the ids moto picked (the same as for the local run)."""
    exported = export_plan(build_plan(data), mode, options=FAST, history_budget=ONE_MACHINE)  # type: ignore[arg-type]
    assert lint_definition(exported.definition) == []
    with (
        mock_aws(config=AWS),
        moto_runs_lambda_code(),
        moto_evaluates_jsonata(),
        moto_names_errors_as_step_functions(),
        moto_passes_timestamps_as_text(),
    ):
        ids = seed(port)
        deploy_checks_function(exported.template)
        queue = subscribe_approver(exported.approvals_topic) if exported.approvals_topic else None
        before = webshop_state()
        done = threading.Event()
        answered: list[dict[str, Any]] = []
        approver = threading.Thread(target=approve_when_asked, args=(queue, done, answered))
        if queue is not None:
            approver.start()
        try:
            described = execute(
                exported.definition, table=exported.coordination_table, created=_now(), timeout=120
            )
        finally:
            done.set()
            if queue is not None:
                approver.join()
        described["answered"] = answered
        described["before"] = before
        described["after"] = webshop_state()
        if described["status"] != "SUCCEEDED" and not str(described.get("cause")).startswith("{"):
            return exported, described, ids  # failed before any step's record (States.Runtime)
        doc = records(described)
        volumes = volume_names(described["history"])
        described["out"] = {
            key: named(doc["steps"][sid].get("out", {}), ids, volumes) for key, sid in exported.sids.items()
        }
    return exported, described, ids


def run_local(mode: str, port: int, only: tuple[str, ...] = ()) -> tuple[dict[str, Any], Any]:
    """Seed, run the plan with drplan's own engine (``web.approve`` approved up front, as
    ``--approve web.approve`` does): the plan, the ids moto picked, AWS before and after, the
    outputs; and the run."""
    with mock_aws():
        ids = seed(port)
        data = webshop(ids, port, only)
        before = webshop_state()
        local = run_plan(
            data,
            mode,  # type: ignore[arg-type]
            run_id=RUN_ID,
            approvals=Approvals(steps=frozenset({"web.approve"}), identity=APPROVER),
        )
        volumes = volume_names()
        out = {k: named(r.outputs, ids, volumes) for k, r in local.outcome.records.items()}
        return {"data": data, "ids": ids, "before": before, "after": webshop_state(), "out": out}, local


def _without_change_ids(outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The outputs with Route 53's change id (moto picks it) marked rather than compared."""
    return {
        key: {
            name: ("<change id>" if name == "change_id" and value else value) for name, value in out.items()
        }
        for key, out in outputs.items()
    }


@pytest.mark.slow
def test_a_recovery_leaves_aws_as_the_local_recover_does(service: Service) -> None:
    """Every step succeeds in both, with the same outputs; the database restored from the newest
    snapshot into the plan's subnet group and security group, the carts table, the media volume
    from the newer tagged snapshot attached to the host, static/ rewound an hour, the group at
    6 (3..12), the record at the restored endpoint: the same in both."""
    local, run = run_local("recover", service.port)
    expected_status = {k: r.status for k, r in run.outcome.records.items()}
    assert set(expected_status.values()) == {"succeeded"}, {
        k: r.error for k, r in run.outcome.records.items()
    }
    after = local["after"]
    assert after["group"] == {"min": 3, "max": 12, "desired": 6}
    restored = after["instances"]["shop-orders-restored"]
    assert (restored["class"], restored["subnet_group"], restored["security_groups"]) == (
        "db.r6g.large",
        "shop-db-private",
        ["shop-db"],
    )
    assert restored["tags"]["data-class"] == "confidential"
    assert local["out"]["orders-db.restore"]["snapshot_id"] == "shop-orders-nightly"
    assert local["out"]["media.volume"]["snapshot_id"] == "newer"
    assert [v["attachments"] for v in after["volumes"] if v["tags"].get("Name") == "shop-media"] == [
        [("media-host", "/dev/xvdf", "attached")]
    ]
    assert after["records"] == {
        ("orders-db.internal.shop.example.com.", "CNAME"): [local["out"]["orders-db.restore"]["endpoint"]]
    }
    assert after["buckets"][BUCKET]["keys"]["static/app.css"]["body"] == "css-1"
    local_paths = list(service.paths)
    assert local_paths == ["/healthz"]

    service.reset()
    exported, described, ids = run_exported(local["data"], "recover", service.port)
    assert ids == local["ids"], "moto seeded alike picks the same ids: the same plan runs"
    assert described["status"] == "SUCCEEDED", described.get("cause")
    (asked,) = described["answered"]  # the approver was asked once, and approved
    assert "error" not in asked, asked["error"]
    assert asked["Subject"] == f"drplan: approval needed for web.approve in run {RUN_ID}"
    assert "Confirm the restored orders DB has the latest orders you expect" in asked["Message"]
    assert "Role: approver (Head of e-commerce <+1-555-0100>)" in asked["Message"]
    assert statuses(records(described), exported.sids) == expected_status
    assert _without_change_ids(described["out"]) == _without_change_ids(local["out"])
    assert described["before"] == local["before"]
    assert described["after"] == after
    assert service.paths == local_paths


@pytest.mark.slow
def test_a_drill_restores_the_same_copies_and_leaves_nothing(service: Service) -> None:
    """The drill's steps (no approval, scaling or storefront check) restore the same copies,
    named with the run id, as the local drill (whose run here has no cleanup phase); the
    execution then removes them: AWS afterwards is AWS before."""
    local, run = run_local("drill", service.port)
    expected_status = {k: r.status for k, r in run.outcome.records.items()}
    assert expected_status == {
        "orders-db.restore": "succeeded",
        "orders-db.reachable": "succeeded",
        "carts.restore": "succeeded",
        "media.volume": "succeeded",
        "assets.rewind": "succeeded",
        "web.dns": "succeeded",
    }, {k: r.error for k, r in run.outcome.records.items()}
    suffix = f"-drill-{RUN_ID}"
    assert local["out"]["orders-db.restore"]["instance_id"] == f"shop-orders-restored{suffix}"
    assert local["out"]["carts.restore"]["table_name"] == f"shop-carts-restored{suffix}"
    assert local["out"]["media.volume"]["volume_id"] == f"shop-media{suffix}"
    assert local["out"]["web.dns"]["fqdn"].endswith(".drill.shop.example.com")
    assert local["after"] != local["before"]  # the local drill's copies are still there

    exported, described, ids = run_exported(local["data"], "drill", service.port)
    assert ids == local["ids"], "moto seeded alike picks the same ids: the same plan runs"
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert described["answered"] == []
    doc = records(described)
    assert statuses(doc, exported.sids) == expected_status
    assert _without_change_ids(described["out"]) == _without_change_ids(local["out"])
    assert described["after"] == described["before"] == local["before"]
    assert {key: doc["cleanup"][sid]["status"] for key, sid in exported.sids.items()} == {
        "orders-db.restore": "removed",
        "orders-db.reachable": "nothing to undo",
        "carts.restore": "removed",
        "media.volume": "removed",
        "assets.rewind": "removed",
        "web.dns": "removed",
    }
