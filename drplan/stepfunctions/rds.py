"""RDS instance restores in Amazon States Language: a DB instance from a snapshot or to a point in
time (a DB cluster from a cluster snapshot is :mod:`drplan.stepfunctions.rds_cluster`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from drplan.model import Mode
from drplan.resources import Resource
from drplan.stepfunctions.builder import Path, Scope, Untranslatable
from drplan.stepfunctions.tasks import (
    POINT_IN_TIME,
    STEP_FAILED,
    StepInfo,
    Translation,
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


#: ``drplan.actions.rds.lookup.BROKEN``: statuses a restored instance does not recover from.
def _broken() -> list[str]:
    from drplan.actions.rds.lookup import BROKEN

    return sorted(BROKEN)


def remove_db_instance(info: StepInfo, scope: Scope, target: Any, *, unprotect: bool) -> str:
    """The undo of a step that created DB instance ``target`` (text, or a Path to it):
    ``removal.remove_db_instance`` until it is gone, for an instance this step of this run created
    (its tags): deleted with no final snapshot (its deletion protection turned off first when
    ``unprotect``: an action whose IAM allows it), verified gone."""
    gone = done(scope, info)
    not_ours = scope.add(info.label("undo: not created by this step"), {"Type": "Succeed"})
    find = scope.reserve(info.label("undo: find DB instance"))
    start, wait = poll_loop(info, scope, "u", find, undo_waits(info.options), "DB instance deletion")
    there = scope.reserve(info.label("undo: DB instance there?"))
    first = scope.reserve(info.label("undo: the DB instance"))
    deleting = scope.reserve(info.label("undo: deleting?"))
    delete = scope.reserve(info.label("undo: delete DB instance"))
    turn_off = scope.reserve(info.label("undo: turn deletion protection off")) if unprotect else delete
    values = [target] if not isinstance(target, Path) else Path(f"States.Array({target.expr})")
    scope.put(
        find,
        task(
            "rds",
            "describeDBInstances",
            {"Filters": [{"Name": "db-instance-id", "Values": values}]},
            there,
            selector={"n": Path("States.ArrayLength($.DbInstances)"), "all": Path("$.DbInstances")},
            result="$.w.find",
        ),
    )
    scope.put(there, choice([{"Variable": "$.w.find.n", "NumericEquals": 0, "Next": gone}], first))
    check = ours(info, scope, "$.w.db.v.TagList", deleting, not_ours)
    scope.put(first, pass_state({"v": Path("$.w.find.all[0]")}, check, result="$.w.db"))
    scope.put(
        deleting,
        choice(
            [
                {"Variable": "$.w.db.v.DbInstanceStatus", "StringEquals": "deleting", "Next": wait},
                *(
                    [
                        {
                            "And": [
                                {"Variable": "$.w.db.v.DeletionProtection", "IsPresent": True},
                                {"Variable": "$.w.db.v.DeletionProtection", "BooleanEquals": True},
                            ],
                            "Next": turn_off,
                        }
                    ]
                    if unprotect
                    else []
                ),
            ],
            delete,
        ),
    )
    identifier = Path("$.w.db.v.DbInstanceIdentifier")
    if unprotect:
        scope.put(
            turn_off,
            task(
                "rds",
                "modifyDBInstance",
                {"DbInstanceIdentifier": identifier, "DeletionProtection": False, "ApplyImmediately": True},
                wait,
                result=None,
                catch=[(["Rds.InvalidDbInstanceStateException"], wait)],
            ),
        )
    scope.put(
        delete,
        task(
            "rds",
            "deleteDBInstance",
            {
                "DbInstanceIdentifier": identifier,
                "SkipFinalSnapshot": True,
                "DeleteAutomatedBackups": True,
            },
            wait,
            result=None,
            # Not deletable yet (still being created, modified): look again after a while.
            catch=[(["Rds.InvalidDbInstanceStateException"], wait)],
        ),
    )
    return start


class _InstanceRestore(Translation):
    """What the two restores that make one DB instance share (``drplan.actions.rds.base.InstanceRestore``):
    where and how the instance runs, the wait until it is available, its outputs, and the undo."""

    def created(
        self, params: Mapping[str, Any], outputs: Mapping[str, Any], mode: Mode, region: str | None
    ) -> list[Resource]:
        if not outputs.get("instance_id"):
            return []
        return [Resource("rds:db", str(outputs["instance_id"]), region, outputs.get("arn"))]

    def options(self, info: StepInfo) -> dict[str, Any]:
        """``InstanceRestore._options``: where and how the restored instance runs."""
        p = info.params
        out: dict[str, Any] = {"Tags": info.aws_tags()}
        if p.get("port") is not None:
            out["Port"] = int(p["port"])
        for param, key in (
            ("instance_class", "DbInstanceClass"),
            ("subnet_group", "DbSubnetGroupName"),
            ("parameter_group", "DbParameterGroupName"),
        ):
            if p.get(param):
                out[key] = info.v(p[param])
        if p.get("security_groups"):
            out["VpcSecurityGroupIds"] = info.v(list(p["security_groups"]))
        if p.get("multi_az") is not None:
            out["MultiAz"] = bool(p["multi_az"])
        return out

    def await_instance(self, info: StepInfo, scope: Scope, extra: Mapping[str, Any]) -> str:
        """``InstanceRestore.poll`` then ``result``: describe the target until it is available (a
        broken status fails at once), then the outputs (``extra`` beside the instance's own). The
        first state of the wait."""
        p = info.params
        outputs = scope.add(
            info.label("outputs"),
            pass_state(
                {
                    "endpoint": Path("$.w.desc.db.Endpoint.Address"),
                    "port": Path("$.w.desc.db.Endpoint.Port"),
                    "arn": Path("$.w.desc.db.DbInstanceArn"),
                    "instance_id": Path("$.w.desc.db.DbInstanceIdentifier"),
                    **extra,
                },
                None,
            ),
        )
        check = scope.reserve(info.label("describe DB instance"))
        start, wait = poll_loop(
            info, scope, "p", check, poll_waits(info.options, info.estimate, info.timeout), "DB instance"
        )
        state = scope.reserve(info.label("DB instance available?"))
        broken = scope.add(
            info.label("DB instance broken"),
            fail(
                Path(
                    "States.Format('DB instance {} is {}', $.w.desc.db.DbInstanceIdentifier, $.w.desc.db.DbInstanceStatus)"
                )
            ),
        )
        scope.put(
            check,
            task(
                "rds",
                "describeDBInstances",
                {"DbInstanceIdentifier": info.v(p["target"])},
                state,
                # "[0]" alone: moto's interpreter returns a list for a field right after an index.
                selector={"db": Path("$.DbInstances[0]")},
                result="$.w.desc",
            ),
        )
        scope.put(
            state,
            choice(
                [
                    {
                        "Variable": "$.w.desc.db.DbInstanceStatus",
                        "StringEquals": "available",
                        "Next": outputs,
                    },
                    *(
                        {"Variable": "$.w.desc.db.DbInstanceStatus", "StringEquals": status, "Next": broken}
                        for status in _broken()
                    ),
                ],
                wait,
            ),
        )
        return start

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        # The restore does not ask for deletion protection (off by default), and the action's IAM has no
        # ModifyDBInstance: the undo deletes the instance as it is.
        return remove_db_instance(info, scope, info.v(info.params["target"]), unprotect=False)


class RdsRestoreSnapshot(_InstanceRestore):
    action = "aws.rds.restore_snapshot"
    understood = frozenset(
        {
            "source_instance",
            "target",
            "snapshot",
            "include_automated",
            "instance_class",
            "subnet_group",
            "security_groups",
            "multi_az",
            "parameter_group",
            "port",
            "max_age",
            "tags",
        }
    )

    def check(self, info: StepInfo) -> None:
        super().check(info)
        snapshot = self.literal(info, "snapshot") or "latest"
        self.literal(info, "include_automated")
        if str(snapshot).startswith("arn:"):
            raise Untranslatable("a snapshot named by its ARN (shared snapshots) is not translated yet")
        if snapshot == "latest" and not info.params.get("source_instance"):
            raise Untranslatable("`snapshot: latest` needs `source_instance`")
        port = info.params.get("port")
        if port is not None and not isinstance(port, int):
            raise Untranslatable("`port` must be a number known when the plan is exported")

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        snapshot = p.get("snapshot", "latest")
        restore = scope.reserve(info.label("restore DB instance"))
        # ``lookup.snapshot_time``: a copied snapshot keeps its original time (the real RPO).
        best = "$states.input.w.best.v"
        taken = f"({best}.OriginalSnapshotCreateTime ? {best}.OriginalSnapshotCreateTime : {best}.SnapshotCreateTime)"
        fresh = fresh_enough(info, scope, f"'DB snapshot ' & {best}.DbSnapshotIdentifier", restore, taken)
        if snapshot == "latest":
            kinds = {} if p.get("include_automated", True) else {"SnapshotType": "manual"}
            first = newest(
                info,
                scope,
                what="DB snapshots",
                service="rds",
                action="describeDBSnapshots",
                parameters={"DbInstanceIdentifier": info.v(p["source_instance"]), **kinds},
                items="DbSnapshots",
                token_out="Marker",
                token_in="Marker",
                status=("Status", "available"),
                created=("OriginalSnapshotCreateTime", "SnapshotCreateTime"),
                missing=f"DB instance {p['source_instance']} has no available DB snapshots",
                then=fresh,
                point="DbSnapshotIdentifier",
            )
        else:
            first = self._named(info, scope, str(snapshot), fresh)
        start = self.await_instance(info, scope, {"snapshot_id": Path("$.w.best.v.DbSnapshotIdentifier")})
        scope.put(
            restore,
            task(
                "rds",
                "restoreDBInstanceFromDBSnapshot",
                {
                    "DbInstanceIdentifier": info.v(p["target"]),
                    "DbSnapshotIdentifier": Path("$.w.best.v.DbSnapshotIdentifier"),
                    **self.options(info),
                },
                start,
                result=None,
            ),
        )
        return first

    def _named(self, info: StepInfo, scope: Scope, snapshot: str, then: str) -> str:
        """``lookup.named_snapshot``: the snapshot must exist, be of ``source_instance`` and be
        available; it is kept at ``$.w.best.v`` like the newest one."""
        source = info.params.get("source_instance")
        unavailable = scope.add(
            info.label("DB snapshot not available"),
            fail(Path(f"States.Format('DB snapshot {snapshot} is {{}}, not available', $.w.best.v.Status)")),
        )
        rules: list[dict[str, Any]] = []
        if source:
            other = scope.add(
                info.label("DB snapshot of another instance"),
                fail(
                    Path(
                        f"States.Format('DB snapshot {snapshot} was taken of {{}}, not of {source}', $.w.best.v.DbInstanceIdentifier)"
                    )
                ),
            )
            rules.append(
                {
                    "Not": {
                        "Variable": "$.w.best.v.DbInstanceIdentifier",
                        "StringEquals": str(source).lower(),
                    },
                    "Next": other,
                }
            )
        rules.append(
            {"Not": {"Variable": "$.w.best.v.Status", "StringEquals": "available"}, "Next": unavailable}
        )
        chosen = scope.add(info.label("DB snapshot chosen"), chosen_point(info, "DbSnapshotIdentifier", then))
        verify = scope.add(info.label("DB snapshot usable?"), choice(rules, chosen))
        kind = {"SnapshotType": "automated"} if snapshot.startswith("rds:") else {}
        return scope.add(
            info.label("describe DB snapshot"),
            task(
                "rds",
                "describeDBSnapshots",
                {"DbSnapshotIdentifier": snapshot, **kind},
                verify,
                selector={"v": Path("$.DbSnapshots[0]")},
                result="$.w.best",
            ),
        )


# --- shared by the point-in-time and the cluster restores -------------------------------------------


def formatted(text: str, *paths: str) -> Path:
    """A failure message with values read when the state runs (``{}`` in ``text``, in order)."""
    return Path(f"States.Format('{text}', {', '.join(paths)})")


def _py_iso(millis: str) -> str:
    """Python's ``datetime.isoformat()`` of a UTC moment (``millis``: a JSONata expression of its
    milliseconds), as the local messages print times: ``2026-01-01T08:00:00+00:00``, with
    ``.123000`` only when there is a fraction of a second."""
    return (
        f"($ms := {millis}; $fromMillis($ms, '[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01]')"
        " & ($ms % 1000 != 0 ? '.' & $formatNumber($ms % 1000, '000') & '000' : '') & '+00:00')"
    )


def made_here(info: StepInfo) -> str:
    """A JSONata function telling whether a described resource's ``TagList`` says this step of this
    run created it (``drplan.actions.rds.lookup.ours``)."""
    step = json.dumps(info.key)
    return (
        "function($d){ $count($d.TagList[Key = 'drplan:run-id' and Value = $states.input.run.id]) > 0"
        f" and $count($d.TagList[Key = 'drplan:step' and Value = {step}]) > 0 }}"
    )


def by_filter(name: str, values: Any) -> dict[str, Any]:
    """A ``Filters`` parameter: describing by filter answers an empty list for a name that does not
    exist (where describing by identifier fails with a "not found" error the local action catches)."""
    return {"Filters": [{"Name": name, "Values": values}]}


class RdsRestorePointInTime(_InstanceRestore):
    """``RestorePointInTime``: the source must exist, be a DB instance of its own (not an Aurora
    cluster's), keep automated backups and have a latest restorable time; an explicit moment must
    lie in its restorable window (``lookup.restorable_window``), whose start the automated backups
    give. Then ``RestoreDBInstanceToPointInTime`` (``UseLatestRestorableTime`` for ``latest``) and
    the same wait, outputs and undo as the snapshot restore."""

    action = "aws.rds.restore_point_in_time"
    understood = frozenset(
        {
            "source_instance",
            "restore_time",
            "target",
            "instance_class",
            "subnet_group",
            "security_groups",
            "multi_az",
            "parameter_group",
            "port",
            "tags",
        }
    )

    def check(self, info: StepInfo) -> None:
        super().check(info)
        when = self.literal(info, "restore_time")
        if when is not None and when != "latest":
            self._moment(str(when))
        port = info.params.get("port")
        if port is not None and not isinstance(port, int):
            raise Untranslatable("`port` must be a number known when the plan is exported")

    def _moment(self, when: str) -> datetime:
        """``restore_time`` as the local action reads it (in UTC); the window is judged in JSONata,
        which counts whole milliseconds."""
        try:
            moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            raise Untranslatable(f"`restore_time` {when!r} is not a timestamp") from None
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
        if moment.microsecond % 1000:
            raise Untranslatable("`restore_time` finer than a millisecond (JSONata counts milliseconds)")
        return moment.astimezone(timezone.utc)

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        when = str(p.get("restore_time", "latest"))
        restore = scope.reserve(info.label("restore DB instance"))
        name = "$.w.pit.name"
        missing = scope.add(
            info.label("source DB instance missing"),
            fail(formatted("source DB instance {} does not exist", name)),
        )
        in_cluster = scope.add(
            info.label("source in an Aurora cluster"),
            fail(
                formatted(
                    "DB instance {} belongs to Aurora cluster {}; restore the cluster instead",
                    name,
                    "$.w.src.db.DbClusterIdentifier",
                )
            ),
        )
        no_backups = scope.add(
            info.label("automated backups disabled"),
            fail(formatted("automated backups are disabled on DB instance {} (backup retention 0)", name)),
        )
        no_time = scope.add(
            info.label("no restorable time yet"),
            fail(formatted("DB instance {} has no restorable time yet (no automated backup so far)", name)),
        )
        chosen = scope.add(info.label("point in time chosen"), chosen_point(info, POINT_IN_TIME, restore))
        if when == "latest":
            # With "latest", AWS restores to its latest restorable time when it runs: at least this one.
            at: Any = Path("$.w.src.db.LatestRestorableTime")
            moment: dict[str, Any] = {"UseLatestRestorableTime": True}
        else:
            utc = self._moment(when)
            at = utc.isoformat().replace("+00:00", "Z")
            moment = {"RestoreTime": at}
        point = scope.add(
            info.label("point in time"),
            pass_state({"t": at, "v": {"source": Path(name)}}, chosen, result="$.w.best"),
        )
        after_backups = point if when == "latest" else self._window(info, scope, when, point)
        backups = scope.add(
            info.label("describe automated backups"),
            task(
                "rds",
                "describeDBInstanceAutomatedBackups",
                {"DbInstanceIdentifier": info.v(p["source_instance"])},
                after_backups,
                selector={"all": Path("$.DbInstanceAutomatedBackups")},
                result="$.w.ab",
            ),
        )
        usable = scope.reserve(info.label("source restorable?"))
        # Rules in order: a missing field is tested before it is compared.
        rules: list[dict[str, Any]] = [
            {
                "And": [
                    {"Variable": "$.w.src.db.DbClusterIdentifier", "IsPresent": True},
                    {"Variable": "$.w.src.db.DbClusterIdentifier", "IsString": True},
                    {"Not": {"Variable": "$.w.src.db.DbClusterIdentifier", "StringEquals": ""}},
                ],
                "Next": in_cluster,
            },
            {"Variable": "$.w.src.db.BackupRetentionPeriod", "IsPresent": False, "Next": no_backups},
            {"Variable": "$.w.src.db.BackupRetentionPeriod", "IsNull": True, "Next": no_backups},
            {"Variable": "$.w.src.db.BackupRetentionPeriod", "NumericEquals": 0, "Next": no_backups},
            {"Variable": "$.w.src.db.LatestRestorableTime", "IsPresent": False, "Next": no_time},
            {"Variable": "$.w.src.db.LatestRestorableTime", "IsNull": True, "Next": no_time},
        ]
        scope.put(usable, choice(rules, backups))
        pick = scope.add(
            info.label("the source DB instance"),
            pass_state({"db": Path("$.w.src.all[0]")}, usable, result="$.w.src"),
        )
        there = scope.add(
            info.label("source DB instance there?"),
            choice([{"Variable": "$.w.src.n", "NumericEquals": 0, "Next": missing}], pick),
        )
        describe = scope.add(
            info.label("describe source DB instance"),
            task(
                "rds",
                "describeDBInstances",
                by_filter("db-instance-id", info.v([p["source_instance"]])),
                there,
                selector={"n": Path("States.ArrayLength($.DbInstances)"), "all": Path("$.DbInstances")},
                result="$.w.src",
            ),
        )
        first = scope.add(
            info.label("the source"),
            pass_state({"name": info.v(p["source_instance"])}, describe, result="$.w.pit"),
        )
        start = self.await_instance(info, scope, {})
        scope.put(
            restore,
            task(
                "rds",
                "restoreDBInstanceToPointInTime",
                {
                    "SourceDbInstanceIdentifier": info.v(p["source_instance"]),
                    "TargetDbInstanceIdentifier": info.v(p["target"]),
                    **moment,
                    **self.options(info),
                },
                start,
                result=None,
            ),
        )
        return first

    def _window(self, info: StepInfo, scope: Scope, when: str, then: str) -> str:
        """``lookup.restorable_window`` and ``restore_time``'s check: the window starts at the
        earliest time of the source's own automated backups (the last listed with the source's
        ``DbiResourceId``, or an active one when the source reports none) and ends at its latest
        restorable time; a moment outside fails with the local message. Times are compared and
        printed in JSONata (JSONPath cannot print a time as Python does)."""
        moment = self._moment(when).isoformat()
        window = (
            "$db := $states.input.w.src.db; "
            "$same := $filter($states.input.w.ab.all, function($b){ "
            "($db.DbiResourceId ? $b.DbiResourceId = $db.DbiResourceId : $b.Status = 'active') "
            "and $boolean($b.RestoreWindow.EarliestTime) }); "
            "$earliest := $same[-1].RestoreWindow.EarliestTime; "
            f"$m := $toMillis({json.dumps(moment)}); "
            "$latest := $toMillis($db.LatestRestorableTime); "
            "$start := $exists($earliest) ? $toMillis($earliest); "
        )
        outside = "$m > $latest or ($exists($start) and $m < $start)"
        cause = (
            f"{json.dumps(when + ' is outside the restorable window ')} & "
            f"($exists($start) ? {_py_iso('$start')} : 'the oldest automated backup') & ' - ' & "
            f"{_py_iso('$latest')}"
        )
        refused = scope.add(
            info.label("outside the restorable window"),
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% (" + window + cause + ") %}",
            },
        )
        return scope.add(
            info.label("in the restorable window?"),
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [{"Condition": "{% (" + window + outside + ") %}", "Next": refused}],
                "Default": then,
            },
        )
