"""Amazon RDS and Aurora: restore DB instances and clusters from snapshots or a point in time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from drplan.actions._aws import (
    add_resource,
    as_utc,
    aws_tags,
    freshness_result,
    is_not_found,
    newest,
    recovery_point,
    require_fresh,
    target_free,
)
from drplan.actions.base import Action, Handle, Poll, PreflightResult, Resource, StepContext, suffixed
from drplan.aws import error_code
from drplan.errors import StepFailed

_DB_OUTPUTS = {
    "endpoint": "Address of the restored DB instance",
    "port": "Port of the restored DB instance",
    "arn": "ARN of the restored DB instance",
    "instance_id": "Identifier of the restored DB instance",
}
#: Statuses a restored instance or cluster does not recover from by waiting.
_BROKEN = frozenset(
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
_MULTI_AZ_ENGINES = ("mysql", "postgres")
_ALREADY_EXISTS = ("DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault", "DBClusterAlreadyExistsFault")
#: Engine version and parameter group family of what :meth:`Action.seed` creates.
_SEED_ENGINES = {
    "postgres": ("16.4", "postgres16"),
    "mysql": ("8.0.39", "mysql8.0"),
    "aurora-postgresql": ("16.4", "aurora-postgresql16"),
    "aurora-mysql": ("8.0.mysql_aurora.3.07.1", "aurora-mysql8.0"),
}
_SEED_LOGIN = {"MasterUsername": "drplan", "MasterUserPassword": "sandbox-only-1"}


@dataclass(frozen=True)
class _SnapshotKind:
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


_DB_SNAPSHOT = _SnapshotKind(
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
_CLUSTER_SNAPSHOT = _SnapshotKind(
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


def _unresolved(value: Any) -> bool:
    """A ``${service.step.output}`` that preflight or seed cannot know yet."""
    return isinstance(value, str) and "${" in value


def _state_fault(exc: BaseException) -> bool:
    return (error_code(exc) or "").startswith(("InvalidDBInstanceState", "InvalidDBClusterState"))


def _ours(ctx: StepContext, tags: Any) -> bool:
    """Tagged by this very step of this run (a create whose response was lost, then retried)."""
    found = {t.get("Key"): t.get("Value") for t in tags or []}
    return found.get("drplan:run-id") == ctx.run_id and found.get("drplan:step") == ctx.step.key


def _created(snapshot: Mapping[str, Any]) -> datetime | None:
    """When the data was captured: a copied snapshot keeps its original time (the real RPO)."""
    when = snapshot.get("OriginalSnapshotCreateTime") or snapshot.get("SnapshotCreateTime")
    return when if isinstance(when, datetime) else None


def _port(ctx: StepContext) -> dict[str, int]:
    value = ctx.params.get("port")
    if value is None:
        return {}
    try:
        return {"Port": int(value)}
    except (TypeError, ValueError):
        raise StepFailed(ctx.step.key, f"port must be a number, got {value!r}") from None


class _RdsAction(Action):
    family = "database"
    drill = "isolate"
    undoable = True
    default_estimate = timedelta(minutes=30)

    def isolate(
        self, params: Mapping[str, Any], suffix: str, *, redirected: bool
    ) -> Mapping[str, Any] | None:
        return {**params, "target": suffixed(str(params["target"]), suffix)}

    # --- describe and delete, tolerating "not found" ----------------------------------------------

    def _instance(self, ctx: StepContext, identifier: str) -> dict[str, Any] | None:
        try:
            found: list[dict[str, Any]] = ctx.client("rds").describe_db_instances(
                DBInstanceIdentifier=identifier
            )["DBInstances"]
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return found[0] if found else None

    def _cluster(self, ctx: StepContext, identifier: str) -> dict[str, Any] | None:
        try:
            found: list[dict[str, Any]] = ctx.client("rds").describe_db_clusters(
                DBClusterIdentifier=identifier
            )["DBClusters"]
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return found[0] if found else None

    def _remove_instance(self, ctx: StepContext, identifier: str) -> str | None:
        """Delete the instance unless it is already going; its status, or None once it is gone.
        Called again while verifying, so a delete refused for the instance's state is retried."""
        db = self._instance(ctx, identifier)
        if db is None:
            return None
        status = str(db.get("DBInstanceStatus"))
        if status == "deleting":
            return status
        try:
            ctx.client("rds").delete_db_instance(
                DBInstanceIdentifier=identifier, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
            )
        except Exception as exc:
            if is_not_found(exc):
                return None
            if not _state_fault(exc):
                raise
            return status
        return "deleting"

    # --- picking a snapshot -----------------------------------------------------------------------

    def _snapshots(self, ctx: StepContext, kind: _SnapshotKind, **kwargs: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in ctx.client("rds").get_paginator(kind.describe).paginate(**kwargs):
            found.extend(page.get(kind.items, []))
        return found

    def _named_snapshot(
        self, ctx: StepContext, kind: _SnapshotKind, wanted: str
    ) -> tuple[dict[str, Any], str]:
        """The snapshot ``wanted`` names (identifier or ARN), and how to name it to the restore call."""
        is_arn = wanted.startswith("arn:")
        name = wanted.split(kind.arn_part, 1)[-1] if is_arn else wanted
        by_name = {kind.key: name, **({"SnapshotType": "automated"} if name.startswith("rds:") else {})}
        found: list[dict[str, Any]] = []
        try:
            found = self._snapshots(ctx, kind, **by_name)
        except Exception as exc:
            if not is_not_found(exc):
                raise
        if is_arn:  # the same name in this account is not enough: the ARN must match
            found = [s for s in found if s.get(kind.arn_key) == wanted]
        reference = name
        if not found and is_arn:  # a snapshot shared by another account is known by its ARN only
            reference = wanted
            try:
                found = self._snapshots(ctx, kind, **{kind.key: wanted, "IncludeShared": True})
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

    def _pick_snapshot(
        self, ctx: StepContext, kind: _SnapshotKind, **kwargs: Any
    ) -> tuple[dict[str, Any], str]:
        wanted = str(ctx.params.get("snapshot", "latest"))
        if wanted != "latest":
            return self._named_snapshot(ctx, kind, wanted)
        source = ctx.params[kind.source_param]
        found = self._snapshots(ctx, kind, **{kind.source_key: source}, **kwargs)
        best = newest((s for s in found if s.get("Status") == "available"), _created)
        if best is None:
            raise StepFailed(ctx.step.key, f"{kind.source_what} {source} has no available {kind.what}s")
        return best, str(best[kind.key])

    def _snapshot_findings(
        self, ctx: StepContext, kind: _SnapshotKind, **kwargs: Any
    ) -> list[PreflightResult]:
        if _unresolved(ctx.params.get("snapshot")) or _unresolved(ctx.params.get(kind.source_param)):
            return [
                PreflightResult(
                    "ok", f"the {kind.what} comes from an earlier step's output; chosen when the step runs"
                )
            ]
        try:
            snapshot, _ = self._pick_snapshot(ctx, kind, **kwargs)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason)]
        created = _created(snapshot)
        if created is None:
            return [PreflightResult("warning", f"{kind.what} {snapshot[kind.key]} has no creation time")]
        return [freshness_result(ctx, kind.what, str(snapshot[kind.key]), created)]

    # --- the sandbox ------------------------------------------------------------------------------

    def _seed_placement(self, ctx: StepContext, engine: str, *, cluster: bool) -> None:
        """The subnet group and parameter group the plan names, so the restore can use them."""
        rds = ctx.client("rds")
        group = ctx.params.get("subnet_group")
        if group and not _unresolved(group):
            try:
                rds.describe_db_subnet_groups(DBSubnetGroupName=group)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                ec2 = ctx.client("ec2")
                vpc = ec2.create_vpc(CidrBlock="10.90.0.0/16")["Vpc"]["VpcId"]
                subnets = [
                    ec2.create_subnet(
                        VpcId=vpc, CidrBlock=f"10.90.{i}.0/24", AvailabilityZone=f"{ctx.region}{zone}"
                    )
                    for i, zone in enumerate("ab")
                ]
                rds.create_db_subnet_group(
                    DBSubnetGroupName=group,
                    DBSubnetGroupDescription="drplan sandbox",
                    SubnetIds=[s["Subnet"]["SubnetId"] for s in subnets],
                )
        params = ctx.params.get("parameter_group")
        if params and not _unresolved(params):
            kind = "db_cluster_parameter_group" if cluster else "db_parameter_group"
            key = "DBClusterParameterGroup" if cluster else "DBParameterGroup"
            try:  # moto answers an empty list where AWS says DBParameterGroupNotFound
                exists = bool(getattr(rds, f"describe_{kind}s")(**{f"{key}Name": params}).get(f"{key}s"))
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                exists = False
            if not exists:
                family = _SEED_ENGINES[engine][1]
                getattr(rds, f"create_{kind}")(
                    **{f"{key}Name": params}, DBParameterGroupFamily=family, Description="drplan sandbox"
                )

    def _seed_instance(self, ctx: StepContext, name: str, engine: str) -> None:
        if self._instance(ctx, name) is None:
            ctx.client("rds").create_db_instance(
                DBInstanceIdentifier=name,
                DBInstanceClass="db.t4g.micro",
                Engine=engine,
                EngineVersion=_SEED_ENGINES[engine][0],
                AllocatedStorage=20,
                DBName="app",
                BackupRetentionPeriod=7,
                Tags=[{"Key": "drplan:seed", "Value": ctx.step.key}],
                **_SEED_LOGIN,
            )


