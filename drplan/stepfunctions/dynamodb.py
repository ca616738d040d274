"""DynamoDB table restores in Amazon States Language: from a backup and to a point in time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from drplan.model import Mode
from drplan.resources import Resource
from drplan.stepfunctions.builder import Path, Scope, State
from drplan.stepfunctions.tasks import (
    POINT_IN_TIME,
    StepInfo,
    Translation,
    _arn_name,
    choice,
    chosen_point,
    done,
    fail,
    fresh_enough,
    newest,
    ours,
    pass_state,
    poll_loop,
    poll_waits,
    task,
    undo_waits,
)


class _TableRestore(Translation):
    """Shared by the two table restores: the wait for ACTIVE, tags, outputs, undo."""

    outputs: ClassVar[tuple[str, ...]] = ("table_name", "table_arn")

    def restored(self, info: StepInfo, scope: Scope, extra: Mapping[str, Any]) -> str:
        """From the restore call's result at ``$.w.table``: tag, wait for ACTIVE, outputs."""
        outputs = scope.add(
            info.label("outputs"),
            pass_state(
                {"table_name": Path("$.w.table.name"), "table_arn": Path("$.w.table.arn"), **extra}, None
            ),
        )
        tag_active = scope.add(
            info.label("tag table"),
            task(
                "dynamodb",
                "tagResource",
                {"ResourceArn": Path("$.w.table.arn"), "Tags": info.aws_tags()},
                outputs,
            ),
        )
        check = scope.reserve(info.label("describe table"))
        start, wait = poll_loop(
            info, scope, "p", check, poll_waits(info.options, info.estimate, info.timeout), "table"
        )
        state = scope.reserve(info.label("table ACTIVE?"))
        broken = scope.add(
            info.label("table broken"),
            fail(Path("States.Format('table {} is {}', $.w.table.name, $.w.desc.status)")),
        )
        scope.put(
            check,
            task(
                "dynamodb",
                "describeTable",
                {"TableName": Path("$.w.table.name")},
                state,
                selector={"status": Path("$.Table.TableStatus")},
                result="$.w.desc",
                catch=[(["DynamoDb.ResourceNotFoundException"], wait)],  # not visible yet
            ),
        )
        scope.put(
            state,
            choice(
                [
                    {"Variable": "$.w.desc.status", "StringEquals": "ACTIVE", "Next": tag_active},
                    {"Variable": "$.w.desc.status", "StringEquals": "CREATING", "Next": wait},
                ],
                broken,
            ),
        )
        # Tagged at once where AWS allows it (a sweep finds the table by its tags); a table still
        # being created may refuse, and is tagged once ACTIVE (as the local action does).
        return scope.add(
            info.label("tag new table"),
            task(
                "dynamodb",
                "tagResource",
                {"ResourceArn": Path("$.w.table.arn"), "Tags": info.aws_tags()},
                start,
                catch=[(["DynamoDb.ResourceInUseException", "DynamoDb.ResourceNotFoundException"], start)],
            ),
        )

    def extra_iam(self, params: Mapping[str, Any], arn: str) -> list[tuple[str, str]]:
        # The undo reads the table's tags before deleting it; AWS checks item writes on the table
        # a restore creates (RestoreTableFromBackup's and RestoreTableToPointInTime's documented needs).
        table = arn.replace("{service}", "dynamodb") + "table/" + _arn_name(params["target"])
        data = ("BatchWriteItem", "DeleteItem", "GetItem", "PutItem", "Query", "Scan", "UpdateItem")
        return [("dynamodb:ListTagsOfResource", table)] + [(f"dynamodb:{a}", table) for a in data]

    def created(
        self, params: Mapping[str, Any], outputs: Mapping[str, Any], mode: Mode, region: str | None
    ) -> list[Resource]:
        if not outputs.get("table_name"):
            return []
        return [Resource("dynamodb:table", str(outputs["table_name"]), region, outputs.get("table_arn"))]

    def restore_call(self, info: StepInfo, action: str, parameters: Mapping[str, Any], then: str) -> State:
        billing = info.params.get("billing_mode")
        call = {**parameters, "TargetTableName": info.v(info.params["target"])}
        if billing:
            call["BillingModeOverride"] = info.v(billing)
        return task(
            "dynamodb",
            action,
            call,
            then,
            selector={
                "name": Path("$.TableDescription.TableName"),
                "arn": Path("$.TableDescription.TableArn"),
            },
            result="$.w.table",
        )

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """``Action.undo`` + ``poll_undo``: delete the table this step created, verify it is gone."""
        # A restored table comes without deletion protection (the restore APIs cannot set it), and
        # the action's IAM has no UpdateTable: the undo deletes it as it is.
        return remove_table(info, scope, info.v(info.params["target"]), unprotect=False)


