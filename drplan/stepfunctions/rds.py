"""RDS instance restores from a snapshot in Amazon States Language."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drplan.model import Mode
from drplan.resources import Resource
from drplan.stepfunctions.builder import Path, Scope, Untranslatable
from drplan.stepfunctions.tasks import (
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


class RdsRestoreSnapshot(Translation):
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
        outputs = scope.add(
            info.label("outputs"),
            pass_state(
                {
                    "endpoint": Path("$.w.desc.db.Endpoint.Address"),
                    "port": Path("$.w.desc.db.Endpoint.Port"),
                    "arn": Path("$.w.desc.db.DbInstanceArn"),
                    "instance_id": Path("$.w.desc.db.DbInstanceIdentifier"),
                    "snapshot_id": Path("$.w.best.v.DbSnapshotIdentifier"),
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

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """``removal.remove_db_instance`` until it is gone, for an instance this step created."""
        target = info.v(info.params["target"])
        gone = done(scope, info)
        not_ours = scope.add(info.label("undo: not created by this step"), {"Type": "Succeed"})
        find = scope.reserve(info.label("undo: find DB instance"))
        start, wait = poll_loop(info, scope, "u", find, undo_waits(info.options), "DB instance deletion")
        there = scope.reserve(info.label("undo: DB instance there?"))
        first = scope.reserve(info.label("undo: the DB instance"))
        deleting = scope.reserve(info.label("undo: deleting?"))
        delete = scope.reserve(info.label("undo: delete DB instance"))
        scope.put(
            find,
            task(
                "rds",
                "describeDBInstances",
                {"Filters": [{"Name": "db-instance-id", "Values": info.v([info.params["target"]])}]},
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
                [{"Variable": "$.w.db.v.DbInstanceStatus", "StringEquals": "deleting", "Next": wait}], delete
            ),
        )
        scope.put(
            delete,
            task(
                "rds",
                "deleteDBInstance",
                {"DbInstanceIdentifier": target, "SkipFinalSnapshot": True, "DeleteAutomatedBackups": True},
                wait,
                result=None,
                # Not deletable yet (still being created, modified): look again after a while.
                catch=[(["Rds.InvalidDbInstanceStateException"], wait)],
            ),
        )
        return start