class _InstanceRestore(_RdsAction):
    """Shared by the two restores that make one DB instance."""

    def _options(self, ctx: StepContext) -> dict[str, Any]:
        """Where and how the restored instance runs (the keys both restore calls accept)."""
        p = ctx.params
        kwargs: dict[str, Any] = {"Tags": aws_tags(ctx), **_port(ctx)}
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
        if _unresolved(target):
            return []
        return [target_free(self._instance(ctx, target) is not None, "DB instance", target)]

    def _restore(self, ctx: StepContext, operation: str, kwargs: Mapping[str, Any], handle: Handle) -> Handle:
        target = str(ctx.params["target"])
        try:
            db = getattr(ctx.client("rds"), operation)(**kwargs)["DBInstance"]
        except Exception as exc:
            if error_code(exc) not in _ALREADY_EXISTS:
                raise
            db = self._instance(ctx, target)
            if db is None or not _ours(ctx, db.get("TagList")):
                raise StepFailed(
                    ctx.step.key, f"DB instance {target} already exists; refusing to overwrite it"
                ) from exc
            ctx.note(f"DB instance {target} was already created by this step; using it")
        handle.update({"instance": db["DBInstanceIdentifier"], "arn": db.get("DBInstanceArn")})
        add_resource(
            handle, Resource("rds:db", db["DBInstanceIdentifier"], ctx.region, db.get("DBInstanceArn"))
        )
        return handle

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        db = self._instance(ctx, handle["instance"])
        if db is None:
            return Poll.running("waiting for the DB instance to appear")
        status = db.get("DBInstanceStatus")
        if status == "available":
            return Poll.finished(
                f"DB instance {handle['instance']} is available ({db.get('DBInstanceClass')})"
            )
        if status in _BROKEN:
            return Poll.failure(f"DB instance {handle['instance']} is {status}")
        return Poll.running(f"restoring ({status})")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        db = self._instance(ctx, handle["instance"])
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
        self._remove_instance(ctx, handle["instance"])
        return {"instance": handle["instance"]}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        if "instance" not in handle:
            return Poll.finished("nothing was created")
        status = self._remove_instance(ctx, handle["instance"])
        if status is None:
            return Poll.finished(f"DB instance {handle['instance']} deleted")
        return Poll.running(f"DB instance {handle['instance']} is {status}")


