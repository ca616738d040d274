"""Amazon EC2 / EBS: create volumes from snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions.base import Action, suffixed


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

    def isolate(self, params: Mapping[str, Any], suffix: str, *, redirected: bool) -> Mapping[str, Any] | None:
        # A drill never attaches to a production instance; drill_with may name a drill instance.
        isolated = {**params, "name": suffixed(str(params["name"]), suffix, limit=255)}
        if not redirected:
            isolated.pop("attach", None)
        return isolated


ACTIONS = (VolumeFromSnapshot,)
