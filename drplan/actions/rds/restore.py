"""Amazon RDS and Aurora: restore DB instances and clusters from snapshots or a point in time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions._aws import (
    add_resource,
    aws_tags,
    freshness_result,
    recovery_point,
    require_fresh,
    target_free,
    unresolved,
)
from drplan.actions.base import Handle, Poll, PreflightResult, StepContext, isolated_name, suffixed
from drplan.actions.rds.base import InstanceRestore, RdsAction, port_option
from drplan.actions.rds.lookup import (
    ALREADY_EXISTS,
    BROKEN,
    CLUSTER_SNAPSHOT,
    DB_SNAPSHOT,
    MULTI_AZ_ENGINES,
    describe_cluster,
    describe_instance,
    instances_named,
    ours,
    pick_snapshot,
    restore_time,
    snapshot_findings,
    snapshot_time,
    teardown_cluster,
)
from drplan.aws import error_code
from drplan.errors import StepFailed
from drplan.resources import Resource, Target

_DB_OUTPUTS = {
    "endpoint": "Address of the restored DB instance",
    "port": "Port of the restored DB instance",
    "arn": "ARN of the restored DB instance",
    "instance_id": "Identifier of the restored DB instance",
}


class RestoreSnapshot(InstanceRestore):
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
        return snapshot_findings(ctx, DB_SNAPSHOT, **self._types(ctx)) + self._target_finding(ctx)

    def start(self, ctx: StepContext) -> Handle:
        snapshot, reference = pick_snapshot(ctx, DB_SNAPSHOT, **self._types(ctx))
        identifier = str(snapshot["DBSnapshotIdentifier"])
        created = snapshot_time(snapshot)
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


class RestorePointInTime(InstanceRestore):
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

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        source = ctx.params["source_instance"]
        if unresolved(source):
            later = PreflightResult("ok", "the source DB instance comes from an earlier step's output")
            return [later, *self._target_finding(ctx)]
        try:
            moment, _ = restore_time(ctx)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason)]
        point = freshness_result(ctx, "point in time", f"{source}@{moment.isoformat()}", moment)
        return [point, *self._target_finding(ctx)]

    def start(self, ctx: StepContext) -> Handle:
        moment, latest = restore_time(ctx)
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


class RestoreClusterSnapshot(RdsAction):
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

    def isolate(
        self, params: Mapping[str, Any], suffix: str, *, redirected: bool
    ) -> Mapping[str, Any] | None:
        # Room for the instances' "-N": their names must keep the drill's whole suffix too.
        reserve = len(f"-{self._planned_count(params)}")
        return {**params, "target": isolated_name(params["target"], suffix, "rds:cluster", reserve=reserve)}

    def _planned_count(self, params: Mapping[str, Any]) -> int:
        """Instances the step creates, as far as the parameters say (the snapshot's engine decides
        at run time when ``engine`` is not given)."""
        return 0 if params.get("engine") in MULTI_AZ_ENGINES else int(params.get("instances", 1))

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        target = str(params["target"])
        instances = self._instance_ids(target, self._planned_count(params))
        return (Target("rds:cluster", target, "target"), *(Target("rds:db", i, "target") for i in instances))

    def sources(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        source = params.get("source_cluster")
        return (Target("rds:cluster", str(source), "source_cluster", creates=False),) if source else ()

    def _instance_ids(self, target: str, count: int) -> list[str]:
        """``<target>-1`` (the writer), ``<target>-2``, ...; shortened to fit the 63-character limit."""
        return [suffixed(target, f"-{i}") for i in range(1, count + 1)]

    def _count(self, ctx: StepContext, engine: str) -> int:
        """Instances to create: Multi-AZ DB clusters (engine mysql/postgres) come with their own."""
        return 0 if engine in MULTI_AZ_ENGINES else int(ctx.params.get("instances", 1))

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        findings = snapshot_findings(ctx, CLUSTER_SNAPSHOT)
        target = str(ctx.params["target"])
        if unresolved(target):
            return findings
        findings.append(target_free(describe_cluster(ctx, target) is not None, "DB cluster", target))
        engine = str(ctx.params.get("engine", ""))
        for db in instances_named(ctx, self._instance_ids(target, self._count(ctx, engine))):
            findings.append(target_free(True, "DB instance", db["DBInstanceIdentifier"]))
        return findings

    def start(self, ctx: StepContext) -> Handle:
        snapshot, reference = pick_snapshot(ctx, CLUSTER_SNAPSHOT)
        identifier = str(snapshot["DBClusterSnapshotIdentifier"])
        created = snapshot_time(snapshot)
        if created is None:
            raise StepFailed(ctx.step.key, f"DB cluster snapshot {identifier} has no creation time")
        require_fresh(ctx, created, f"DB cluster snapshot {identifier}")
        target = str(ctx.params["target"])
        engine = str(ctx.params.get("engine") or snapshot["Engine"])
        handle: Handle = {"snapshot_id": identifier, "instances": [], "count": self._count(ctx, engine)}
        for db in instances_named(ctx, self._instance_ids(target, handle["count"])):
            if not ours(ctx, db.get("TagList")):
                raise StepFailed(
                    ctx.step.key,
                    f"DB instance {db['DBInstanceIdentifier']} already exists; refusing to touch it",
                )
        recovery_point(handle, identifier, created)
        cluster = describe_cluster(ctx, target)  # checked first: not every API refuses an existing name
        if cluster is not None and not ours(ctx, cluster.get("TagList")):
            raise StepFailed(ctx.step.key, f"DB cluster {target} already exists; refusing to overwrite it")
        if cluster is None:
            kwargs: dict[str, Any] = {
                "DBClusterIdentifier": target,
                "SnapshotIdentifier": reference,
                "Engine": engine,
                "Tags": aws_tags(ctx),
                **port_option(ctx),
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
            if engine in MULTI_AZ_ENGINES:
                kwargs["DBClusterInstanceClass"] = ctx.params["instance_class"]
            try:
                cluster = ctx.client("rds").restore_db_cluster_from_snapshot(**kwargs)["DBCluster"]
            except Exception as exc:
                if error_code(exc) in ALREADY_EXISTS:
                    raise StepFailed(
                        ctx.step.key, f"DB cluster {target} already exists; refusing to overwrite it"
                    ) from exc
                raise
        handle.update({"cluster": cluster["DBClusterIdentifier"], "arn": cluster.get("DBClusterArn")})
        add_resource(
            ctx,
            handle,
            Resource("rds:cluster", cluster["DBClusterIdentifier"], ctx.region, cluster.get("DBClusterArn")),
        )
        return handle

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        """Wait for the cluster, then create its instances (AWS takes them only once the cluster is
        available), then wait for them."""
        name = handle["cluster"]
        cluster = describe_cluster(ctx, name)
        if cluster is None:
            return Poll.running("waiting for the DB cluster to appear")
        status = cluster.get("Status")
        if status in BROKEN:
            return Poll.failure(f"DB cluster {name} is {status}")
        wanted = self._instance_ids(name, handle["count"])
        if status != "available" and len(handle["instances"]) < len(wanted):
            return Poll.running(f"restoring the cluster ({status})")
        for identifier in wanted:
            if identifier not in handle["instances"]:
                self._create_instance(ctx, handle, cluster, identifier)
        states = {
            db["DBInstanceIdentifier"]: db.get("DBInstanceStatus")
            for db in instances_named(ctx, handle["instances"])
        }
        broken = [i for i in handle["instances"] if states.get(i) in BROKEN]
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
            if error_code(exc) not in ALREADY_EXISTS:
                raise
            db = describe_instance(ctx, identifier)  # ours if it is in our cluster, with our tags
            if (
                db is None
                or db.get("DBClusterIdentifier") != cluster["DBClusterIdentifier"]
                or not ours(ctx, db.get("TagList"))
            ):
                raise StepFailed(
                    ctx.step.key, f"DB instance {identifier} already exists; refusing to touch it"
                ) from exc
        handle["instances"].append(identifier)
        extra = {"cluster": cluster["DBClusterIdentifier"]}
        add_resource(ctx, handle, Resource("rds:db", identifier, ctx.region, db.get("DBInstanceArn"), extra))

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        cluster = describe_cluster(ctx, handle["cluster"])
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
        teardown_cluster(ctx, handle)
        return {"cluster": handle["cluster"]}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        if "cluster" not in handle:
            return Poll.finished("nothing was created")
        return teardown_cluster(ctx, handle)
