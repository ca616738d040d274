"""Amazon EC2 Auto Scaling: set a group's capacity (scale the application tier back up)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.actions._aws import as_utc, with_sizes
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext
from drplan.aws import error_code
from drplan.errors import StepFailed
from drplan.resources import Target

_KEYS = (("min", "MinSize"), ("max", "MaxSize"), ("desired", "DesiredCapacity"))


def _capacity(group: Mapping[str, Any]) -> dict[str, int]:
    return {
        "MinSize": int(group["MinSize"]),
        "MaxSize": int(group["MaxSize"]),
        "DesiredCapacity": int(group["DesiredCapacity"]),
    }


def _text(capacity: Mapping[str, Any]) -> str:
    return f"desired {capacity['DesiredCapacity']} (min {capacity['MinSize']}, max {capacity['MaxSize']})"


def _in_service(group: Mapping[str, Any]) -> int:
    return sum(
        1
        for i in group.get("Instances", [])
        if i.get("LifecycleState") == "InService" and i.get("HealthStatus", "Healthy") == "Healthy"
    )


def describe_group(ctx: StepContext, name: str) -> dict[str, Any] | None:
    """The Auto Scaling group ``name``, or None when it does not exist."""
    groups = ctx.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    found = [g for g in groups.get("AutoScalingGroups", []) if g["AutoScalingGroupName"] == name]
    return found[0] if found else None


class SetCapacity(Action):
    name = "aws.autoscaling.set_capacity"
    family = "compute"
    summary = "Set an Auto Scaling group's capacity; undo restores the previous capacity"
    outputs = {"group": "Auto Scaling group name", "desired": "Desired capacity set"}
    iam = (
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:DescribeScalingActivities",
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

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        return (Target("autoscaling:group", str(params["group"]), "group", creates=False),)

    def _target(self, ctx: StepContext, current: Mapping[str, int]) -> dict[str, int]:
        """The capacity after the change (min/max unchanged when not given), or StepFailed."""
        target = with_sizes(ctx, current, _KEYS)
        group = ctx.params["group"]
        if target["MinSize"] > target["MaxSize"]:
            problem = f"min size {target['MinSize']} is above max size {target['MaxSize']}"
        elif target["DesiredCapacity"] > target["MaxSize"]:
            problem = (
                f"desired capacity {target['DesiredCapacity']} is above the max size {target['MaxSize']}"
            )
            if ctx.params.get("max") is None:
                problem += " (give `max` to raise it)"
        elif target["DesiredCapacity"] < target["MinSize"]:
            problem = (
                f"desired capacity {target['DesiredCapacity']} is below the min size {target['MinSize']}"
            )
            if ctx.params.get("min") is None:
                problem += " (give `min` to lower it)"
        else:
            return target
        raise StepFailed(ctx.step.key, f"group {group}: {problem}; the group was left unchanged")

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        name = ctx.params["group"]
        if isinstance(name, str) and "${" in name:
            return [PreflightResult("ok", f"the group comes from {name}; checked when the step runs")]
        group = describe_group(ctx, name)
        if group is None:
            return [PreflightResult("error", f"Auto Scaling group {name} does not exist", {"group": name})]
        current = _capacity(group)
        facts: dict[str, Any] = {"group": name, "current": current, "in_service": _in_service(group)}
        wanted = {key: ctx.params[param] for param, key in _KEYS if ctx.params.get(param) is not None}
        if any(isinstance(v, str) and "${" in v for v in wanted.values()):
            facts["target"] = wanted
            shown = ", ".join(f"{k} {v}" for k, v in wanted.items())
            return [PreflightResult("ok", f"group {name} is at {_text(current)}; would set {shown}", facts)]
        try:
            target = self._target(ctx, current)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason, facts)]
        facts["target"] = target
        return [
            PreflightResult("ok", f"group {name} is at {_text(current)}; would set {_text(target)}", facts)
        ]

    def start(self, ctx: StepContext) -> Handle:
        name = str(ctx.params["group"])
        group = describe_group(ctx, name)
        if group is None:
            raise StepFailed(ctx.step.key, f"Auto Scaling group {name} does not exist")
        previous = ctx.first_seen(f"previous capacity {name}", _capacity(group))
        target = self._target(ctx, _capacity(group))
        given = {key for param, key in _KEYS if ctx.params.get(param) is not None}
        self._update(ctx, name, {k: v for k, v in target.items() if k in given})
        return {
            "group": name,
            "group_arn": group.get("AutoScalingGroupARN"),
            "previous": previous,
            "target": target,
            "wait": bool(ctx.params.get("wait_in_service", True)),
            "since": datetime.now(timezone.utc).isoformat(),
        }

    def _update(self, ctx: StepContext, name: str, capacity: Mapping[str, int]) -> None:
        try:
            ctx.client("autoscaling").update_auto_scaling_group(AutoScalingGroupName=name, **capacity)
        except Exception as exc:
            if error_code(exc) == "ValidationError":
                message = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
                raise StepFailed(
                    ctx.step.key, f"Auto Scaling refused the change of {name}: {message}"
                ) from exc
            raise

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        desired = handle["target"]["DesiredCapacity"]
        if not handle.get("wait", True):
            return Poll.finished(
                f"group {handle['group']} set to {_text(handle['target'])} (not waiting for instances)"
            )
        group = describe_group(ctx, handle["group"])
        if group is None:
            return Poll.failure(f"Auto Scaling group {handle['group']} disappeared")
        ready = _in_service(group)
        if ready >= desired:
            return Poll.finished(f"{ready} of {desired} instances InService in {handle['group']}")
        return Poll.running(f"{ready} of {desired} instances InService{self._last_failure(ctx, handle)}")

    def _last_failure(self, ctx: StepContext, handle: Handle) -> str:
        """Why instances do not come up, when the newest scaling activity since the change failed."""
        activities = (
            ctx.client("autoscaling")
            .describe_scaling_activities(AutoScalingGroupName=handle["group"], MaxRecords=5)
            .get("Activities", [])
        )
        since = datetime.fromisoformat(handle["since"])
        recent = [a for a in activities if a.get("StartTime") and as_utc(a["StartTime"]) >= since]
        if recent and recent[0].get("StatusCode") in ("Failed", "Cancelled"):
            last = recent[0]
            return f"; last scaling activity {last['StatusCode'].lower()}: {last.get('StatusMessage', '')}"
        return ""

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {"group": handle["group"], "desired": handle["target"]["DesiredCapacity"]}

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        if describe_group(ctx, handle["group"]) is None:
            return {"gone": True}
        try:
            self._update(ctx, handle["group"], handle["previous"])
        except StepFailed as exc:
            if "not found" in exc.reason:
                return {"gone": True}
            raise
        return {"gone": False}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        group = describe_group(ctx, handle["group"])
        if group is None:
            return Poll.finished(f"group {handle['group']} no longer exists")
        now = _capacity(group)
        if now == handle["previous"]:
            return Poll.finished(f"group {handle['group']} is back at {_text(now)}")
        return Poll.running(
            f"group {handle['group']} is at {_text(now)}, restoring {_text(handle['previous'])}"
        )
