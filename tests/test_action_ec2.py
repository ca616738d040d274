"""aws.ec2.volume_from_snapshot: volumes from snapshots against moto, state checked in EC2 afterwards.

moto stamps snapshot times with the real clock at one-second resolution, so the tests that need
snapshots of different ages set ``start_time`` (and ``status``) in moto's EC2 backend directly
(:func:`_age`), instead of sleeping.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from drplan.actions import registry
from drplan.aws import READ_ONLY_PREFIXES, AwsSession
from drplan.engine.events import EventBus
from drplan.engine.prepare import prepare
from drplan.engine.runner import Runner
from drplan.model import build_plan
from tests.runs import one_step, run_plan, seed

ACTION = "aws.ec2.volume_from_snapshot"
TAGS = {"app": "web", "backup": "nightly"}


@pytest.fixture
def ec2():
    with mock_aws():
        client = boto3.client("ec2", region_name="us-east-1")
        yield client


def _source(ec2, size=30):
    return ec2.create_volume(AvailabilityZone="us-east-1a", Size=size)["VolumeId"]


def _snapshot(ec2, volume_id, tags, *, days_old=0.0, status="completed"):
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    specs = [{"ResourceType": "snapshot", "Tags": tag_list}] if tag_list else []
    snap = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=specs)
    _age(snap["SnapshotId"], days_old, status)
    return snap["SnapshotId"]


def _age(snapshot_id, days_old, status):
    """Test-only: moto cannot create an old snapshot, so move its StartTime (and state) back."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    snap = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].snapshots[snapshot_id]
    snap.start_time = (datetime.now(timezone.utc) - timedelta(days=days_old)).replace(tzinfo=None)
    snap.status = status


def _params(**extra):
    return {"snapshot_tags": TAGS, "name": "web-data", "availability_zone": "us-east-1a", **extra}


def _tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def _volumes_named(ec2, name):
    return ec2.describe_volumes(Filters=[{"Name": "tag:Name", "Values": [name]}])["Volumes"]


def _preflight(data, mode="recover", *, calls=None):
    """The step's preflight through a read-only session (every other call raises)."""
    prepared = prepare(build_plan(data), mode, registry(), run_id="t35t1d")
    session = AwsSession(region="us-east-1", read_only=True)
    if calls is not None:
        session.on_call = calls.append
    runner = Runner(prepared, session, EventBus("t35t1d"))
    step = prepared.steps["svc.s"]
    return step.action.preflight(runner.context(step, step.params))


def _instance(ec2, zone="us-east-1a"):
    return ec2.run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1, Placement={"AvailabilityZone": zone}
    )["Instances"][0]["InstanceId"]


def test_latest_picks_the_newest_completed_snapshot_with_every_tag(ec2):
    source = _source(ec2, size=30)
    _snapshot(ec2, source, TAGS, days_old=3)
    wanted = _snapshot(ec2, source, TAGS, days_old=1)
    _snapshot(ec2, source, {"app": "web"}, days_old=0.1)  # newer, but lacks backup=nightly
    _snapshot(ec2, source, TAGS, days_old=0.05, status="pending")  # newer, not completed

    run = run_plan(one_step(ACTION, _params(iops=4000, throughput=250)))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert rec.outputs["snapshot_id"] == wanted
    assert rec.outputs["size_gib"] == 30
    assert rec.outputs["availability_zone"] == "us-east-1a"
    volume = ec2.describe_volumes(VolumeIds=[rec.outputs["volume_id"]])["Volumes"][0]
    assert volume["SnapshotId"] == wanted
    assert volume["Size"] == 30
    assert volume["VolumeType"] == "gp3"
    assert volume["Iops"] == 4000
    assert volume["Throughput"] == 250
    assert volume["State"] == "available"
    tags = _tags(volume)
    assert tags["Name"] == "web-data"
    assert tags["drplan:run-id"] == "t35t1d"
    assert tags["drplan:step"] == "svc.s"
    assert rec.handle["recovery_point"]["id"] == wanted
    assert [r.kind for r in rec.resources] == ["ec2:volume"]
    assert rec.resources[0].id == rec.outputs["volume_id"]


