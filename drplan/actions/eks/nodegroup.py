"""Amazon EKS: set the sizes of a managed node group (scale the cluster's nodes up in the recovery
Region) and wait until the node group is ACTIVE with them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions._aws import unresolved, with_sizes
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext
from drplan.aws import error_code, error_message, is_not_found
from drplan.errors import StepFailed
from drplan.resources import Target

_KEYS = (("min", "minSize"), ("max", "maxSize"), ("desired", "desiredSize"))
#: Node group states that waiting does not mend.
_BROKEN = frozenset({"CREATE_FAILED", "DELETING", "DELETE_FAILED"})


def sizes(nodegroup: Mapping[str, Any]) -> dict[str, int]:
    config = nodegroup.get("scalingConfig") or {}
    return {key: int(config.get(key, 0)) for _, key in _KEYS}


def text(config: Mapping[str, Any]) -> str:
    return f"desired {config['desiredSize']} (min {config['minSize']}, max {config['maxSize']})"


def describe_nodegroup(ctx: StepContext, cluster: str, name: str) -> dict[str, Any] | None:
    """The node group, or None when it (or its cluster) does not exist."""
    try:
        found = ctx.client("eks").describe_nodegroup(clusterName=cluster, nodegroupName=name)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    return dict(found["nodegroup"])


def health(nodegroup: Mapping[str, Any]) -> str:
    """The node group's first health issue, as a note."""
    issues = (nodegroup.get("health") or {}).get("issues") or []
    if not issues:
        return ""
    first = issues[0]
    return f"; health: {first.get('code')}: {first.get('message', '')}"


