"""Amazon RDS and Aurora: restore DB instances and clusters from snapshots or a point in time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions.base import Action, suffixed

_DB_OUTPUTS = {
    "endpoint": "Address of the restored DB instance",
    "port": "Port of the restored DB instance",
    "arn": "ARN of the restored DB instance",
    "instance_id": "Identifier of the restored DB instance",
}


class _RdsAction(Action):
    family = "database"
    drill = "isolate"
    undoable = True
    default_estimate = timedelta(minutes=30)

    def isolate(self, params: Mapping[str, Any], suffix: str, *, redirected: bool) -> Mapping[str, Any] | None:
        return {**params, "target": suffixed(str(params["target"]), suffix)}


class RestoreSnapshot(_RdsAction):
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


class RestorePointInTime(_RdsAction):
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
        return f"Create DB instance {params.get('target')} from {params.get('source_instance')} as of {when_text}"


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


ACTIONS = (RestoreSnapshot, RestorePointInTime, RestoreClusterSnapshot)