def test_a_named_snapshot_is_used_even_when_older(ec2):
    source = _source(ec2, size=12)
    old = _snapshot(ec2, source, {}, days_old=5)
    _snapshot(ec2, source, TAGS, days_old=0)

    run = run_plan(
        one_step(
            ACTION,
            {"snapshot": old, "name": "restored", "availability_zone": "us-east-1b", "volume_type": "gp2"},
        )
    )

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert rec.outputs["snapshot_id"] == old
    volume = ec2.describe_volumes(VolumeIds=[rec.outputs["volume_id"]])["Volumes"][0]
    assert (volume["Size"], volume["VolumeType"], volume["AvailabilityZone"]) == (12, "gp2", "us-east-1b")


def test_no_matching_snapshot_fails_cleanly(ec2):
    _snapshot(ec2, _source(ec2), {"app": "web"})
    run = run_plan(one_step(ACTION, _params()))
    assert run.record().status == "failed"
    assert "no completed snapshot" in run.record().error
    assert _volumes_named(ec2, "web-data") == []


def test_a_missing_named_snapshot_fails_cleanly(ec2):
    run = run_plan(
        one_step(
            ACTION, {"snapshot": "snap-0123456789abcdef0", "name": "x", "availability_zone": "us-east-1a"}
        )
    )
    assert run.record().status == "failed"
    assert "does not exist" in run.record().error


def test_max_age_refuses_an_old_snapshot(ec2):
    _snapshot(ec2, _source(ec2), TAGS, days_old=2)
    run = run_plan(one_step(ACTION, _params(max_age="P1D")))
    assert run.record().status == "failed"
    assert "older than the allowed" in run.record().error
    assert _volumes_named(ec2, "web-data") == []


def test_undo_deletes_the_volume(ec2):
    _snapshot(ec2, _source(ec2), TAGS)
    run = run_plan(one_step(ACTION, _params()))
    volume_id = run.record().outputs["volume_id"]

    assert run.runner.undo(["svc.s"], reason="test") == []
    with pytest.raises(ec2.exceptions.ClientError) as err:
        ec2.describe_volumes(VolumeIds=[volume_id])
    assert err.value.response["Error"]["Code"] == "InvalidVolume.NotFound"


def test_attach_then_undo_detaches_before_deleting(ec2):
    _snapshot(ec2, _source(ec2), TAGS)
    instance = _instance(ec2)

    run = run_plan(one_step(ACTION, _params(attach={"instance_id": instance, "device": "/dev/xvdf"})))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    volume = ec2.describe_volumes(VolumeIds=[rec.outputs["volume_id"]])["Volumes"][0]
    assert [(a["InstanceId"], a["Device"], a["State"]) for a in volume["Attachments"]] == [
        (instance, "/dev/xvdf", "attached")
    ]
    assert rec.handle["attachment"] == {"instance_id": instance, "device": "/dev/xvdf"}

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert (
        ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [rec.outputs["volume_id"]]}])["Volumes"]
        == []
    )
    mappings = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0][
        "BlockDeviceMappings"
    ]
    assert "/dev/xvdf" not in [m["DeviceName"] for m in mappings]


def test_an_existing_volume_with_the_same_name_is_left_alone(ec2):
    _snapshot(ec2, _source(ec2), TAGS)
    other = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=5,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "web-data"}]}],
    )["VolumeId"]

    run = run_plan(one_step(ACTION, _params()))

    assert run.record().status == "succeeded", run.record().error
    assert run.record().outputs["volume_id"] != other
    assert ec2.describe_volumes(VolumeIds=[other])["Volumes"][0]["Size"] == 5  # untouched
    notes = [e.data.get("note", "") for e in run.events if e.kind == "step.progress"]
    assert any("already used by" in n and other in n for n in notes)


