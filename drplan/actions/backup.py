"""AWS Backup: restore a resource from a recovery point."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions.base import Action, suffixed


class BackupRestore(Action):
    name = "aws.backup.restore"
    family = "backup"
    summary = "Restore a resource from an AWS Backup recovery point"
    outputs = {
        "resource_arn": "ARN of the restored resource",
        "recovery_point_arn": "ARN of the recovery point that was restored",
        "restore_job_id": "AWS Backup restore job id",
        "name": "Name of the restored resource",
        "endpoint": "Endpoint address of a restored database (RDS and Aurora)",
    }
    iam = (
        "backup:ListRecoveryPointsByResource",
        "backup:DescribeRecoveryPoint",
        "backup:GetRecoveryPointRestoreMetadata",
        "backup:StartRestoreJob",
        "backup:DescribeRestoreJob",
        "iam:PassRole",
    )
    default_estimate = timedelta(minutes=30)
    concurrency = 10  # AWS Backup's default quota of concurrent restore jobs per account is low
    drill = "isolate"
    undoable = True

    def describe(self, params: Mapping[str, Any]) -> str:
        point = params.get("recovery_point", "latest")
        source = (
            f"the latest recovery point of {params.get('resource_arn')} in vault {params.get('vault')}"
            if point == "latest"
            else f"recovery point {point}"
        )
        return f"Restore {source} as {params.get('target')} with AWS Backup"

    def isolate(self, params: Mapping[str, Any], suffix: str, *, redirected: bool) -> Mapping[str, Any] | None:
        return {**params, "target": suffixed(str(params["target"]), suffix)}


ACTIONS = (BackupRestore,)
