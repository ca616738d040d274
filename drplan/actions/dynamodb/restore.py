"""Amazon DynamoDB: restore tables from on-demand backups or point-in-time recovery."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from drplan import removal
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
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext, isolated_name
from drplan.aws import error_code
from drplan.errors import StepFailed
from drplan.resources import Resource, Target

_TABLE_OUTPUTS = {"table_name": "Name of the restored table", "table_arn": "ARN of the restored table"}


def describe_table(ctx: StepContext, name: str) -> dict[str, Any] | None:
    """The table ``name`` in the step's region, or None when it does not exist."""
    return removal.describe_table(ctx.client, name)


class _TableRestore(Action):
    family = "database"
    drill = "isolate"
    undoable = True
    default_estimate = timedelta(minutes=20)
    concurrency = 50  # DynamoDB allows 50 concurrent table restores per account by default

    def isolate(
        self, params: Mapping[str, Any], suffix: str, *, redirected: bool
    ) -> Mapping[str, Any] | None:
        return {**params, "target": isolated_name(params["target"], suffix, "dynamodb:table")}

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        return (Target("dynamodb:table", str(params["target"]), "target"),)

    def sources(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        source = params.get("source_table")
        return (Target("dynamodb:table", str(source), "source_table", creates=False),) if source else ()

    # --- shared by both restores ----------------------------------------------------------------

    def _started(self, ctx: StepContext, response: Mapping[str, Any], handle: Handle) -> Handle:
        table = response["TableDescription"]
        handle.update({"table": table["TableName"], "table_arn": table["TableArn"], "tagged": False})
        add_resource(
            ctx, handle, Resource("dynamodb:table", table["TableName"], ctx.region, table["TableArn"])
        )
        with contextlib.suppress(Exception):  # best effort: start() must not fail after the restore
            self._tag(ctx, handle)
        return handle

    def _tag(self, ctx: StepContext, handle: Handle) -> None:
        """Tag the table as soon as possible (the restore calls take no tags): a sweep finds it by
        them. A table still being created may refuse; the poll that sees it ACTIVE tags it then."""
        try:
            ctx.client("dynamodb").tag_resource(ResourceArn=handle["table_arn"], Tags=aws_tags(ctx))
            handle["tagged"] = True
        except Exception as exc:
            if error_code(exc) not in ("ResourceInUseException", "ResourceNotFoundException"):
                raise

    def adopt(self, ctx: StepContext, found: list[Resource]) -> Handle | None:
        mine = [r for r in found if r.kind == "dynamodb:table"]
        table = describe_table(ctx, mine[0].id) if mine else None
        if table is None:
            return None
        return self._started(ctx, {"TableDescription": table}, {"adopted": True})

    def _ours(self, ctx: StepContext, table: Mapping[str, Any]) -> bool:
        """Did this step create ``table`` (an earlier call whose answer was lost, then retried)? Tagged
        by this run, or restored, since the run started, by a restore like this step's."""
        try:
            tags = ctx.client("dynamodb").list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags", [])
        except Exception:
            tags = []
        if {t.get("Key"): t.get("Value") for t in tags}.get("drplan:run-id") == ctx.run_id:
            return True
        summary = table.get("RestoreSummary") or {}
        created = table.get("CreationDateTime")
        source = ctx.params.get("source_table")
        restored_from_ours = summary.get("SourceBackupArn") is not None or str(
            summary.get("SourceTableArn", "")
        ).endswith(f":table/{source}")
        return bool(restored_from_ours and created is not None and as_utc(created) >= ctx.started_at)

    def _restore_error(self, ctx: StepContext, exc: Exception) -> StepFailed | Handle:
        if error_code(exc) == "TableAlreadyExistsException":
            table = describe_table(ctx, str(ctx.params["target"]))
            if table is not None and self._ours(ctx, table):
                ctx.note(f"table {table['TableName']} was already restored by this step; using it")
                return self._started(ctx, {"TableDescription": table}, {"adopted": True})
            return StepFailed(
                ctx.step.key, f"table {ctx.params['target']} already exists; refusing to overwrite it"
            )
        if error_code(exc) in (
            "TableNotFoundException",
            "BackupNotFoundException",
            "PointInTimeRecoveryUnavailableException",
        ):
            return StepFailed(
                ctx.step.key, str(getattr(exc, "response", {}).get("Error", {}).get("Message", exc))
            )
        raise exc

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        table = describe_table(ctx, handle["table"])
        if table is None:
            return Poll.running("waiting for the table to appear")
        status = table.get("TableStatus")
        if status == "ACTIVE":
            if not handle.get("tagged"):
                self._tag(ctx, handle)
            return Poll.finished(f"table {handle['table']} is ACTIVE ({table.get('ItemCount', 0)} items)")
        if status == "CREATING":
            return Poll.running("restoring (CREATING)")
        return Poll.failure(f"table {handle['table']} is {status}")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        out = {"table_name": handle["table"], "table_arn": handle["table_arn"]}
        if "backup_arn" in handle:
            out["backup_arn"] = handle["backup_arn"]
        return out

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        try:
            ctx.client("dynamodb").delete_table(TableName=handle["table"])
        except Exception as exc:
            if not is_not_found(exc):
                raise
        return {"table": handle["table"]}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        table = describe_table(ctx, handle["table"])
        if table is None:
            return Poll.finished(f"table {handle['table']} deleted")
        return Poll.running(f"table {handle['table']} is {table.get('TableStatus')}")


#: A restore writes the items into the new table as the caller: AWS requires read and write
#: permissions on the target table besides the restore permission itself (DynamoDB developer guide,
#: "Using IAM with DynamoDB backup and restore"). drplan's policy scopes them to the target table.
RESTORE_WRITES = (
    "dynamodb:BatchWriteItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
)


class RestoreBackup(_TableRestore):
    name = "aws.dynamodb.restore_backup"
    summary = "Create a DynamoDB table from an on-demand backup"
    outputs = {**_TABLE_OUTPUTS, "backup_arn": "ARN of the backup restored"}
    iam = (
        "dynamodb:ListBackups",
        "dynamodb:DescribeBackup",
        "dynamodb:RestoreTableFromBackup",
        *RESTORE_WRITES,
        "dynamodb:DescribeTable",
        "dynamodb:ListTagsOfResource",
        "dynamodb:TagResource",
        "dynamodb:DeleteTable",
    )

    def describe(self, params: Mapping[str, Any]) -> str:
        backup = params.get("backup", "latest")
        source = (
            f"the latest backup of table {params.get('source_table')}"
            if backup == "latest"
            else f"backup {backup}"
        )
        return f"Create table {params.get('target')} from {source}"

    def _pick(self, ctx: StepContext) -> tuple[str, datetime]:
        client = ctx.client("dynamodb")
        wanted = ctx.params.get("backup", "latest")
        if wanted != "latest":
            try:
                details = client.describe_backup(BackupArn=wanted)["BackupDescription"]["BackupDetails"]
            except Exception as exc:
                if error_code(exc) == "BackupNotFoundException":
                    raise StepFailed(ctx.step.key, f"backup {wanted} does not exist") from exc
                raise
            return details["BackupArn"], details["BackupCreationDateTime"]
        source = ctx.params["source_table"]
        summaries: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": source, "BackupType": "ALL"}
        while True:
            page = client.list_backups(**kwargs)
            summaries.extend(
                s for s in page.get("BackupSummaries", []) if s.get("BackupStatus") == "AVAILABLE"
            )
            if not page.get("LastEvaluatedBackupArn"):
                break
            kwargs["ExclusiveStartBackupArn"] = page["LastEvaluatedBackupArn"]
        best = newest(summaries, lambda s: s.get("BackupCreationDateTime"))
        if best is None:
            raise StepFailed(ctx.step.key, f"table {source} has no available backups")
        return best["BackupArn"], best["BackupCreationDateTime"]

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        try:
            arn, created = self._pick(ctx)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason)]
        return [
            freshness_result(ctx, "backup", arn, created),
            target_free(describe_table(ctx, ctx.params["target"]) is not None, "table", ctx.params["target"]),
        ]

    def start(self, ctx: StepContext) -> Handle:
        arn, created = self._pick(ctx)
        require_fresh(ctx, created, f"backup {arn}")
        kwargs: dict[str, Any] = {"TargetTableName": ctx.params["target"], "BackupArn": arn}
        if ctx.params.get("billing_mode"):
            kwargs["BillingModeOverride"] = ctx.params["billing_mode"]
        try:
            response = ctx.client("dynamodb").restore_table_from_backup(**kwargs)
        except Exception as exc:
            adopted = self._restore_error(ctx, exc)
            if isinstance(adopted, StepFailed):
                raise adopted from exc
            recovery_point(adopted, arn, created)
            return adopted
        handle: Handle = {"backup_arn": arn}
        recovery_point(handle, arn, created)
        return self._started(ctx, response, handle)


