"""The seeder of ``aws.ec2.volume_from_snapshot``: a tagged snapshot to restore, and the instance
the plan attaches the volume to."""

from __future__ import annotations

from collections.abc import Mapping

from drplan.actions._aws import unresolved
from drplan.actions.ec2.volume import pick_snapshot
from drplan.errors import StepFailed
from drplan.sandbox.ids import INSTANCE_IDS
from drplan.sandbox.seeders.context import SeedContext

#: Size of a seeded source volume.
SIZE_GIB = 20
#: The image seeded instances boot (moto launches it without registering an AMI).
IMAGE_ID = "ami-12345678"


def seed_volume_snapshot(ctx: SeedContext) -> None:
    """A 20 GiB volume tagged with ``snapshot_tags`` and a completed snapshot of it with the same tags.

    A plan that names a fixed ``snapshot`` id gets nothing: the emulator picks its own ids, so the
    sandbox cannot create a snapshot with that id (use ``drill_with: {snapshot: latest, ...}``).
    """
    seed_instance(ctx)
    if ctx.params.get("snapshot", "latest") != "latest":
        return
    tags: Mapping[str, str] = ctx.params.get("snapshot_tags", {})
    if not tags:
        return
    client = ctx.client("ec2")
    try:
        pick_snapshot(ctx)
        return  # a snapshot to restore is already there
    except StepFailed:
        pass
    tag_list = [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())]
    filters = [{"Name": f"tag:{k}", "Values": [str(v)]} for k, v in sorted(tags.items())]
    volumes = [v for v in client.describe_volumes(Filters=filters)["Volumes"] if v.get("State") != "deleting"]
    if volumes:
        volume_id = volumes[0]["VolumeId"]
    else:
        zone = ctx.params.get("availability_zone")
        if not zone or unresolved(zone):
            zone = f"{ctx.region}a"
        name = ctx.params.get("name", "volume")
        source_name = name if unresolved(name) else f"{name}-source"
        volume_id = client.create_volume(
            AvailabilityZone=zone,
            Size=SIZE_GIB,
            VolumeType="gp3",
            TagSpecifications=[
                {"ResourceType": "volume", "Tags": [*tag_list, {"Key": "Name", "Value": source_name}]}
            ],
        )["VolumeId"]
    client.create_snapshot(
        VolumeId=volume_id,
        Description=f"drplan sandbox snapshot for {ctx.step.key}",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list}],
    )


def seed_instance(ctx: SeedContext) -> None:
    """The instance the plan attaches to. The emulator picks its own instance ids, so the plan's id
    is mapped to the new one in ``ctx.seed_state[INSTANCE_IDS]`` (as Route 53 zone ids are), and the
    sandbox's sessions rewrite it in every call (:mod:`drplan.sandbox.ids`)."""
    attach = ctx.params.get("attach")
    mapping = ctx.seed_state.setdefault(INSTANCE_IDS, {})
    if not attach or unresolved(attach.get("instance_id")) or attach["instance_id"] in mapping:
        return
    zone = ctx.params.get("availability_zone")
    placement = {"AvailabilityZone": zone} if zone and not unresolved(zone) else {}
    instance = ctx.client("ec2").run_instances(
        ImageId=IMAGE_ID, InstanceType="t3.micro", MinCount=1, MaxCount=1, Placement=placement
    )["Instances"][0]
    mapping[attach["instance_id"]] = instance["InstanceId"]
