"""Amazon EC2 / EBS: create volumes from snapshots.

The step creates the volume in :meth:`start` (one ``CreateVolume`` with the run's client token, so
a repeated start returns the same volume), and :meth:`poll` watches it become ``available``, then,
when ``attach`` is given, attaches it and watches the attachment become ``attached``. Undo detaches
first (waiting for ``available``) and then deletes: :meth:`poll_undo` drives both, because a volume
can only be deleted once it is detached.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions._aws import (
    add_resource,
    aws_tags,
    freshness_result,
    is_not_found,
    newest,
    recovery_point,
    require_fresh,
    unresolved,
)
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext, isolated_name
from drplan.aws import error_code
from drplan.errors import StepFailed
from drplan.resources import Resource, Target

#: CreateVolume errors that are the plan's fault (or a quota), reported as the step's failure.
_CREATE_ERRORS = (
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidParameterDependency",
    "InvalidParameter",
    "InvalidZone.NotFound",
    "InvalidSnapshot.NotFound",
    "IncorrectState",
    "VolumeLimitExceeded",
    "MaxIOPSLimitExceeded",
    "IdempotentParameterMismatch",
    "UnauthorizedOperation",
)
#: AttachVolume errors that end the step (the volume is still recorded, so undo deletes it).
_ATTACH_ERRORS = (
    "InvalidInstanceID.NotFound",
    "InvalidInstanceID.Malformed",
    "InvalidVolume.ZoneMismatch",
    "InvalidParameterValue",
    "IncorrectState",
    "IncorrectInstanceState",
    "VolumeInUse",
    "AttachmentLimitExceeded",
    "UnsupportedOperation",
)


def _message(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', exc)}"


def _tag(resource: Mapping[str, Any], key: str) -> str | None:
    return next((t.get("Value", "") for t in resource.get("Tags", []) if t.get("Key") == key), None)


def pick_snapshot(ctx: StepContext) -> dict[str, Any]:
    """The snapshot to restore: the named one, or the newest completed one of ours with all tags."""
    client = ctx.client("ec2")
    wanted = ctx.params.get("snapshot", "latest")
    if wanted != "latest":
        try:
            found = client.describe_snapshots(SnapshotIds=[wanted])["Snapshots"]
        except Exception as exc:
            if error_code(exc) in ("InvalidSnapshot.NotFound", "InvalidSnapshotID.Malformed"):
                raise StepFailed(ctx.step.key, f"snapshot {wanted} does not exist") from exc
            raise
        if not found:
            raise StepFailed(ctx.step.key, f"snapshot {wanted} does not exist")
        snapshot: dict[str, Any] = found[0]
        if snapshot.get("State") != "completed":
            raise StepFailed(ctx.step.key, f"snapshot {wanted} is {snapshot.get('State')}, not completed")
        return snapshot
    tags: Mapping[str, str] = ctx.params.get("snapshot_tags", {})
    filters = [{"Name": f"tag:{k}", "Values": [str(v)]} for k, v in sorted(tags.items())]
    filters.append({"Name": "status", "Values": ["completed"]})
    candidates: list[dict[str, Any]] = []
    for page in client.get_paginator("describe_snapshots").paginate(OwnerIds=["self"], Filters=filters):
        # Filter again on our side: every tag must match and the snapshot must be complete.
        candidates.extend(
            s
            for s in page.get("Snapshots", [])
            if s.get("State") == "completed" and all(_tag(s, k) == str(v) for k, v in tags.items())
        )
    best = newest(candidates, lambda s: s.get("StartTime"))
    if best is None:
        described = ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
        raise StepFailed(ctx.step.key, f"no completed snapshot owned by this account is tagged {described}")
    return best


class VolumeFromSnapshot(Action):
    name = "aws.ec2.volume_from_snapshot"
    family = "storage"
    summary = "Create an EBS volume from a snapshot, optionally attaching it"
    outputs = {
        "volume_id": "Id of the new volume",
        "size_gib": "Size of the new volume in GiB",
        "snapshot_id": "Id of the snapshot restored",
        "availability_zone": "Availability Zone of the new volume",
    }
    iam = (
        "ec2:DescribeSnapshots",
        "ec2:DescribeVolumes",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeInstances",
        "ec2:CreateVolume",
        "ec2:CreateTags",
        "ec2:AttachVolume",
        "ec2:DetachVolume",
        "ec2:DeleteVolume",
    )
    default_estimate = timedelta(minutes=5)
    drill = "isolate"
    undoable = True

    def describe(self, params: Mapping[str, Any]) -> str:
        snapshot = params.get("snapshot", "latest")
        if snapshot == "latest":
            tags = ", ".join(f"{k}={v}" for k, v in sorted(params.get("snapshot_tags", {}).items()))
            source = f"the latest snapshot tagged {tags}"
        else:
            source = f"snapshot {snapshot}"
        attach = params.get("attach")
        tail = f" and attach it to {attach['instance_id']} as {attach['device']}" if attach else ""
        return f"Create volume {params.get('name')} in {params.get('availability_zone')} from {source}{tail}"

    def isolate(
        self, params: Mapping[str, Any], suffix: str, *, redirected: bool
    ) -> Mapping[str, Any] | None:
        # A drill never attaches to a production instance; drill_with may name a drill instance.
        isolated = {**params, "name": isolated_name(params["name"], suffix, "ec2:volume")}
        if not redirected:
            isolated.pop("attach", None)
        return isolated

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        return (Target("ec2:volume", str(params["name"]), "name"),)

    # --- reading ----------------------------------------------------------------------------------

    def _volume(self, ctx: StepContext, volume_id: str) -> dict[str, Any] | None:
        try:
            volumes = ctx.client("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"]
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return volumes[0] if volumes else None

    def _named(self, ctx: StepContext, name: str) -> list[dict[str, Any]]:
        """Volumes that already carry ``Name=<name>`` (EC2 does not keep names unique; we warn)."""
        found: list[dict[str, Any]] = []
        paginator = ctx.client("ec2").get_paginator("describe_volumes")
        for page in paginator.paginate(Filters=[{"Name": "tag:Name", "Values": [name]}]):
            found.extend(v for v in page.get("Volumes", []) if v.get("State") not in ("deleting", "deleted"))
        return found

    def _name_finding(self, ctx: StepContext, name: str, volumes: list[dict[str, Any]]) -> PreflightResult:
        if not volumes:
            return PreflightResult("ok", f"volume name {name} is free", {"target": name}, name=name)
        described = []
        for volume in volumes:
            run = _tag(volume, "drplan:run-id")
            described.append(f"{volume['VolumeId']} (drplan run {run})" if run else volume["VolumeId"])
        return PreflightResult(
            "warning",
            f"volume name {name} is already used by {', '.join(described)}; "
            "the new volume would have the same Name tag",
            {"target": name, "existing": [v["VolumeId"] for v in volumes]},
            name=name,
        )

    # --- preflight --------------------------------------------------------------------------------

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        try:
            snapshot = pick_snapshot(ctx)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason)]
        found = freshness_result(ctx, "snapshot", snapshot["SnapshotId"], snapshot["StartTime"])
        results = [
            PreflightResult(
                found.status, found.message, {**found.facts, "size_gib": snapshot.get("VolumeSize")}
            )
        ]
        name = ctx.params["name"]
        if not unresolved(name):
            results.append(self._name_finding(ctx, name, self._named(ctx, name)))
        zone = ctx.params["availability_zone"]
        if not unresolved(zone):
            results.append(self._zone_finding(ctx, zone))
        attach = ctx.params.get("attach")
        if attach and not unresolved(attach.get("instance_id")) and not unresolved(zone):
            results.append(self._instance_finding(ctx, attach, zone))
        return results

    def _zone_finding(self, ctx: StepContext, zone: str) -> PreflightResult:
        try:
            zones = ctx.client("ec2").describe_availability_zones(ZoneNames=[zone])["AvailabilityZones"]
        except Exception as exc:
            if error_code(exc) in ("InvalidParameterValue", "InvalidZone.NotFound"):
                zones = []
            else:
                raise
        if not zones:
            return PreflightResult(
                "error", f"availability zone {zone} does not exist in {ctx.region}", {"zone": zone}
            )
        if zones[0].get("State", "available") != "available":
            return PreflightResult(
                "warning", f"availability zone {zone} is {zones[0]['State']}", {"zone": zone}
            )
        return PreflightResult("ok", f"availability zone {zone} is available", {"zone": zone})

    def _instance_finding(self, ctx: StepContext, attach: Mapping[str, Any], zone: str) -> PreflightResult:
        instance_id, device = str(attach["instance_id"]), attach["device"]
        facts = {"instance_id": instance_id, "device": device}
        try:
            reservations = ctx.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
        except Exception as exc:
            if is_not_found(exc) or error_code(exc) == "InvalidInstanceID.Malformed":
                reservations = []
            else:
                raise
        instances = [i for r in reservations for i in r.get("Instances", [])]
        if not instances:
            return PreflightResult("error", f"instance {instance_id} to attach to does not exist", facts)
        instance = instances[0]
        where = instance.get("Placement", {}).get("AvailabilityZone")
        if where and where != zone:
            return PreflightResult(
                "error", f"instance {instance_id} is in {where}, not in {zone}; cannot attach", facts
            )
        used = {m.get("DeviceName") for m in instance.get("BlockDeviceMappings", [])}
        if device in used:
            return PreflightResult(
                "error", f"device {device} is already in use on instance {instance_id}", facts
            )
        return PreflightResult("ok", f"would attach to instance {instance_id} as {device}", facts)

    # --- running ----------------------------------------------------------------------------------

    def start(self, ctx: StepContext) -> Handle:
        snapshot = pick_snapshot(ctx)
        snapshot_id = snapshot["SnapshotId"]
        require_fresh(ctx, snapshot["StartTime"], f"snapshot {snapshot_id}")
        name = ctx.params["name"]
        same_name = self._named(ctx, name)
        if same_name:
            ctx.note(self._name_finding(ctx, name, same_name).message)
        tags = [t for t in aws_tags(ctx) if t["Key"] != "Name"] + [{"Key": "Name", "Value": name}]
        kwargs: dict[str, Any] = {
            "SnapshotId": snapshot_id,
            "AvailabilityZone": ctx.params["availability_zone"],
            "VolumeType": ctx.params.get("volume_type", "gp3"),
            "TagSpecifications": [{"ResourceType": "volume", "Tags": tags}],
        }
        if ctx.client_token:
            kwargs["ClientToken"] = ctx.client_token
        if ctx.params.get("iops") is not None:
            kwargs["Iops"] = int(ctx.params["iops"])
        if ctx.params.get("throughput") is not None:
            kwargs["Throughput"] = int(ctx.params["throughput"])
        try:
            volume = ctx.client("ec2").create_volume(**kwargs)
        except Exception as exc:
            if error_code(exc) in _CREATE_ERRORS:
                raise StepFailed(
                    ctx.step.key, f"cannot create volume {name} from {snapshot_id}: {_message(exc)}"
                ) from exc
            raise
        handle: Handle = {
            "volume_id": volume["VolumeId"],
            "snapshot_id": snapshot_id,
            "availability_zone": volume.get("AvailabilityZone", ctx.params["availability_zone"]),
            "size_gib": volume.get("Size"),
        }
        add_resource(
            ctx, handle, Resource("ec2:volume", volume["VolumeId"], ctx.region, extra={"name": name})
        )
        recovery_point(handle, snapshot_id, snapshot["StartTime"])
        return handle

    def adopt(self, ctx: StepContext, found: list[Resource]) -> Handle | None:
        mine = [r for r in found if r.kind == "ec2:volume"]
        volume = self._volume(ctx, mine[0].id) if len(mine) == 1 else None
        if volume is None:
            return None
        handle: Handle = {
            "volume_id": volume["VolumeId"],
            "snapshot_id": volume.get("SnapshotId"),
            "availability_zone": volume.get("AvailabilityZone"),
            "size_gib": volume.get("Size"),
            "adopted": True,
        }
        name = str(ctx.params["name"])
        add_resource(
            ctx, handle, Resource("ec2:volume", volume["VolumeId"], ctx.region, extra={"name": name})
        )
        return handle

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        volume = self._volume(ctx, handle["volume_id"])
        if volume is None:
            return Poll.running("waiting for the volume to appear")
        handle["size_gib"] = volume.get("Size", handle.get("size_gib"))
        state = volume.get("State")
        if state == "creating":
            return Poll.running(f"creating volume {handle['volume_id']}")
        if state in ("error", "deleting", "deleted"):
            return Poll.failure(f"volume {handle['volume_id']} is {state}")
        attach = ctx.params.get("attach")
        if not attach:
            if state in ("available", "in-use"):
                return Poll.finished(f"volume {handle['volume_id']} is available ({handle['size_gib']} GiB)")
            return Poll.running(f"volume {handle['volume_id']} is {state}")
        return self._poll_attach(ctx, handle, volume, attach)

    def _poll_attach(
        self, ctx: StepContext, handle: Handle, volume: Mapping[str, Any], attach: Mapping[str, Any]
    ) -> Poll:
        instance_id, device = str(attach["instance_id"]), attach["device"]
        ours = [a for a in volume.get("Attachments", []) if a.get("InstanceId") == instance_id]
        if ours:
            status = ours[0].get("State")
            if status == "attached":
                return Poll.finished(
                    f"volume {handle['volume_id']} attached to {instance_id} "
                    f"as {ours[0].get('Device', device)}"
                )
            if status in ("detaching", "detached"):
                return Poll.failure(f"volume {handle['volume_id']} is {status} from {instance_id}")
            return Poll.running(f"attaching to {instance_id} ({status})")
        if volume.get("State") != "available":
            return Poll.running(f"volume {handle['volume_id']} is {volume.get('State')}")
        # Recorded before the call: if the answer is lost, undo still knows to detach first.
        handle["attachment"] = {"instance_id": instance_id, "device": device}
        try:
            ctx.client("ec2").attach_volume(
                VolumeId=handle["volume_id"], InstanceId=instance_id, Device=device
            )
        except Exception as exc:
            if error_code(exc) in _ATTACH_ERRORS:
                raise StepFailed(
                    ctx.step.key,
                    f"cannot attach volume {handle['volume_id']} to {instance_id} as {device}: "
                    f"{_message(exc)}",
                ) from exc
            raise
        return Poll.running(f"attaching to {instance_id} as {device}")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {
            "volume_id": handle["volume_id"],
            "size_gib": handle.get("size_gib"),
            "snapshot_id": handle["snapshot_id"],
            "availability_zone": handle["availability_zone"],
        }

    # --- undo -------------------------------------------------------------------------------------

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        done = self._advance_undo(ctx, handle)
        return {"volume_id": handle["volume_id"], "gone": done}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        if self._advance_undo(ctx, handle):
            return Poll.finished(f"volume {handle['volume_id']} deleted")
        volume = self._volume(ctx, handle["volume_id"])
        state = volume.get("State") if volume else "deleted"
        attached = [a.get("State") for a in (volume or {}).get("Attachments", [])]
        return Poll.running(
            f"volume {handle['volume_id']} is {state}" + (f" ({', '.join(attached)})" if attached else "")
        )

    def _advance_undo(self, ctx: StepContext, handle: Handle) -> bool:
        """One step towards deletion: detach while attached, delete once available; True when gone.

        Idempotent, so a repeated undo (throttling, a second cleanup) is harmless.
        """
        client = ctx.client("ec2")
        volume_id = handle["volume_id"]
        volume = self._volume(ctx, volume_id)
        if volume is None or volume.get("State") == "deleted":
            return True
        attachments = volume.get("Attachments", [])
        if attachments:
            for attachment in attachments:
                if attachment.get("State") in ("attached", "attaching"):
                    try:
                        client.detach_volume(
                            VolumeId=volume_id,
                            InstanceId=attachment["InstanceId"],
                            Device=attachment.get("Device"),
                        )
                    except Exception as exc:
                        if not (
                            is_not_found(exc)
                            or error_code(exc) in ("IncorrectState", "InvalidAttachment.NotFound")
                        ):
                            raise
            return False
        if volume.get("State") in ("available", "error"):
            try:
                client.delete_volume(VolumeId=volume_id)
            except Exception as exc:
                if is_not_found(exc):
                    return True
                if error_code(exc) not in ("IncorrectState", "VolumeInUse"):
                    raise
        return False