class RestorePointInTime(_TableRestore):
    name = "aws.dynamodb.restore_point_in_time"
    summary = "Create a DynamoDB table from continuous backups at a point in time"
    outputs = _TABLE_OUTPUTS
    iam = (
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:RestoreTableToPointInTime",
        *RESTORE_WRITES,
        "dynamodb:DescribeTable",
        "dynamodb:ListTagsOfResource",
        "dynamodb:TagResource",
        "dynamodb:DeleteTable",
    )

    def describe(self, params: Mapping[str, Any]) -> str:
        when = params.get("restore_time", "latest")
        when_text = "its latest restorable time" if when == "latest" else when
        return (
            f"Create table {params.get('target')} from table {params.get('source_table')} as of {when_text}"
        )

    def _window(self, ctx: StepContext) -> tuple[datetime, datetime]:
        source = ctx.params["source_table"]
        try:
            description = ctx.client("dynamodb").describe_continuous_backups(TableName=source)
        except Exception as exc:
            if error_code(exc) == "TableNotFoundException":
                raise StepFailed(ctx.step.key, f"source table {source} does not exist") from exc
            raise
        pitr = description["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
        if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
            raise StepFailed(ctx.step.key, f"point-in-time recovery is not enabled on table {source}")
        return pitr["EarliestRestorableDateTime"], pitr["LatestRestorableDateTime"]

    def _when(self, ctx: StepContext) -> tuple[datetime, bool]:
        earliest, latest = self._window(ctx)
        wanted = ctx.params.get("restore_time", "latest")
        if wanted == "latest":
            return latest, True
        moment = as_utc(datetime.fromisoformat(str(wanted).replace("Z", "+00:00")))
        if not as_utc(earliest) <= moment <= as_utc(latest):
            raise StepFailed(
                ctx.step.key,
                f"{wanted} is outside the restorable window {as_utc(earliest).isoformat()} - {as_utc(latest).isoformat()}",
            )
        return moment, False

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        try:
            moment, _ = self._when(ctx)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason)]
        source = f"{ctx.params['source_table']}@{moment.isoformat()}"
        return [
            freshness_result(ctx, "point in time", source, moment),
            target_free(describe_table(ctx, ctx.params["target"]) is not None, "table", ctx.params["target"]),
        ]

    def start(self, ctx: StepContext) -> Handle:
        moment, latest = self._when(ctx)
        kwargs: dict[str, Any] = {
            "SourceTableName": ctx.params["source_table"],
            "TargetTableName": ctx.params["target"],
        }
        if latest:
            kwargs["UseLatestRestorableTime"] = True
        else:
            kwargs["RestoreDateTime"] = moment
        if ctx.params.get("billing_mode"):
            kwargs["BillingModeOverride"] = ctx.params["billing_mode"]
        try:
            response = ctx.client("dynamodb").restore_table_to_point_in_time(**kwargs)
        except Exception as exc:
            adopted = self._restore_error(ctx, exc)
            if isinstance(adopted, StepFailed):
                raise adopted from exc
            recovery_point(adopted, f"{ctx.params['source_table']}@{as_utc(moment).isoformat()}", moment)
            return adopted
        handle: Handle = {}
        recovery_point(handle, f"{ctx.params['source_table']}@{as_utc(moment).isoformat()}", moment)
        return self._started(ctx, response, handle)