class RestoreSnapshot(_InstanceRestore):
    name = "aws.rds.restore_snapshot"
    summary = "Create a DB instance from a DB snapshot"
    outputs = {**_DB_OUTPUTS, "snapshot_id": "Identifier of the snapshot restored"}
    iam = (
        "rds:DescribeDBSnapshots",
        "rds:DescribeDBInstances",
        "rds:RestoreDBInstanceFromDBSnapshot",
        "rds:AddTagsToResource",
        "rds:DeleteDBInstance",
    )

    def describe(self, params: Mapping[str, Any]) -> str:
        snapshot = params.get("snapshot", "latest")
        source = (
            f"the latest snapshot of DB instance {params.get('source_instance')}"
            if snapshot == "latest"
            else f"snapshot {snapshot}"
        )
        return f"Create DB instance {params.get('target')} from {source}"

    def _types(self, ctx: StepContext) -> dict[str, str]:
        """``include_automated: false`` looks at manual snapshots only (the API's default is both)."""
        return {} if ctx.params.get("include_automated", True) else {"SnapshotType": "manual"}

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        return self._snapshot_findings(ctx, _DB_SNAPSHOT, **self._types(ctx)) + self._target_finding(ctx)

    def start(self, ctx: StepContext) -> Handle:
        snapshot, reference = self._pick_snapshot(ctx, _DB_SNAPSHOT, **self._types(ctx))
        identifier = str(snapshot["DBSnapshotIdentifier"])
        created = _created(snapshot)
        if created is None:
            raise StepFailed(ctx.step.key, f"DB snapshot {identifier} has no creation time")
        require_fresh(ctx, created, f"DB snapshot {identifier}")
        kwargs = {
            "DBInstanceIdentifier": ctx.params["target"],
            "DBSnapshotIdentifier": reference,
            **self._options(ctx),
        }
        handle: Handle = {"snapshot_id": identifier}
        recovery_point(handle, identifier, created)
        return self._restore(ctx, "restore_db_instance_from_db_snapshot", kwargs, handle)

    def seed(self, ctx: StepContext) -> None:
        wanted = str(ctx.params.get("snapshot", "latest"))
        source = ctx.params.get("source_instance")
        if _unresolved(wanted) or _unresolved(source):
            return
        name = wanted.split(":snapshot:", 1)[-1]
        if name.startswith("rds:"):
            return  # automated snapshots cannot be made on demand
        engine = "mysql" if ctx.params.get("port") == 3306 else "postgres"
        source = source or suffixed(name, "-source")
        self._seed_placement(ctx, engine, cluster=False)
        self._seed_instance(ctx, str(source), engine)
        manual = self._snapshots(ctx, _DB_SNAPSHOT, DBInstanceIdentifier=source, SnapshotType="manual")
        if wanted == "latest":
            if manual:
                return
            name = suffixed(str(source), "-seed")
        elif any(s["DBSnapshotIdentifier"] == name.lower() for s in manual):
            return
        ctx.client("rds").create_db_snapshot(DBInstanceIdentifier=source, DBSnapshotIdentifier=name)