def test_drill_renames_the_volume_and_never_attaches(ec2):
    _snapshot(ec2, _source(ec2, size=8), TAGS)
    instance = _instance(ec2)

    run = run_plan(
        one_step(ACTION, _params(attach={"instance_id": instance, "device": "/dev/xvdf"})), mode="drill"
    )

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    volume = ec2.describe_volumes(VolumeIds=[rec.outputs["volume_id"]])["Volumes"][0]
    assert _tags(volume)["Name"] != "web-data" and _tags(volume)["Name"].startswith("web-data")
    assert "t35t1d" in _tags(volume)["Name"]
    assert volume["Attachments"] == []
    assert run.runner.undo(["svc.s"], reason="cleanup") == []
    assert (
        ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [rec.outputs["volume_id"]]}])["Volumes"]
        == []
    )


def test_preflight_reports_the_snapshot_its_age_and_the_name(ec2):
    snap = _snapshot(ec2, _source(ec2, size=30), TAGS, days_old=2)
    calls = []

    results = _preflight(one_step(ACTION, _params()), calls=calls)

    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert results[0].facts["recovery_point"] == snap
    assert 2 * 86400 - 60 <= results[0].facts["age_seconds"] <= 2 * 86400 + 60
    assert results[0].facts["size_gib"] == 30
    assert "is free" in results[1].message
    assert calls and all(c.operation.startswith(READ_ONLY_PREFIXES) for c in calls)


def test_preflight_warns_about_a_volume_of_another_run_with_the_same_name(ec2):
    _snapshot(ec2, _source(ec2), TAGS)
    tags = [{"Key": "Name", "Value": "web-data"}, {"Key": "drplan:run-id", "Value": "0ldrun"}]
    ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=5, TagSpecifications=[{"ResourceType": "volume", "Tags": tags}]
    )

    results = _preflight(one_step(ACTION, _params()))

    name = next(r for r in results if r.facts.get("target") == "web-data")
    assert name.status == "warning"
    assert "0ldrun" in name.message


def test_preflight_errors(ec2):
    _snapshot(ec2, _source(ec2), TAGS)
    elsewhere = _instance(ec2, zone="us-east-1b")

    assert _preflight(one_step(ACTION, _params(snapshot_tags={"app": "nope"})))[0].status == "error"
    assert _preflight(one_step(ACTION, _params(max_age="PT0S")))[0].status == "error"
    by_zone = _preflight(one_step(ACTION, _params(availability_zone="us-east-1z")))
    assert [r.status for r in by_zone if "zone" in r.facts] == ["error"]
    attach = _preflight(one_step(ACTION, _params(attach={"instance_id": elsewhere, "device": "/dev/xvdf"})))
    assert "is in us-east-1b" in next(r for r in attach if "instance_id" in r.facts).message
    missing = _preflight(
        one_step(ACTION, _params(attach={"instance_id": "i-0123456789abcdef0", "device": "/dev/xvdf"}))
    )
    assert [r.status for r in missing if "instance_id" in r.facts] == ["error"]


def test_seed_creates_a_source_the_step_restores(ec2):
    data = one_step(ACTION, _params())
    prepared = prepare(build_plan(data), "recover", registry(), run_id="seed")
    runner = Runner(prepared, AwsSession(region="us-east-1"), EventBus("seed"))
    step = prepared.steps["svc.s"]
    ctx = runner.context(step, step.params)

    seed(ctx)
    seed(ctx)  # idempotent

    snapshots = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert len(snapshots) == 1 and _tags(snapshots[0]) == TAGS
    run = run_plan(data)
    assert run.record().status == "succeeded", run.record().error
    assert run.record().outputs["size_gib"] == 20


def test_seed_does_nothing_for_a_fixed_snapshot_id(ec2):
    data = one_step(
        ACTION, {"snapshot": "snap-0123456789abcdef0", "name": "x", "availability_zone": "us-east-1a"}
    )
    prepared = prepare(build_plan(data), "recover", registry(), run_id="seed")
    runner = Runner(prepared, AwsSession(region="us-east-1"), EventBus("seed"))
    step = prepared.steps["svc.s"]
    seed(runner.context(step, step.params))
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    assert ec2.describe_volumes()["Volumes"] == []


