"""Amazon RDS: promote a read replica (a cross-Region one, in a Region failover) to a standalone DB
instance."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions._aws import unresolved
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext
from drplan.actions.rds.lookup import BROKEN, describe_instance, state_fault
from drplan.aws import error_message
from drplan.errors import StepFailed
from drplan.resources import Target

_OUTPUTS = {
    "endpoint": "Address of the promoted DB instance",
    "port": "Port of the promoted DB instance",
    "arn": "ARN of the promoted DB instance",
    "instance_id": "Identifier of the promoted DB instance",
}


def replica_source(db: Mapping[str, Any]) -> str | None:
    """What the instance replicates from (an identifier, or an ARN for another Region), or None
    for a standalone instance."""
    source = db.get("ReadReplicaSourceDBInstanceIdentifier")
    return str(source) if source else None


def same_instance(named: str, source: str) -> bool:
    """Does ``named`` (identifier or ARN, from the plan) name ``source`` (as RDS reports it)? An
    identifier matches an ARN that ends in it; RDS identifiers ignore case."""
    a, b = named.lower(), source.lower()
    if a == b:
        return True
    if a.startswith("arn:") != b.startswith("arn:"):
        arn, bare = (a, b) if a.startswith("arn:") else (b, a)
        return arn.endswith(f":db:{bare}")
    return False


class PromoteReadReplica(Action):
    name = "aws.rds.promote_read_replica"
    family = "database"
    summary = "Promote an RDS read replica to a standalone DB instance (cannot be undone)"
    outputs = _OUTPUTS
    iam = ("rds:DescribeDBInstances", "rds:PromoteReadReplica")
    default_estimate = timedelta(minutes=10)
    # A drill never promotes a production replica: a promotion ends its replication for good.
    # With `drill_with` naming a drill replica, a drill promotes that one instead.
    drill = "skip"
    undoable = False

    def describe(self, params: Mapping[str, Any]) -> str:
        source = params.get("source_instance")
        of = f" (a replica of {source})" if source else ""
        return f"Promote read replica {params.get('instance')}{of} to a standalone DB instance"

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        return (Target("rds:db", str(params["instance"]), "instance", creates=False),)

    def sources(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        source = params.get("source_instance")
        if not source or str(source).startswith("arn:"):
            return ()
        return (Target("rds:db", str(source), "source_instance", creates=False),)

    def _check(self, ctx: StepContext, db: Mapping[str, Any] | None) -> str:
        """The replica's source, or StepFailed saying why it cannot be promoted."""
        name = ctx.params["instance"]
        if db is None:
            raise StepFailed(ctx.step.key, f"DB instance {name} does not exist")
        source = replica_source(db)
        if source is None:
            raise StepFailed(
                ctx.step.key,
                f"DB instance {name} is not a read replica (promoted already, or a primary); "
                "nothing to promote",
            )
        wanted = ctx.params.get("source_instance")
        if wanted and not unresolved(wanted) and not same_instance(str(wanted), source):
            raise StepFailed(
                ctx.step.key,
                f"DB instance {name} is a replica of {source}, not of {wanted}; not promoting it",
            )
        return source

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        name = ctx.params["instance"]
        if unresolved(name):
            return [PreflightResult("ok", f"the replica comes from {name}; checked when the step runs")]
        db = describe_instance(ctx, str(name))
        try:
            source = self._check(ctx, db)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason, {"instance": name})]
        assert db is not None
        status = db.get("DBInstanceStatus")
        facts = {"instance": name, "source": source, "status": status}
        if status != "available":
            return [
                PreflightResult(
                    "warning",
                    f"read replica {name} of {source} is {status}; AWS promotes available ones",
                    facts,
                )
            ]
        return [PreflightResult("ok", f"would promote read replica {name} of {source}", facts)]

    def start(self, ctx: StepContext) -> Handle:
        name = str(ctx.params["instance"])
        db = describe_instance(ctx, name)
        source = self._check(ctx, db)
        assert db is not None
        kwargs: dict[str, Any] = {"DBInstanceIdentifier": name}
        if ctx.params.get("backup_retention_days") is not None:
            kwargs["BackupRetentionPeriod"] = int(ctx.params["backup_retention_days"])
        if ctx.params.get("backup_window"):
            kwargs["PreferredBackupWindow"] = str(ctx.params["backup_window"])
        try:
            ctx.client("rds").promote_read_replica(**kwargs)
        except Exception as exc:
            if state_fault(exc):
                raise StepFailed(
                    ctx.step.key, f"RDS refused to promote {name} now: {error_message(exc)}"
                ) from exc
            raise
        # Neither a new resource nor one drplan may delete: the handle only says what was promoted.
        return {"instance": db["DBInstanceIdentifier"], "arn": db.get("DBInstanceArn"), "source": source}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        name = handle["instance"]
        db = describe_instance(ctx, name)
        if db is None:
            return Poll.failure(f"DB instance {name} disappeared during its promotion")
        status = db.get("DBInstanceStatus")
        if status in BROKEN:
            return Poll.failure(f"DB instance {name} is {status}")
        if replica_source(db) is not None:
            return Poll.running(f"{name} is {status}, still a replica of {handle['source']}")
        if status != "available":
            return Poll.running(f"{name} is standalone, {status}")
        return Poll.finished(f"{name} is a standalone DB instance, available")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        db = describe_instance(ctx, handle["instance"])
        if db is None:
            raise StepFailed(ctx.step.key, f"DB instance {handle['instance']} disappeared")
        endpoint = db.get("Endpoint") or {}
        return {
            "endpoint": endpoint.get("Address"),
            "port": endpoint.get("Port"),
            "arn": db.get("DBInstanceArn"),
            "instance_id": db["DBInstanceIdentifier"],
        }
