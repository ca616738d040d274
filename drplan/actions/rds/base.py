"""Base classes of the RDS actions: what all of them share, and the whole run of a restore that
makes one DB instance (restore call, wait, outputs, undo), used by the snapshot and the
point-in-time restores."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions._aws import add_resource, aws_tags, target_free, unresolved
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext, isolated_name
from drplan.actions.rds.lookup import (
    ALREADY_EXISTS,
    BROKEN,
    describe_instance,
    ours,
    remove_instance,
)
from drplan.aws import error_code
from drplan.errors import StepFailed
from drplan.resources import Resource, Target


def port_option(ctx: StepContext) -> dict[str, int]:
    value = ctx.params.get("port")
    if value is None:
        return {}
    try:
        return {"Port": int(value)}
    except (TypeError, ValueError):
        raise StepFailed(ctx.step.key, f"port must be a number, got {value!r}") from None


class RdsAction(Action):
    """What every RDS action shares: its family, and drills that rename ``target``."""

    family = "database"
    drill = "isolate"
    undoable = True
    default_estimate = timedelta(minutes=30)

    def isolate(
        self, params: Mapping[str, Any], suffix: str, *, redirected: bool
    ) -> Mapping[str, Any] | None:
        return {**params, "target": isolated_name(params["target"], suffix, "rds:db")}


class InstanceRestore(RdsAction):
    """Shared by the two restores that make one DB instance."""

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        return (Target("rds:db", str(params["target"]), "target"),)

    def sources(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        source = params.get("source_instance")
        return (Target("rds:db", str(source), "source_instance", creates=False),) if source else ()

    def _options(self, ctx: StepContext) -> dict[str, Any]:
        """Where and how the restored instance runs (the keys both restore calls accept)."""
        p = ctx.params
        kwargs: dict[str, Any] = {"Tags": aws_tags(ctx), **port_option(ctx)}
        if p.get("instance_class"):
            kwargs["DBInstanceClass"] = p["instance_class"]
        if p.get("subnet_group"):
            kwargs["DBSubnetGroupName"] = p["subnet_group"]
        if p.get("security_groups"):
            kwargs["VpcSecurityGroupIds"] = list(p["security_groups"])
        if p.get("multi_az") is not None:
            kwargs["MultiAZ"] = bool(p["multi_az"])
        if p.get("parameter_group"):
            kwargs["DBParameterGroupName"] = p["parameter_group"]
        return kwargs

    def _target_finding(self, ctx: StepContext) -> list[PreflightResult]:
        target = ctx.params["target"]
        if unresolved(target):
            return []
        return [target_free(describe_instance(ctx, target) is not None, "DB instance", target)]

    def _restore(self, ctx: StepContext, operation: str, kwargs: Mapping[str, Any], handle: Handle) -> Handle:
        target = str(ctx.params["target"])
        try:
            db = getattr(ctx.client("rds"), operation)(**kwargs)["DBInstance"]
        except Exception as exc:
            if error_code(exc) not in ALREADY_EXISTS:
                raise
            db = describe_instance(ctx, target)
            if db is None or not ours(ctx, db.get("TagList")):
                raise StepFailed(
                    ctx.step.key, f"DB instance {target} already exists; refusing to overwrite it"
                ) from exc
            ctx.note(f"DB instance {target} was already created by this step; using it")
        handle.update({"instance": db["DBInstanceIdentifier"], "arn": db.get("DBInstanceArn")})
        add_resource(
            ctx, handle, Resource("rds:db", db["DBInstanceIdentifier"], ctx.region, db.get("DBInstanceArn"))
        )
        return handle

    def adopt(self, ctx: StepContext, found: list[Resource]) -> Handle | None:
        mine = [r for r in found if r.kind == "rds:db"]
        if not mine:
            return None
        db = describe_instance(ctx, mine[0].id)
        if db is None:
            return None
        handle: Handle = {
            "instance": db["DBInstanceIdentifier"],
            "arn": db.get("DBInstanceArn"),
            "adopted": True,
        }
        add_resource(ctx, handle, Resource("rds:db", handle["instance"], ctx.region, handle["arn"]))
        return handle

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        db = describe_instance(ctx, handle["instance"])
        if db is None:
            return Poll.running("waiting for the DB instance to appear")
        status = db.get("DBInstanceStatus")
        if status == "available":
            return Poll.finished(
                f"DB instance {handle['instance']} is available ({db.get('DBInstanceClass')})"
            )
        if status in BROKEN:
            return Poll.failure(f"DB instance {handle['instance']} is {status}")
        return Poll.running(f"restoring ({status})")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        db = describe_instance(ctx, handle["instance"])
        if db is None:
            raise StepFailed(ctx.step.key, f"DB instance {handle['instance']} disappeared")
        endpoint = db.get("Endpoint") or {}
        out = {
            "endpoint": endpoint.get("Address"),
            "port": endpoint.get("Port"),
            "arn": db.get("DBInstanceArn"),
            "instance_id": db["DBInstanceIdentifier"],
        }
        if "snapshot_id" in handle:
            out["snapshot_id"] = handle["snapshot_id"]
        return out

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        if "instance" not in handle:
            return {}
        remove_instance(ctx, handle["instance"])
        return {"instance": handle["instance"]}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        if "instance" not in handle:
            return Poll.finished("nothing was created")
        status = remove_instance(ctx, handle["instance"])
        if status is None:
            return Poll.finished(f"DB instance {handle['instance']} deleted")
        return Poll.running(f"DB instance {handle['instance']} is {status}")
