"""The seeder of ``aws.autoscaling.set_capacity``: the group the step scales, and its launch template."""

from __future__ import annotations

from drplan.actions.autoscaling.capacity import describe_group
from drplan.aws import error_code
from drplan.sandbox.seeders.context import SeedContext
from drplan.sandbox.seeders.ec2 import IMAGE_ID


def seed_group(ctx: SeedContext) -> None:
    """A launch template and the group, empty (capacity 0) with room up to the plan's size."""
    name = ctx.params.get("group")
    if not name or "${" in str(name) or describe_group(ctx, str(name)) is not None:
        return
    template = f"{name}-template"
    ec2 = ctx.client("ec2")
    try:
        ec2.describe_launch_templates(LaunchTemplateNames=[template])
    except Exception as exc:
        if "NotFound" not in (error_code(exc) or ""):
            raise
        ec2.create_launch_template(
            LaunchTemplateName=template,
            LaunchTemplateData={"ImageId": IMAGE_ID, "InstanceType": "t3.micro"},
        )
    sizes = [v for v in (ctx.params.get("max"), ctx.params.get("desired")) if isinstance(v, int)]
    ctx.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=str(name),
        LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
        MinSize=0,
        MaxSize=max([*sizes, 1]) if sizes else 10,
        DesiredCapacity=0,
        AvailabilityZones=[f"{ctx.region}a"],
    )