class ScaleNodegroup(Action):
    name = "aws.eks.scale_nodegroup"
    family = "compute"
    summary = "Set an EKS managed node group's sizes and wait until it is ACTIVE with them; undo restores the previous sizes"
    outputs = {
        "cluster": "EKS cluster name",
        "nodegroup": "Node group name",
        "desired": "Desired size set",
    }
    iam = ("eks:DescribeNodegroup", "eks:UpdateNodegroupConfig", "eks:DescribeUpdate")
    default_estimate = timedelta(minutes=10)
    drill = "skip"  # drills never resize production node groups; `drill_with` may name a drill one
    undoable = True

    def describe(self, params: Mapping[str, Any]) -> str:
        bounds = [f"{p} {params[p]}" for p in ("min", "max") if p in params]
        extra = f" ({', '.join(bounds)})" if bounds else ""
        return (
            f"Scale EKS node group {params.get('nodegroup')} of cluster {params.get('cluster')} "
            f"to {params.get('desired')} nodes{extra}"
        )

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        extra = {"cluster": str(params["cluster"])}
        return (Target("eks:nodegroup", str(params["nodegroup"]), "nodegroup", creates=False, extra=extra),)

    def _target(self, ctx: StepContext, current: Mapping[str, int]) -> dict[str, int]:
        """The sizes after the change (min/max unchanged when not given), or StepFailed."""
        target = with_sizes(ctx, current, _KEYS)
        name = ctx.params["nodegroup"]
        if target["maxSize"] < 1:
            problem = "the max size must be at least 1"
        elif target["minSize"] > target["maxSize"]:
            problem = f"min size {target['minSize']} is above max size {target['maxSize']}"
        elif target["desiredSize"] > target["maxSize"]:
            problem = f"desired size {target['desiredSize']} is above the max size {target['maxSize']}"
            if ctx.params.get("max") is None:
                problem += " (give `max` to raise it)"
        elif target["desiredSize"] < target["minSize"]:
            problem = f"desired size {target['desiredSize']} is below the min size {target['minSize']}"
            if ctx.params.get("min") is None:
                problem += " (give `min` to lower it)"
        else:
            return target
        raise StepFailed(ctx.step.key, f"node group {name}: {problem}; the node group was left unchanged")

    def _nodegroup(self, ctx: StepContext) -> dict[str, Any]:
        cluster, name = str(ctx.params["cluster"]), str(ctx.params["nodegroup"])
        nodegroup = describe_nodegroup(ctx, cluster, name)
        if nodegroup is None:
            raise StepFailed(ctx.step.key, f"EKS node group {name} does not exist in cluster {cluster}")
        return nodegroup

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        cluster, name = ctx.params["cluster"], ctx.params["nodegroup"]
        if unresolved(cluster) or unresolved(name):
            return [
                PreflightResult(
                    "ok", "the node group comes from an earlier step's output; checked when the step runs"
                )
            ]
        try:
            nodegroup = self._nodegroup(ctx)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason, {"cluster": cluster, "nodegroup": name})]
        current = sizes(nodegroup)
        status = nodegroup.get("status")
        facts: dict[str, Any] = {"cluster": cluster, "nodegroup": name, "current": current, "status": status}
        wanted = {key: ctx.params[p] for p, key in _KEYS if ctx.params.get(p) is not None}
        if any(unresolved(v) for v in wanted.values()):
            facts["target"] = wanted
            return [
                PreflightResult(
                    "ok", f"node group {name} is at {text(current)}; sizes come from references", facts
                )
            ]
        try:
            target = self._target(ctx, current)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason, facts)]
        facts["target"] = target
        message = f"node group {name} is at {text(current)}; would set {text(target)}"
        if status not in ("ACTIVE", "DEGRADED"):
            return [
                PreflightResult(
                    "warning", f"{message}, but it is {status} (EKS changes ACTIVE node groups)", facts
                )
            ]
        return [PreflightResult("ok", message, facts)]

    def _update(
        self, ctx: StepContext, cluster: str, name: str, config: Mapping[str, int], token: str
    ) -> str | None:
        """Ask EKS for the sizes; the update's id (None when EKS says the node group is busy)."""
        try:
            update = ctx.client("eks").update_nodegroup_config(
                clusterName=cluster, nodegroupName=name, scalingConfig=dict(config), clientRequestToken=token
            )
        except Exception as exc:
            code = error_code(exc)
            if code == "ResourceInUseException":
                return None
            if code in ("InvalidParameterException", "InvalidRequestException"):
                raise StepFailed(ctx.step.key, f"EKS refused to resize {name}: {error_message(exc)}") from exc
            raise
        return str(update["update"]["id"])

    def start(self, ctx: StepContext) -> Handle:
        nodegroup = self._nodegroup(ctx)
        cluster, name = str(ctx.params["cluster"]), str(ctx.params["nodegroup"])
        previous = ctx.first_seen(f"previous sizes {cluster}/{name}", sizes(nodegroup))
        target = self._target(ctx, sizes(nodegroup))
        update_id = self._update(ctx, cluster, name, target, ctx.client_token)
        if update_id is None:
            raise StepFailed(
                ctx.step.key,
                f"node group {name} is {nodegroup.get('status')} with another update in progress; try again later",
            )
        return {
            "cluster": cluster,
            "nodegroup": name,
            "previous": previous,
            "target": target,
            "update_id": update_id,
            "wait": bool(ctx.params.get("wait", True)),
        }

    def _converged(
        self, ctx: StepContext, handle: Handle, wanted: Mapping[str, int], update_id: str | None
    ) -> Poll:
        """Done when the node group is ACTIVE with ``wanted``; failed when the update failed."""
        name = handle["nodegroup"]
        nodegroup = describe_nodegroup(ctx, handle["cluster"], name)
        if nodegroup is None:
            return Poll.failure(f"EKS node group {name} no longer exists")
        status = nodegroup.get("status")
        if status in _BROKEN:
            return Poll.failure(f"EKS node group {name} is {status}")
        now = sizes(nodegroup)
        if status == "ACTIVE" and now == dict(wanted):
            return Poll.finished(f"node group {name} is ACTIVE at {text(now)}")
        if update_id and status != "ACTIVE":
            update = ctx.client("eks").describe_update(
                name=handle["cluster"], updateId=update_id, nodegroupName=name
            )["update"]
            if update.get("status") in ("Failed", "Cancelled"):
                errors = "; ".join(
                    f"{e.get('errorCode')}: {e.get('errorMessage', '')}" for e in update.get("errors", [])
                )
                return Poll.failure(
                    f"the update of node group {name} {update['status'].lower()}"
                    + (f": {errors}" if errors else "")
                )
        return Poll.running(
            f"node group {name} is {status} at {text(now)}, wants {text(wanted)}{health(nodegroup)}"
        )

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        if not handle.get("wait", True):
            return Poll.finished(
                f"node group {handle['nodegroup']} set to {text(handle['target'])} (not waiting)"
            )
        return self._converged(ctx, handle, handle["target"], handle.get("update_id"))

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {
            "cluster": handle["cluster"],
            "nodegroup": handle["nodegroup"],
            "desired": handle["target"]["desiredSize"],
        }

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        return self._restore(ctx, handle, {})

    def _restore(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Handle:
        """Ask for the previous sizes unless asked already (EKS refuses while an update runs: asked
        again at the next look)."""
        if undo_handle.get("update_id"):
            return undo_handle
        nodegroup = describe_nodegroup(ctx, handle["cluster"], handle["nodegroup"])
        if nodegroup is None:
            return {"gone": True}
        if sizes(nodegroup) == handle["previous"]:
            return {"update_id": None, "unchanged": True}
        token = f"{ctx.client_token[:59]}-undo"
        update_id = self._update(ctx, handle["cluster"], handle["nodegroup"], handle["previous"], token)
        return {"update_id": update_id} if update_id else {}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        if undo_handle.get("gone"):
            return Poll.finished(f"node group {handle['nodegroup']} no longer exists")
        if not undo_handle.get("update_id") and not undo_handle.get("unchanged"):
            undo_handle.update(self._restore(ctx, handle, undo_handle))
            if undo_handle.get("gone"):
                return Poll.finished(f"node group {handle['nodegroup']} no longer exists")
        poll = self._converged(ctx, handle, handle["previous"], undo_handle.get("update_id"))
        if poll.failed and "no longer exists" in poll.failed:
            return Poll.finished(poll.failed)
        return poll