class DynamoRestoreBackup(_TableRestore):
    action = "aws.dynamodb.restore_backup"
    understood = frozenset({"source_table", "target", "backup", "billing_mode", "max_age", "tags"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.literal(info, "backup")

    def work(self, info: StepInfo, scope: Scope) -> str:
        backup = info.params.get("backup", "latest")
        restore = scope.reserve(info.label("restore table"))
        fresh = fresh_enough(info, scope, "'backup ' & $states.input.w.best.v.BackupArn", restore)
        if backup == "latest":
            arn: Any = Path("$.w.best.v.BackupArn")
            source = info.params["source_table"]
            first = newest(
                info,
                scope,
                what="backups",
                service="dynamodb",
                action="listBackups",
                parameters={"TableName": info.v(source), "BackupType": "ALL"},
                items="BackupSummaries",
                token_out="LastEvaluatedBackupArn",
                token_in="ExclusiveStartBackupArn",
                status=("BackupStatus", "AVAILABLE"),
                created=("BackupCreationDateTime",),
                missing=f"table {source} has no available backups",
                then=fresh,
                point="BackupArn",
            )
        else:
            # ``DescribeBackup``, as the local action: the backup must exist, and its creation time
            # is the recovery point the evidence measures the RPO from.
            arn = backup
            missing = scope.add(info.label("no such backup"), fail(f"backup {backup} does not exist"))
            chosen = scope.add(info.label("backup chosen"), chosen_point(info, "BackupArn", fresh))
            first = scope.add(
                info.label("describe backup"),
                task(
                    "dynamodb",
                    "describeBackup",
                    {"BackupArn": backup},
                    chosen,
                    selector={
                        "t": Path("$.BackupDescription.BackupDetails.BackupCreationDateTime"),
                        "v": Path("$.BackupDescription.BackupDetails"),
                    },
                    result="$.w.best",
                    catch=[(["DynamoDb.BackupNotFoundException"], missing)],
                ),
            )
        after = self.restored(info, scope, {"backup_arn": arn})
        scope.put(restore, self.restore_call(info, "restoreTableFromBackup", {"BackupArn": arn}, after))
        return first


class DynamoRestorePointInTime(_TableRestore):
    action = "aws.dynamodb.restore_point_in_time"
    understood = frozenset({"source_table", "target", "restore_time", "billing_mode", "tags"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.literal(info, "restore_time")

    def work(self, info: StepInfo, scope: Scope) -> str:
        source = info.params["source_table"]
        when = info.params.get("restore_time", "latest")
        restore = scope.reserve(info.label("restore table"))
        enabled = scope.reserve(info.label("point-in-time recovery enabled?"))
        disabled = scope.add(
            info.label("point-in-time recovery disabled"),
            fail(f"point-in-time recovery is not enabled on table {source}"),
        )
        missing = scope.add(info.label("source table missing"), fail(f"source table {source} does not exist"))
        first = scope.add(
            info.label("describe continuous backups"),
            task(
                "dynamodb",
                "describeContinuousBackups",
                {"TableName": info.v(source)},
                enabled,
                selector={
                    "pitr": Path("$.ContinuousBackupsDescription.PointInTimeRecoveryDescription"),
                },
                result="$.w.cb",
                catch=[(["DynamoDb.TableNotFoundException"], missing)],
            ),
        )
        # The recovery point, as the local action records it: the source at the moment restored
        # (the latest restorable time AWS reports, or the plan's), kept at $.w.best.
        at = Path("$.w.cb.pitr.LatestRestorableDateTime") if when == "latest" else when
        chosen = scope.add(info.label("point in time chosen"), chosen_point(info, POINT_IN_TIME, restore))
        point = scope.add(
            info.label("point in time"),
            pass_state({"t": at, "v": {"source": str(source)}}, chosen, result="$.w.best"),
        )
        scope.put(
            enabled,
            choice(
                [
                    {
                        "Variable": "$.w.cb.pitr.PointInTimeRecoveryStatus",
                        "StringEquals": "ENABLED",
                        "Next": point,
                    }
                ],
                disabled,
            ),
        )
        # AWS checks an explicit moment against the restorable window itself; the local action checks
        # it first to word the message (the restore fails either way, with nothing created).
        moment: dict[str, Any] = (
            {"UseLatestRestorableTime": True} if when == "latest" else {"RestoreDateTime": when}
        )
        after = self.restored(info, scope, {})
        scope.put(
            restore,
            self.restore_call(
                info, "restoreTableToPointInTime", {"SourceTableName": info.v(source), **moment}, after
            ),
        )
        return first


def remove_table(info: StepInfo, scope: Scope, target: Any, *, unprotect: bool) -> str:
    """The undo of a step that created table ``target`` (text, or a Path to it):
    ``removal.remove_table`` until it is gone, for a table this step of this run created (its
    tags): deleted (its deletion protection turned off first when ``unprotect``: an action whose
    IAM allows it, for a table that may come with protection on), verified gone."""
    gone = done(scope, info)
    not_ours = scope.add(info.label("undo: not created by this step"), {"Type": "Succeed"})
    describe = scope.reserve(info.label("undo: describe table"))
    start, wait = poll_loop(info, scope, "u", describe, undo_waits(info.options), "table deletion")
    deleting = scope.reserve(info.label("undo: deleting?"))
    tags = scope.reserve(info.label("undo: table tags"))
    delete = scope.reserve(info.label("undo: delete table"))
    protected = scope.reserve(info.label("undo: deletion protection?")) if unprotect else delete
    scope.put(
        describe,
        task(
            "dynamodb",
            "describeTable",
            {"TableName": target},
            deleting,
            selector={"t": Path("$.Table")},
            result="$.w.desc",
            catch=[(["DynamoDb.ResourceNotFoundException"], gone)],
        ),
    )
    scope.put(
        deleting,
        choice([{"Variable": "$.w.desc.t.TableStatus", "StringEquals": "DELETING", "Next": wait}], tags),
    )
    check = ours(info, scope, "$.w.tags.Tags", protected, not_ours)
    scope.put(
        tags,
        task(
            "dynamodb",
            "listTagsOfResource",
            {"ResourceArn": Path("$.w.desc.t.TableArn")},
            check,
            result="$.w.tags",
        ),
    )
    if unprotect:
        turn_off = scope.add(
            info.label("undo: turn deletion protection off"),
            task(
                "dynamodb",
                "updateTable",
                {"TableName": target, "DeletionProtectionEnabled": False},
                wait,
                result=None,
                catch=[(["DynamoDb.ResourceInUseException"], wait)],
            ),
        )
        on = [
            {"Variable": "$.w.desc.t.DeletionProtectionEnabled", "IsPresent": True},
            {"Variable": "$.w.desc.t.DeletionProtectionEnabled", "BooleanEquals": True},
        ]
        scope.put(protected, choice([{"And": on, "Next": turn_off}], delete))
    scope.put(
        delete,
        task(
            "dynamodb",
            "deleteTable",
            {"TableName": target},
            wait,
            result=None,
            catch=[
                (["DynamoDb.ResourceNotFoundException"], gone),
                (["DynamoDb.ResourceInUseException"], wait),  # still CREATING: try again
            ],
        ),
    )
    return start