class RestorePointInTime(_InstanceRestore):
    name = "aws.rds.restore_point_in_time"
    summary = "Create a DB instance from automated backups at a point in time"
    outputs = _DB_OUTPUTS
    iam = (
        "rds:DescribeDBInstances",
        "rds:DescribeDBInstanceAutomatedBackups",
        "rds:RestoreDBInstanceToPointInTime",
        "rds:AddTagsToResource",
        "rds:DeleteDBInstance",
    )

    def describe(self, params: Mapping[str, Any]) -> str:
        when = params.get("restore_time", "latest")
        when_text = "its latest restorable time" if when == "latest" else when
        source = params.get("source_instance")
        return f"Create DB instance {params.get('target')} from {source} as of {when_text}"

    def _window(self, ctx: StepContext) -> tuple[datetime | None, datetime]:
        """The source's restorable window; the start is None when the API does not say."""
        source = ctx.params["source_instance"]
        db = self._instance(ctx, source)
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

    def _when(self, ctx: StepContext) -> tuple[datetime, bool]:
        earliest, latest = self._window(ctx)
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

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        source = ctx.params["source_instance"]
        if _unresolved(source):
            later = PreflightResult("ok", "the source DB instance comes from an earlier step's output")
            return [later, *self._target_finding(ctx)]
        try:
            moment, _ = self._when(ctx)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason)]
        point = freshness_result(ctx, "point in time", f"{source}@{moment.isoformat()}", moment)
        return [point, *self._target_finding(ctx)]

    def start(self, ctx: StepContext) -> Handle:
        moment, latest = self._when(ctx)
        source = ctx.params["source_instance"]
        kwargs: dict[str, Any] = {
            "SourceDBInstanceIdentifier": source,
            "TargetDBInstanceIdentifier": ctx.params["target"],
            **({"UseLatestRestorableTime": True} if latest else {"RestoreTime": moment}),
            **self._options(ctx),
        }
        handle: Handle = {}
        # With "latest", AWS restores to its latest restorable time when it runs: at least this one.
        recovery_point(handle, f"{source}@{moment.isoformat()}", moment)
        return self._restore(ctx, "restore_db_instance_to_point_in_time", kwargs, handle)

    def seed(self, ctx: StepContext) -> None:
        source = ctx.params.get("source_instance")
        if not source or _unresolved(source):
            return
        engine = "mysql" if ctx.params.get("port") == 3306 else "postgres"
        self._seed_placement(ctx, engine, cluster=False)
        self._seed_instance(ctx, str(source), engine)


