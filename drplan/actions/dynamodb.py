"""Amazon DynamoDB: restore tables from on-demand backups or point-in-time recovery."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions.base import Action, suffixed

_TABLE_OUTPUTS = {"table_name": "Name of the restored table", "table_arn": "ARN of the restored table"}


class _TableRestore(Action):
    family = "database"
    drill = "isolate"
    undoable = True
    default_estimate = timedelta(minutes=20)
    concurrency = 50  # DynamoDB allows 50 concurrent table restores per account by default

    def isolate(self, params: Mapping[str, Any], suffix: str, *, redirected: bool) -> Mapping[str, Any] | None:
        return {**params, "target": suffixed(str(params["target"]), suffix, limit=255)}


class RestoreBackup(_TableRestore):
    name = "aws.dynamodb.restore_backup"
    summary = "Create a DynamoDB table from an on-demand backup"
    outputs = {**_TABLE_OUTPUTS, "backup_arn": "ARN of the backup restored"}
    iam = (
        "dynamodb:ListBackups",
        "dynamodb:DescribeBackup",
        "dynamodb:RestoreTableFromBackup",
        "dynamodb:DescribeTable",
        "dynamodb:TagResource",
        "dynamodb:DeleteTable",
    )

    def describe(self, params: Mapping[str, Any]) -> str:
        backup = params.get("backup", "latest")
        source = f"the latest backup of table {params.get('source_table')}" if backup == "latest" else f"backup {backup}"
        return f"Create table {params.get('target')} from {source}"


class RestorePointInTime(_TableRestore):
    name = "aws.dynamodb.restore_point_in_time"
    summary = "Create a DynamoDB table from continuous backups at a point in time"
    outputs = _TABLE_OUTPUTS
    iam = (
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:RestoreTableToPointInTime",
        "dynamodb:DescribeTable",
        "dynamodb:TagResource",
        "dynamodb:DeleteTable",
    )

    def describe(self, params: Mapping[str, Any]) -> str:
        when = params.get("restore_time", "latest")
        when_text = "its latest restorable time" if when == "latest" else when
        return f"Create table {params.get('target')} from table {params.get('source_table')} as of {when_text}"


ACTIONS = (RestoreBackup, RestorePointInTime)
