"""aws.ec2.volume_from_snapshot exported to Step Functions and executed by moto's interpreter: the
same volumes afterwards as drplan's own run (size, zone, type, tags, attachment), the same
outputs, the same failures with the same messages, and undos that leave nothing behind.

The plans are written from docs/actions.md. moto picks its own ids (snapshots, volumes,
instances), so each run seeds its own and the comparison names them by their tags; snapshot times
are set back in moto's EC2 backend (as tests/test_action_ec2.py does), so "the newest" and
``max_age`` are decided by hours, not by the second moto stamps.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.export import ExportRefused
from tests.moto_jsonata import moto_evaluates_jsonata
from tests.moto_timestamps import moto_passes_timestamps_as_text
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    SFN,
    _called,
    _grants,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    records,
    statuses,
)

ACTION = "aws.ec2.volume_from_snapshot"
ZONE = f"{REGION}a"
MISSING = "snap-0123456789abcdef0"


@pytest.fixture(autouse=True)
def _timestamps_as_text() -> Iterator[None]:
    """Timestamps as Step Functions passes them (tests/moto_timestamps.py): "the newest snapshot"
    is then decided as in AWS."""
    with moto_passes_timestamps_as_text():
        yield


# --- plans (docs/actions.md) and what they run against ---------------------------------------------


def volume_step(step: str = "volume", **params: Any) -> dict[str, Any]:
    return {
        "id": step,
        "uses": ACTION,
        "with": {"name": "media-data", "availability_zone": ZONE, **params},
    }


def one_service(**params: Any) -> dict[str, Any]:
    step = volume_step(**{"snapshot_tags": {"app": "media", "kind": "nightly"}, **params})
    return plan_data({"media": {"steps": [step]}}, name="volumes")


def _tag(resource: Mapping[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in resource.get("Tags", []) if t["Key"] == key), None)


def _age(snapshot_id: str, hours: float) -> None:
    """moto stamps snapshots with the clock: set the time back in its backend."""
    from moto.ec2.models import ec2_backends

    snapshot = ec2_backends[DEFAULT_ACCOUNT_ID][REGION].snapshots[snapshot_id]
    then = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)
    snapshot.start_time = then.replace(tzinfo=None)  # moto keeps naive UTC


def seed(*, hours: float = 1) -> dict[str, str]:
    """Two volumes and their snapshots, each with a ``label`` tag: ``older`` and ``newer`` carry
    the plan's tags (``newer`` is ``hours`` old, ``older`` a day older), ``other`` is newer still
    but has another ``kind``; an instance named ``app`` to attach to. Their ids, by label."""
    ec2 = boto3.client("ec2", region_name=REGION)
    ids: dict[str, str] = {}
    for label, size, kind, age in (
        ("older", 30, "nightly", hours + 24),
        ("newer", 40, "nightly", hours),
        ("other", 50, "weekly", 0.1),
    ):
        volume = ec2.create_volume(AvailabilityZone=ZONE, Size=size, VolumeType="gp3")["VolumeId"]
        tags = [
            {"Key": "app", "Value": "media"},
            {"Key": "kind", "Value": kind},
            {"Key": "label", "Value": label},
        ]
        snapshot = ec2.create_snapshot(
            VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}]
        )["SnapshotId"]
        _age(snapshot, age)
        ids[label] = snapshot
    instance = ec2.run_instances(
        ImageId="ami-12345678",
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": ZONE},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "app"}]}],
    )["Instances"][0]
    ids["app"] = instance["InstanceId"]
    return ids


def ec2_state() -> list[dict[str, Any]]:
    """Every volume, without what differs between two runs (ids, times, the run's start tag):
    its snapshot and instance named by their tags."""
    ec2 = boto3.client("ec2", region_name=REGION)
    snapshots = {
        s["SnapshotId"]: _tag(s, "label")
        for s in ec2.describe_snapshots(Filters=[{"Name": "tag-key", "Values": ["label"]}])["Snapshots"]
    }
    instances = {
        i["InstanceId"]: _tag(i, "Name")
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    volumes = []
    for v in ec2.describe_volumes()["Volumes"]:
        tags = {t["Key"]: t["Value"] for t in v.get("Tags", [])}
        tags.pop("drplan:created", None)
        volumes.append(
            {
                "tags": tags,
                "size": v["Size"],
                "zone": v["AvailabilityZone"],
                "state": v["State"],
                "type": v["VolumeType"],
                "iops": v.get("Iops"),
                "throughput": v.get("Throughput"),
                "snapshot": snapshots.get(
                    v.get("SnapshotId", ""), "another" if v.get("SnapshotId") else None
                ),
                "attachments": sorted(
                    (str(instances.get(a["InstanceId"])), a["Device"], a["State"])
                    for a in v.get("Attachments", [])
                ),
            }
        )
    return sorted(volumes, key=lambda v: json.dumps(v, sort_keys=True))


def chained(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with a second volume from the snapshot the first step restored (its output)."""
    data["services"]["copy"] = {
        "depends_on": ["media"],
        "steps": [volume_step(snapshot="${media.volume.snapshot_id}", name="media-copy")],
    }
    return data


def named_outputs(outputs: Mapping[str, Any], ids: Mapping[str, str]) -> dict[str, Any]:
    """A step's outputs with the ids moto picked named: the snapshot by its label, the volume by
    its Name tag (read while the mock is still there)."""
    labels = {v: k for k, v in ids.items()}
    out = dict(outputs)
    out["snapshot_id"] = labels.get(str(out.get("snapshot_id")), out.get("snapshot_id"))
    if out.get("volume_id"):
        ec2 = boto3.client("ec2", region_name=REGION)
        (volume,) = ec2.describe_volumes(VolumeIds=[str(out["volume_id"])])["Volumes"]
        out["volume_id"] = _tag(volume, "Name")
    return out


def _created_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sid(exported: Any, key: str = "media.volume") -> str:
    return str(exported.sids[key])


# --- export ------------------------------------------------------------------------------------------


def test_every_variant_exports_lints_and_the_role_may_make_volumes() -> None:
    variants = [
        one_service(),
        one_service(max_age="PT6H", tags={"team": "media"}),
        one_service(snapshot="snap-0a1b2c3d4e5f60718", volume_type="io2", iops=4000),
        one_service(volume_type="gp3", iops=3000, throughput=250),
        one_service(attach={"instance_id": "i-0a1b2c3d4e5f60718", "device": "/dev/xvdf"}),
    ]
    variants.append(chained(one_service()))  # a snapshot id from another step's output
    for data in variants:
        for mode in ("recover", "drill"):
            exported = export_plan(build_plan(data), mode)
            assert lint_definition(exported.definition) == []
            # Every call of every variant is granted to the role (policy.json and the template's).
            role = exported.template["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]
            for document in (exported.policy, role):
                actions = {a for s in document["Statement"] for a in s["Action"]}
                called = _called(exported.definition)
                assert called, "no aws-sdk call found"
                assert not {c for c in called if not any(_grants(a, c) for a in actions)}, (mode, called)
    assert {"ec2:CreateVolume", "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DeleteVolume"} <= actions


def test_a_drill_does_not_attach_to_the_production_instance() -> None:
    data = one_service(attach={"instance_id": "i-0a1b2c3d4e5f60718", "device": "/dev/xvdf"})
    text = json.dumps(export_plan(build_plan(data), "drill").definition)
    assert "ec2:attachVolume" not in text and "ec2:detachVolume" in text  # the undo still detaches
    assert "ec2:attachVolume" in json.dumps(export_plan(build_plan(data), "recover").definition)


def test_tags_ec2_would_read_as_wildcards_are_refused() -> None:
    with pytest.raises(ExportRefused, match="wildcards"):
        export_plan(build_plan(one_service(snapshot_tags={"app": "media*"})), "recover")


# --- execution -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_recovery_makes_the_volumes_the_local_recover_makes() -> None:
    """``latest``: the newer of the two snapshots with the tags (not the newest of all), the run's
    and the step's tags and its Name; a second volume from the snapshot id the first step output;
    the client token is drplan's."""
    data = chained(one_service(tags={"team": "media"}))
    with mock_aws():
        ids = seed()
        local = run_plan(data, run_id=RUN_ID)
        assert {k: r.status for k, r in local.outcome.records.items()} == {
            "media.volume": "succeeded",
            "copy.volume": "succeeded",
        }
        expected = ec2_state()
        expected_out = {k: named_outputs(r.outputs, ids) for k, r in local.outcome.records.items()}
    assert expected_out["media.volume"] == {
        "volume_id": "media-data",
        "size_gib": 40,
        "snapshot_id": "newer",
        "availability_zone": ZONE,
    }
    assert expected_out["copy.volume"] == {**expected_out["media.volume"], "volume_id": "media-copy"}
    made = [v for v in expected if v["tags"].get("Name") == "media-data"]
    assert len(made) == 1 and made[0]["snapshot"] == "newer" and made[0]["tags"]["team"] == "media"
    assert made[0]["tags"]["drplan:step"] == "media.volume" and made[0]["attachments"] == []

    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with mock_aws(config=SFN):
        ids = seed()
        described = execute(exported.definition, table=exported.coordination_table)
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert ec2_state() == expected
        doc = records(described)
        out = {k: named_outputs(doc["steps"][sid]["out"], ids) for k, sid in exported.sids.items()}
    assert out == expected_out
    tokens = [
        json.loads(e["taskScheduledEventDetails"]["parameters"]).get("ClientToken")
        for e in described["history"]
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resource"] == "createVolume"
    ]
    assert len(tokens) == 2 and len(set(tokens)) == 2
    assert all(re.fullmatch(r"drplan-[0-9a-f]{40}", str(t)) for t in tokens)


@pytest.mark.slow
def test_a_named_snapshot_attached_to_an_instance_as_locally() -> None:
    """A snapshot by id (the older one), io2 with its IOPS, attached to the instance as /dev/xvdf."""

    def plan(ids: Mapping[str, str]) -> dict[str, Any]:
        return one_service(
            snapshot=ids["older"],
            volume_type="io2",
            iops=4000,
            attach={"instance_id": ids["app"], "device": "/dev/xvdf"},
        )

    with mock_aws():
        ids = seed()
        local = run_plan(plan(ids), run_id=RUN_ID)
        rec = local.outcome.records["media.volume"]
        assert rec.status == "succeeded", rec.error
        expected = ec2_state()
        expected_out = named_outputs(rec.outputs, ids)
    (made,) = [v for v in expected if v["tags"].get("Name") == "media-data"]
    assert made["attachments"] == [("app", "/dev/xvdf", "attached")] and made["state"] == "in-use"
    assert (made["type"], made["iops"], made["snapshot"]) == ("io2", 4000, "older")

    with mock_aws(config=SFN):
        ids = seed()
        exported = export_plan(build_plan(plan(ids)), "recover", options=FAST, history_budget=ONE_MACHINE)
        assert lint_definition(exported.definition) == []
        described = execute(exported.definition, table=None)
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert ec2_state() == expected
        out = records(described)["steps"][_sid(exported)]["out"]
        assert (
            named_outputs(out, ids)
            == expected_out
            == {
                "volume_id": "media-data",
                "size_gib": 30,
                "snapshot_id": "older",
                "availability_zone": ZONE,
            }
        )


def _failing() -> dict[str, Any]:
    """Three steps that fail before creating anything: a snapshot id that does not exist, tags no
    snapshot has, a newest snapshot older than ``max_age``; and one young enough."""
    return plan_data(
        {
            "missing": {"steps": [volume_step(snapshot=MISSING)]},
            "untagged": {"steps": [volume_step(snapshot_tags={"app": "media", "kind": "hourly"})]},
            "stale": {
                "steps": [volume_step(snapshot_tags={"app": "media", "kind": "nightly"}, max_age="PT2H")]
            },
            "fresh": {
                "steps": [volume_step(snapshot_tags={"app": "media", "kind": "weekly"}, max_age="PT2H")]
            },
        },
        name="volumes",
    )


@pytest.mark.slow
def test_failures_have_the_local_messages_and_create_nothing() -> None:
    with mock_aws():
        seed(hours=3)
        local = run_plan(_failing(), run_id=RUN_ID)
        expected_status = {k: r.status for k, r in local.outcome.records.items()}
        expected_errors = {k: r.error for k, r in local.outcome.records.items() if r.error}
        expected = ec2_state()
    assert expected_status == {
        "missing.volume": "failed",
        "untagged.volume": "failed",
        "stale.volume": "failed",
        "fresh.volume": "succeeded",
    }
    assert expected_errors["missing.volume"] == f"snapshot {MISSING} does not exist"
    assert expected_errors["untagged.volume"] == (
        "no completed snapshot owned by this account is tagged app=media, kind=hourly"
    )
    assert re.fullmatch(
        r"snapshot snap-[0-9a-f]+ is 3h old, older than the allowed 2h \(max_age\); nothing restored",
        str(expected_errors["stale.volume"]),
    )
    assert sum(1 for v in expected if v["tags"].get("Name") == "media-data") == 1  # the fresh one

    exported = export_plan(build_plan(_failing()), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with mock_aws(config=SFN), moto_evaluates_jsonata():
        ids = seed(hours=3)
        described = execute(exported.definition, table=exported.coordination_table, created=_created_now())
        assert ec2_state() == expected
    doc = records(described)
    assert statuses(doc, exported.sids) == expected_status
    for key in ("missing.volume", "untagged.volume"):
        assert doc["steps"][exported.sids[key]]["cause"] == expected_errors[key]
    stale = doc["steps"][exported.sids["stale.volume"]]
    assert stale["error"] == "drplan.StepFailed"
    # The same message about this emulator's snapshot (the newest with the tags, as locally).
    assert stale["cause"] == re.sub(r"snap-[0-9a-f]+", ids["newer"], str(expected_errors["stale.volume"]))


@pytest.mark.slow
def test_a_drill_leaves_no_volume_behind() -> None:
    """The drill's volume has the suffixed name, is not attached to production, and its cleanup
    deletes it: EC2 is as before, as after a local drill."""
    data = one_service(attach={"instance_id": "i-0a1b2c3d4e5f60718", "device": "/dev/xvdf"})
    with mock_aws():
        seed()
        before = ec2_state()
        local = run_plan(data, "drill", run_id=RUN_ID)
        assert local.outcome.records["media.volume"].status == "succeeded"
        assert ec2_state() != before  # the drill's volume, until the cleanup
        assert local.runner.cleanup() == []
        assert ec2_state() == before
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with mock_aws(config=SFN):
        ids = seed()
        before = ec2_state()
        described = execute(exported.definition, table=None)
        after = ec2_state()
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == before
    doc = records(described)
    assert doc["steps"][_sid(exported)]["out"]["snapshot_id"] == ids["newer"]
    assert doc["cleanup"][_sid(exported)] == {"status": "removed"}
    created = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in described["history"]
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resource"] == "createVolume"
    ]
    (tags,) = [c["TagSpecifications"][0]["Tags"] for c in created]
    assert {t["Key"]: t["Value"] for t in tags}["Name"] == f"media-data-drill-{RUN_ID}"


def _then_failing(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with a step after the volume that fails (its snapshot does not exist)."""
    data["services"]["later"] = {"depends_on": ["media"], "steps": [volume_step(snapshot=MISSING)]}
    return data


@pytest.mark.slow
def test_a_rollback_detaches_and_deletes_the_volume_as_the_local_rollback_does() -> None:
    def plan(ids: Mapping[str, str]) -> dict[str, Any]:
        return _then_failing(one_service(attach={"instance_id": ids["app"], "device": "/dev/xvdf"}))

    with mock_aws():
        ids = seed()
        before = ec2_state()
        local = run_plan(plan(ids), run_id=RUN_ID)
        assert local.outcome.records["media.volume"].status == "succeeded"
        assert local.outcome.records["later.volume"].status == "failed"
        assert local.runner.rollback() == []
        expected = ec2_state()
    assert expected == before

    with mock_aws(config=SFN):
        ids = seed()
        exported = export_plan(
            build_plan(plan(ids)),
            "recover",
            options=FAST,
            history_budget=ONE_MACHINE,
            rollback_on_failure=True,
        )
        assert lint_definition(exported.definition) == []
        described = execute(exported.definition, table=None)
        after = ec2_state()
    assert described["status"] == "FAILED", described.get("cause")
    assert after == expected
    doc = records(described)
    assert doc["steps"][_sid(exported)]["status"] == "succeeded"
    assert doc["cleanup"][_sid(exported)] == {"status": "removed"}
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in described["history"] if "stateEnteredEventDetails" in e
    ]
    undo = [re.sub(r" #\d+$", "", name) for name in entered if name.startswith("media.volume undo: ")]
    assert "media.volume undo: detach volume" in undo and "media.volume undo: delete volume" in undo, undo
