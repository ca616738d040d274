"""Amazon EC2 Auto Scaling: set a group's capacity (scale the application tier back up)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions.base import Action


class SetCapacity(Action):
    name = "aws.autoscaling.set_capacity"
    family = "compute"
    summary = "Set an Auto Scaling group's capacity; undo restores the previous capacity"
    outputs = {"group": "Auto Scaling group name", "desired": "Desired capacity set"}
    iam = (
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:UpdateAutoScalingGroup",
    )
    default_estimate = timedelta(minutes=5)
    drill = "skip"  # drills never modify existing groups
    undoable = True

    def describe(self, params: Mapping[str, Any]) -> str:
        bounds = []
        if "min" in params:
            bounds.append(f"min {params['min']}")
        if "max" in params:
            bounds.append(f"max {params['max']}")
        extra = f" ({', '.join(bounds)})" if bounds else ""
        return f"Scale Auto Scaling group {params.get('group')} to {params.get('desired')} instances{extra}"


ACTIONS = (SetCapacity,)