class RestoreClusterSnapshot(_RdsAction):
    name = "aws.rds.restore_cluster_snapshot"
    summary = "Create an Aurora DB cluster from a cluster snapshot, with its instances"
    outputs = {
        "endpoint": "Writer endpoint of the restored cluster",
        "reader_endpoint": "Reader endpoint of the restored cluster",
        "port": "Port of the restored cluster",
        "arn": "ARN of the restored cluster",
        "cluster_id": "Identifier of the restored cluster",
        "snapshot_id": "Identifier of the cluster snapshot restored",
    }
    iam = (
        "rds:DescribeDBClusterSnapshots",
        "rds:DescribeDBClusters",
        "rds:DescribeDBInstances",
        "rds:RestoreDBClusterFromSnapshot",
        "rds:CreateDBInstance",
        "rds:AddTagsToResource",
        "rds:DeleteDBInstance",
        "rds:DeleteDBCluster",
    )
    default_estimate = timedelta(minutes=40)

    def describe(self, params: Mapping[str, Any]) -> str:
        snapshot = params.get("snapshot", "latest")
        source = (
            f"the latest snapshot of cluster {params.get('source_cluster')}"
            if snapshot == "latest"
            else f"cluster snapshot {snapshot}"
        )
        count = params.get("instances", 1)
        return (
            f"Create DB cluster {params.get('target')} from {source}, "
            f"with {count} {params.get('instance_class')} instance{'s' if count != 1 else ''}"
        )

    def _instance_ids(self, target: str, count: int) -> list[str]:
        """``<target>-1`` (the writer), ``<target>-2``, ...; shortened to fit the 63-character limit."""
        return [suffixed(target, f"-{i}") for i in range(1, count + 1)]

    def _count(self, ctx: StepContext, engine: str) -> int:
        """Instances to create: Multi-AZ DB clusters (engine mysql/postgres) come with their own."""
        return 0 if engine in _MULTI_AZ_ENGINES else int(ctx.params.get("instances", 1))

    def _taken(self, ctx: StepContext, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        filters = [{"Name": "db-instance-id", "Values": ids}]
        return list(ctx.client("rds").describe_db_instances(Filters=filters).get("DBInstances", []))

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        findings = self._snapshot_findings(ctx, _CLUSTER_SNAPSHOT)
        target = str(ctx.params["target"])
        if _unresolved(target):
            return findings
        findings.append(target_free(self._cluster(ctx, target) is not None, "DB cluster", target))
        engine = str(ctx.params.get("engine", ""))
        for db in self._taken(ctx, self._instance_ids(target, self._count(ctx, engine))):
            findings.append(target_free(True, "DB instance", db["DBInstanceIdentifier"]))
        return findings

    def start(self, ctx: StepContext) -> Handle:
        snapshot, reference = self._pick_snapshot(ctx, _CLUSTER_SNAPSHOT)
        identifier = str(snapshot["DBClusterSnapshotIdentifier"])
        created = _created(snapshot)
        if created is None:
            raise StepFailed(ctx.step.key, f"DB cluster snapshot {identifier} has no creation time")
        require_fresh(ctx, created, f"DB cluster snapshot {identifier}")
        target = str(ctx.params["target"])
        engine = str(ctx.params.get("engine") or snapshot["Engine"])
        handle: Handle = {"snapshot_id": identifier, "instances": [], "count": self._count(ctx, engine)}
        for db in self._taken(ctx, self._instance_ids(target, handle["count"])):
            if not _ours(ctx, db.get("TagList")):
                raise StepFailed(
                    ctx.step.key,
                    f"DB instance {db['DBInstanceIdentifier']} already exists; refusing to touch it",
                )
        recovery_point(handle, identifier, created)
        cluster = self._cluster(ctx, target)  # checked first: not every API refuses an existing name
        if cluster is not None and not _ours(ctx, cluster.get("TagList")):
            raise StepFailed(ctx.step.key, f"DB cluster {target} already exists; refusing to overwrite it")
        if cluster is None:
            kwargs: dict[str, Any] = {
                "DBClusterIdentifier": target,
                "SnapshotIdentifier": reference,
                "Engine": engine,
                "Tags": aws_tags(ctx),
                **_port(ctx),
            }
            if engine == snapshot.get("Engine") and snapshot.get("EngineVersion"):
                kwargs["EngineVersion"] = snapshot["EngineVersion"]  # else AWS picks the region's default
            for param, key in (
                ("subnet_group", "DBSubnetGroupName"),
                ("parameter_group", "DBClusterParameterGroupName"),
            ):
                if ctx.params.get(param):
                    kwargs[key] = ctx.params[param]
            if ctx.params.get("security_groups"):
                kwargs["VpcSecurityGroupIds"] = list(ctx.params["security_groups"])
            if engine in _MULTI_AZ_ENGINES:
                kwargs["DBClusterInstanceClass"] = ctx.params["instance_class"]
            try:
                cluster = ctx.client("rds").restore_db_cluster_from_snapshot(**kwargs)["DBCluster"]
            except Exception as exc:
                if error_code(exc) in _ALREADY_EXISTS:
                    raise StepFailed(
                        ctx.step.key, f"DB cluster {target} already exists; refusing to overwrite it"
                    ) from exc
                raise
        handle.update({"cluster": cluster["DBClusterIdentifier"], "arn": cluster.get("DBClusterArn")})
        add_resource(
            handle,
            Resource("rds:cluster", cluster["DBClusterIdentifier"], ctx.region, cluster.get("DBClusterArn")),
        )
        return handle

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        """Wait for the cluster, then create its instances (AWS takes them only once the cluster is
        available), then wait for them."""
        name = handle["cluster"]
        cluster = self._cluster(ctx, name)
        if cluster is None:
            return Poll.running("waiting for the DB cluster to appear")
        status = cluster.get("Status")
        if status in _BROKEN:
            return Poll.failure(f"DB cluster {name} is {status}")
        wanted = self._instance_ids(name, handle["count"])
        if status != "available" and len(handle["instances"]) < len(wanted):
            return Poll.running(f"restoring the cluster ({status})")
        for identifier in wanted:
            if identifier not in handle["instances"]:
                self._create_instance(ctx, handle, cluster, identifier)
        states = {
            db["DBInstanceIdentifier"]: db.get("DBInstanceStatus")
            for db in self._taken(ctx, handle["instances"])
        }
        broken = [i for i in handle["instances"] if states.get(i) in _BROKEN]
        if broken:
            return Poll.failure(f"DB instance {broken[0]} is {states[broken[0]]}")
        waiting = [
            f"{i} {states.get(i, 'not visible yet')}"
            for i in handle["instances"]
            if states.get(i) != "available"
        ]
        if waiting or status != "available":
            return Poll.running(
                f"cluster {status}" + (f"; instances: {', '.join(waiting)}" if waiting else "")
            )
        return Poll.finished(
            f"DB cluster {name} is available with {len(handle['instances'])} instance(s) created"
        )

    def _create_instance(
        self, ctx: StepContext, handle: Handle, cluster: Mapping[str, Any], identifier: str
    ) -> None:
        try:
            db = ctx.client("rds").create_db_instance(
                DBInstanceIdentifier=identifier,
                DBClusterIdentifier=cluster["DBClusterIdentifier"],
                DBInstanceClass=ctx.params["instance_class"],
                Engine=cluster["Engine"],
                Tags=aws_tags(ctx),
            )["DBInstance"]
        except Exception as exc:
            if error_code(exc) not in _ALREADY_EXISTS:
                raise
            db = self._instance(ctx, identifier)  # ours if it is in our cluster, with our tags
            if (
                db is None
                or db.get("DBClusterIdentifier") != cluster["DBClusterIdentifier"]
                or not _ours(ctx, db.get("TagList"))
            ):
                raise StepFailed(
                    ctx.step.key, f"DB instance {identifier} already exists; refusing to touch it"
                ) from exc
        handle["instances"].append(identifier)
        extra = {"cluster": cluster["DBClusterIdentifier"]}
        add_resource(handle, Resource("rds:db", identifier, ctx.region, db.get("DBInstanceArn"), extra))

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        cluster = self._cluster(ctx, handle["cluster"])
        if cluster is None:
            raise StepFailed(ctx.step.key, f"DB cluster {handle['cluster']} disappeared")
        return {
            "endpoint": cluster.get("Endpoint"),
            "reader_endpoint": cluster.get("ReaderEndpoint"),
            "port": cluster.get("Port"),
            "arn": cluster.get("DBClusterArn"),
            "cluster_id": cluster["DBClusterIdentifier"],
            "snapshot_id": handle["snapshot_id"],
        }

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        if "cluster" not in handle:
            return {}
        self._teardown(ctx, handle)
        return {"cluster": handle["cluster"]}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        if "cluster" not in handle:
            return Poll.finished("nothing was created")
        return self._teardown(ctx, handle)

    def _teardown(self, ctx: StepContext, handle: Handle) -> Poll:
        """One round of deleting: the instances drplan created, then the cluster once AWS takes it
        (it refuses while members are not deleting). Repeated until describe says all are gone."""
        name = handle["cluster"]
        going = {
            i: s for i in handle.get("instances", []) if (s := self._remove_instance(ctx, i)) is not None
        }
        cluster = self._cluster(ctx, name)
        if cluster is None and not going:
            return Poll.finished(f"DB cluster {name} deleted")
        if cluster is not None and cluster.get("Status") != "deleting":
            try:
                ctx.client("rds").delete_db_cluster(DBClusterIdentifier=name, SkipFinalSnapshot=True)
            except Exception as exc:
                if not (is_not_found(exc) or _state_fault(exc)):
                    raise
                members = [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])]
                others = [m for m in members if m not in handle.get("instances", [])]
                if _state_fault(exc) and others and not going:
                    return Poll.failure(
                        f"DB cluster {name} has DB instances drplan did not create "
                        f"({', '.join(others)}); not deleting them"
                    )
        waiting = ", ".join(f"{i} {s}" for i, s in going.items())
        return Poll.running(f"deleting DB cluster {name}" + (f"; instances: {waiting}" if waiting else ""))

    def seed(self, ctx: StepContext) -> None:
        wanted = str(ctx.params.get("snapshot", "latest"))
        source = ctx.params.get("source_cluster")
        if _unresolved(wanted) or _unresolved(source):
            return
        name = wanted.split(":cluster-snapshot:", 1)[-1]
        if name.startswith("rds:"):
            return  # automated snapshots cannot be made on demand
        engine = str(ctx.params.get("engine") or "aurora-postgresql")
        source = str(source or suffixed(name, "-source"))
        self._seed_placement(ctx, engine, cluster=True)
        rds = ctx.client("rds")
        if self._cluster(ctx, source) is None:
            # A Multi-AZ DB cluster (mysql, postgres) brings its own instances; Aurora gets a writer.
            multi_az = {
                "DBClusterInstanceClass": "db.m6gd.large",
                "AllocatedStorage": 100,
                "StorageType": "io1",
                "Iops": 1000,
            }
            rds.create_db_cluster(
                DBClusterIdentifier=source,
                Engine=engine,
                EngineVersion=_SEED_ENGINES[engine][0],
                DatabaseName="app",
                BackupRetentionPeriod=7,
                Tags=[{"Key": "drplan:seed", "Value": ctx.step.key}],
                **_SEED_LOGIN,
                **(multi_az if engine in _MULTI_AZ_ENGINES else {}),
            )
            if engine not in _MULTI_AZ_ENGINES:
                rds.create_db_instance(
                    DBInstanceIdentifier=suffixed(source, "-seed-1"),
                    DBClusterIdentifier=source,
                    DBInstanceClass="db.t4g.medium",
                    Engine=engine,
                )
        manual = self._snapshots(ctx, _CLUSTER_SNAPSHOT, DBClusterIdentifier=source, SnapshotType="manual")
        if wanted == "latest":
            if manual:
                return
            name = suffixed(source, "-seed")
        elif any(s["DBClusterSnapshotIdentifier"] == name.lower() for s in manual):
            return
        rds.create_db_cluster_snapshot(DBClusterIdentifier=source, DBClusterSnapshotIdentifier=name)


ACTIONS = (RestoreSnapshot, RestorePointInTime, RestoreClusterSnapshot)
