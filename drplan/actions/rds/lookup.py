"""Finding RDS resources for the RDS actions: describe and delete DB instances and clusters
(tolerating "not found"), and choose the DB snapshot, cluster snapshot or point in time to restore."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drplan import removal
from drplan.actions._aws import as_utc, freshness_result, is_not_found, newest, unresolved
from drplan.actions.base import Handle, Poll, PreflightResult, StepContext
from drplan.aws import error_code
from drplan.errors import StepFailed

#: Statuses a restored instance or cluster does not recover from by waiting.
BROKEN = frozenset(
    {
        "failed",
        "restore-error",
        "incompatible-restore",
        "incompatible-parameters",
        "incompatible-network",
        "incompatible-option-group",
        "incompatible-credentials",
        "inaccessible-encryption-credentials",
        "migration-failed",
        "storage-full",
        "deleting",
        "stopped",
        "stopping",
    }
)
#: Engines of Multi-AZ DB clusters, which come with their own instances.
MULTI_AZ_ENGINES = ("mysql", "postgres")
ALREADY_EXISTS = ("DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault", "DBClusterAlreadyExistsFault")


@dataclass(frozen=True)
class SnapshotKind:
    """The names that differ between DB snapshots and DB cluster snapshots."""

    what: str
    describe: str  # client method
    items: str  # list key of the response
    key: str  # identifier, in requests and responses
    arn_key: str
    arn_part: str  # ARN resource type
    source_key: str  # DB instance / cluster the snapshot was taken of
    source_param: str
    source_what: str


DB_SNAPSHOT = SnapshotKind(
    what="DB snapshot",
    describe="describe_db_snapshots",
    items="DBSnapshots",
    key="DBSnapshotIdentifier",
    arn_key="DBSnapshotArn",
    arn_part=":snapshot:",
    source_key="DBInstanceIdentifier",
    source_param="source_instance",
    source_what="DB instance",
)
CLUSTER_SNAPSHOT = SnapshotKind(
    what="DB cluster snapshot",
    describe="describe_db_cluster_snapshots",
    items="DBClusterSnapshots",
    key="DBClusterSnapshotIdentifier",
    arn_key="DBClusterSnapshotArn",
    arn_part=":cluster-snapshot:",
    source_key="DBClusterIdentifier",
    source_param="source_cluster",
    source_what="DB cluster",
)


def state_fault(exc: BaseException) -> bool:
    return (error_code(exc) or "").startswith(("InvalidDBInstanceState", "InvalidDBClusterState"))


def ours(ctx: StepContext, tags: Any) -> bool:
    """Tagged by this very step of this run (a create whose response was lost, then retried)."""
    found = {t.get("Key"): t.get("Value") for t in tags or []}
    return found.get("drplan:run-id") == ctx.run_id and found.get("drplan:step") == ctx.step.key


def snapshot_time(snapshot: Mapping[str, Any]) -> datetime | None:
    """When the data was captured: a copied snapshot keeps its original time (the real RPO)."""
    when = snapshot.get("OriginalSnapshotCreateTime") or snapshot.get("SnapshotCreateTime")
    return when if isinstance(when, datetime) else None


# --- describe and delete, tolerating "not found" --------------------------------------------------


def describe_instance(ctx: StepContext, identifier: str) -> dict[str, Any] | None:
    return removal.describe_db_instance(ctx.client, identifier)


def describe_cluster(ctx: StepContext, identifier: str) -> dict[str, Any] | None:
    return removal.describe_db_cluster(ctx.client, identifier)


def instances_named(ctx: StepContext, ids: list[str]) -> list[dict[str, Any]]:
    """Those of the DB instances ``ids`` that exist."""
    if not ids:
        return []
    filters = [{"Name": "db-instance-id", "Values": ids}]
    return list(ctx.client("rds").describe_db_instances(Filters=filters).get("DBInstances", []))


def remove_instance(ctx: StepContext, identifier: str) -> str | None:
    """One round of deleting the instance (see :mod:`drplan.removal`): None once it is gone."""
    return removal.remove_db_instance(ctx.client, identifier)


def teardown_cluster(ctx: StepContext, handle: Handle) -> Poll:
    """One round of deleting: the instances drplan created, then the cluster once AWS takes it
    (it refuses while members are not deleting). Repeated until describe says all are gone."""
    name = handle["cluster"]
    going = {i: s for i in handle.get("instances", []) if (s := remove_instance(ctx, i)) is not None}
    cluster = describe_cluster(ctx, name)
    if cluster is None and not going:
        return Poll.finished(f"DB cluster {name} deleted")
    if cluster is not None and cluster.get("Status") != "deleting":
        try:
            ctx.client("rds").delete_db_cluster(DBClusterIdentifier=name, SkipFinalSnapshot=True)
        except Exception as exc:
            if not (is_not_found(exc) or state_fault(exc)):
                raise
            members = [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])]
            others = [m for m in members if m not in handle.get("instances", [])]
            if state_fault(exc) and others and not going:
                return Poll.failure(
                    f"DB cluster {name} has DB instances drplan did not create "
                    f"({', '.join(others)}); not deleting them"
                )
    waiting = ", ".join(f"{i} {s}" for i, s in going.items())
    return Poll.running(f"deleting DB cluster {name}" + (f"; instances: {waiting}" if waiting else ""))


# --- picking a snapshot ---------------------------------------------------------------------------


def list_snapshots(ctx: StepContext, kind: SnapshotKind, **kwargs: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in ctx.client("rds").get_paginator(kind.describe).paginate(**kwargs):
        found.extend(page.get(kind.items, []))
    return found


def named_snapshot(ctx: StepContext, kind: SnapshotKind, wanted: str) -> tuple[dict[str, Any], str]:
    """The snapshot ``wanted`` names (identifier or ARN), and how to name it to the restore call."""
    is_arn = wanted.startswith("arn:")
    name = wanted.split(kind.arn_part, 1)[-1] if is_arn else wanted
    by_name = {kind.key: name, **({"SnapshotType": "automated"} if name.startswith("rds:") else {})}
    found: list[dict[str, Any]] = []
    try:
        found = list_snapshots(ctx, kind, **by_name)
    except Exception as exc:
        if not is_not_found(exc):
            raise
    if is_arn:  # the same name in this account is not enough: the ARN must match
        found = [s for s in found if s.get(kind.arn_key) == wanted]
    reference = name
    if not found and is_arn:  # a snapshot shared by another account is known by its ARN only
        reference = wanted
        try:
            found = list_snapshots(ctx, kind, **{kind.key: wanted, "IncludeShared": True})
        except Exception as exc:
            if not is_not_found(exc):
                raise
    if not found:
        raise StepFailed(ctx.step.key, f"{kind.what} {wanted} does not exist")
    snapshot = found[0]
    source = ctx.params.get(kind.source_param)
    if source and str(snapshot.get(kind.source_key, "")).lower() != str(source).lower():
        raise StepFailed(
            ctx.step.key,
            f"{kind.what} {wanted} was taken of {snapshot.get(kind.source_key)}, not of {source}",
        )
    if snapshot.get("Status") != "available":
        raise StepFailed(ctx.step.key, f"{kind.what} {wanted} is {snapshot.get('Status')}, not available")
    return snapshot, reference


def pick_snapshot(ctx: StepContext, kind: SnapshotKind, **kwargs: Any) -> tuple[dict[str, Any], str]:
    wanted = str(ctx.params.get("snapshot", "latest"))
    if wanted != "latest":
        return named_snapshot(ctx, kind, wanted)
    source = ctx.params[kind.source_param]
    found = list_snapshots(ctx, kind, **{kind.source_key: source}, **kwargs)
    best = newest((s for s in found if s.get("Status") == "available"), snapshot_time)
    if best is None:
        raise StepFailed(ctx.step.key, f"{kind.source_what} {source} has no available {kind.what}s")
    return best, str(best[kind.key])


def snapshot_findings(ctx: StepContext, kind: SnapshotKind, **kwargs: Any) -> list[PreflightResult]:
    if unresolved(ctx.params.get("snapshot")) or unresolved(ctx.params.get(kind.source_param)):
        return [
            PreflightResult(
                "ok", f"the {kind.what} comes from an earlier step's output; chosen when the step runs"
            )
        ]
    try:
        snapshot, _ = pick_snapshot(ctx, kind, **kwargs)
    except StepFailed as exc:
        return [PreflightResult("error", exc.reason)]
    created = snapshot_time(snapshot)
    if created is None:
        return [PreflightResult("warning", f"{kind.what} {snapshot[kind.key]} has no creation time")]
    return [freshness_result(ctx, kind.what, str(snapshot[kind.key]), created)]


# --- picking a point in time ----------------------------------------------------------------------


def restorable_window(ctx: StepContext) -> tuple[datetime | None, datetime]:
    """The source's restorable window; the start is None when the API does not say."""
    source = ctx.params["source_instance"]
    db = describe_instance(ctx, source)
    if db is None:
        raise StepFailed(ctx.step.key, f"source DB instance {source} does not exist")
    if db.get("DBClusterIdentifier"):
        raise StepFailed(
            ctx.step.key,
            f"DB instance {source} belongs to Aurora cluster {db['DBClusterIdentifier']}; "
            "restore the cluster instead",
        )
    if not db.get("BackupRetentionPeriod"):
        raise StepFailed(
            ctx.step.key, f"automated backups are disabled on DB instance {source} (backup retention 0)"
        )
    latest = db.get("LatestRestorableTime")
    if latest is None:
        raise StepFailed(
            ctx.step.key, f"DB instance {source} has no restorable time yet (no automated backup so far)"
        )
    backups = ctx.client("rds").describe_db_instance_automated_backups(DBInstanceIdentifier=source)
    earliest = None
    for backup in backups.get("DBInstanceAutomatedBackups", []):
        same = (
            backup.get("DbiResourceId") == db.get("DbiResourceId")
            if db.get("DbiResourceId")
            else backup.get("Status") == "active"
        )
        if same and backup.get("RestoreWindow", {}).get("EarliestTime"):
            earliest = backup["RestoreWindow"]["EarliestTime"]
    return earliest, latest


def restore_time(ctx: StepContext) -> tuple[datetime, bool]:
    """The moment ``restore_time`` names, checked against the window; and whether it is "latest"."""
    earliest, latest = restorable_window(ctx)
    wanted = str(ctx.params.get("restore_time", "latest"))
    if wanted == "latest":
        return as_utc(latest), True
    moment = as_utc(datetime.fromisoformat(wanted.replace("Z", "+00:00")))
    if moment > as_utc(latest) or (earliest is not None and moment < as_utc(earliest)):
        start = as_utc(earliest).isoformat() if earliest is not None else "the oldest automated backup"
        raise StepFailed(
            ctx.step.key,
            f"{wanted} is outside the restorable window {start} - {as_utc(latest).isoformat()}",
        )
    return moment, False