class _StubbedAws(AwsSession):
    """Every client is the one stubbed client (botocore's Stubber checks each call's parameters)."""

    def __init__(self, client):
        super().__init__(region="us-east-1")
        self.stubbed = client

    def client(self, service, *, region=None, role_arn=None):
        return self.stubbed


def test_poll_and_undo_walk_through_the_intermediate_states():
    """moto makes volumes available and attachments attached at once, so the states in between
    (creating, attaching, detaching, deleting) are played with botocore's Stubber instead."""
    from botocore.stub import Stubber

    client = boto3.client("ec2", region_name="us-east-1")
    data = one_step(ACTION, _params(attach={"instance_id": "i-0123456789abcdef0", "device": "/dev/xvdf"}))
    prepared = prepare(build_plan(data), "recover", registry(), run_id="t35t1d")
    step = prepared.steps["svc.s"]
    ctx = Runner(prepared, _StubbedAws(client), EventBus("t35t1d")).context(step, step.params)
    action, handle = (
        step.action,
        {"volume_id": "vol-1", "snapshot_id": "snap-1", "availability_zone": "us-east-1a"},
    )
    ids = {"VolumeIds": ["vol-1"]}

    def volume(state, attachment=None):
        vol = {
            "VolumeId": "vol-1",
            "State": state,
            "Size": 20,
            "AvailabilityZone": "us-east-1a",
            "Attachments": [],
        }
        if attachment:
            vol["Attachments"] = [
                {"InstanceId": "i-0123456789abcdef0", "Device": "/dev/xvdf", "State": attachment}
            ]
        return {"Volumes": [vol]}

    with Stubber(client) as stub:
        stub.add_response("describe_volumes", volume("creating"), ids)
        stub.add_response("describe_volumes", volume("available"), ids)
        stub.add_response(
            "attach_volume",
            {"State": "attaching"},
            {"VolumeId": "vol-1", "InstanceId": "i-0123456789abcdef0", "Device": "/dev/xvdf"},
        )
        stub.add_response("describe_volumes", volume("in-use", "attaching"), ids)
        stub.add_response("describe_volumes", volume("in-use", "attached"), ids)
        polls = [action.poll(ctx, handle) for _ in range(4)]
        stub.assert_no_pending_responses()
    assert [p.done for p in polls] == [False, False, False, True]
    assert handle["attachment"] == {"instance_id": "i-0123456789abcdef0", "device": "/dev/xvdf"}
    assert action.result(ctx, handle)["size_gib"] == 20

    with Stubber(client) as stub:
        stub.add_response("describe_volumes", volume("in-use", "attached"), ids)
        stub.add_response(
            "detach_volume",
            {"State": "detaching"},
            {"VolumeId": "vol-1", "InstanceId": "i-0123456789abcdef0", "Device": "/dev/xvdf"},
        )
        undo = action.undo(ctx, handle)
        stub.add_response("describe_volumes", volume("in-use", "detaching"), ids)  # no second detach
        stub.add_response("describe_volumes", volume("in-use", "detaching"), ids)
        first = action.poll_undo(ctx, handle, undo)
        stub.add_response("describe_volumes", volume("available"), ids)
        stub.add_response("delete_volume", {}, {"VolumeId": "vol-1"})
        stub.add_response("describe_volumes", volume("deleting"), ids)
        second = action.poll_undo(ctx, handle, undo)
        stub.add_client_error("describe_volumes", "InvalidVolume.NotFound", expected_params=ids)
        third = action.poll_undo(ctx, handle, undo)
        stub.assert_no_pending_responses()
    assert (first.done, second.done, third.done) == (False, False, True)
    assert "detaching" in first.note and "deleting" in second.note
