"""Aurora (or Multi-AZ) DB cluster restores from a cluster snapshot, with their instances, in
Amazon States Language."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from drplan.model import Mode
from drplan.resources import Resource
from drplan.stepfunctions.builder import RUN_ID_MARKER, Path, Scope, Untranslatable, argument
from drplan.stepfunctions.rds import by_filter, formatted, made_here
from drplan.stepfunctions.tasks import (
    StepInfo,
    Translation,
    choice,
    chosen_point,
    done,
    fail,
    fresh_enough,
    jsonata_set,
    newest,
    ours,
    pass_state,
    poll_loop,
    poll_waits,
    task,
    undo_waits,
)


def _message(text: str, *values: Any) -> str | Path:
    """``text`` with ``{}`` filled by ``values``: static text when they are known at export, else a
    ``States.Format`` (a drill's names hold the run id)."""
    if not any(isinstance(v, Path) for v in values):
        return text.format(*values)
    return Path(f"States.Format('{text}', {', '.join(argument(v) for v in values)})")


class RdsRestoreClusterSnapshot(Translation):
    """``RestoreClusterSnapshot``: the snapshot (the newest available of ``source_cluster``, or one
    named), ``max_age``, the instance names free (or ours), the target cluster absent (or ours),
    ``RestoreDBClusterFromSnapshot``; then, once the cluster is available, ``CreateDBInstance`` for
    each instance (``<target>-1`` the writer, ``-2`` ...; none for a Multi-AZ DB cluster, engine
    ``mysql``/``postgres``, which brings its own), and the wait until the cluster and every
    instance are available. The undo deletes the instances and then the cluster, each only when
    drplan's tags say this step of this run created it, and waits until they are gone.

    ``instances`` must be known at export: the CreateDBInstance calls are unrolled, one Task state
    an instance, rather than an inline Map. Their names are worked out here by the local action's
    own rule (``suffixed``: the target shortened, never the ``-N``, to fit 63 characters), which no
    intrinsic function can do; a drill reserves room for the ``-N`` at export too
    (``RestoreClusterSnapshot.isolate``); and a Map would add a state per instance to the history
    of every poll for nothing (the calls are made once, in order, as locally)."""

    action = "aws.rds.restore_cluster_snapshot"
    understood = frozenset(
        {
            "source_cluster",
            "snapshot",
            "max_age",
            "target",
            "engine",
            "instance_class",
            "instances",
            "subnet_group",
            "security_groups",
            "parameter_group",
            "port",
            "tags",
        }
    )

    def check(self, info: StepInfo) -> None:
        super().check(info)
        snapshot = self.literal(info, "snapshot") or "latest"
        if str(snapshot).startswith("arn:"):
            raise Untranslatable(
                "a cluster snapshot named by its ARN (shared snapshots) is not translated yet"
            )
        if snapshot == "latest" and not info.params.get("source_cluster"):
            raise Untranslatable("`snapshot: latest` needs `source_cluster`")
        # The messages name the source; the instances' names are worked out from the target.
        self.without_references(info, "source_cluster", "target")
        self.literal(info, "engine")
        count = self.literal(info, "instances")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise Untranslatable("`instances` must be a number known when the plan is exported")
        port = info.params.get("port")
        if port is not None and not isinstance(port, int):
            raise Untranslatable("`port` must be a number known when the plan is exported")

    @staticmethod
    def _multi_az(params: Mapping[str, Any]) -> bool | None:
        """Whether the cluster is a Multi-AZ DB cluster (no instances of drplan's): known from
        ``engine``, else decided by the snapshot's engine when the step runs (None)."""
        from drplan.actions.rds.lookup import MULTI_AZ_ENGINES

        engine = params.get("engine")
        return str(engine) in MULTI_AZ_ENGINES if engine else None

    @classmethod
    def _ids(cls, params: Mapping[str, Any]) -> list[str]:
        """``RestoreClusterSnapshot._instance_ids``: the instances the step creates, unless the
        cluster is a Multi-AZ DB cluster."""
        from drplan.actions.base import suffixed

        if cls._multi_az(params):
            return []
        target = str(params["target"])
        return [suffixed(target, f"-{i}") for i in range(1, int(params.get("instances", 1)) + 1)]

    def created(
        self, params: Mapping[str, Any], outputs: Mapping[str, Any], mode: Mode, region: str | None
    ) -> list[Resource]:
        if not outputs.get("cluster_id"):
            return []
        cluster = str(outputs["cluster_id"])
        # The instances as the plan gives them (an engine left to the snapshot counts as Aurora's).
        return [
            Resource("rds:cluster", cluster, region, outputs.get("arn")),
            *(Resource("rds:db", i, region, None, {"cluster": cluster}) for i in self._ids(params)),
        ]

    def extra_iam(self, params: Mapping[str, Any], arn: str) -> list[tuple[str, str]]:
        return []  # every call is one of the action's own (Describe*, Restore, Create, Delete)

    def _if_multi_az(self, info: StepInfo, scope: Scope, label: str, multi: str, other: str) -> str:
        """Go to ``multi`` for a Multi-AZ DB cluster, else to ``other``."""
        known = self._multi_az(info.params)
        if known is not None:
            return multi if known else other
        from drplan.actions.rds.lookup import MULTI_AZ_ENGINES

        return scope.add(
            info.label(label),
            choice(
                [
                    {
                        "Or": [
                            {"Variable": "$.w.best.v.Engine", "StringEquals": engine}
                            for engine in MULTI_AZ_ENGINES
                        ],
                        "Next": multi,
                    }
                ],
                other,
            ),
        )

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        snapshot = str(p.get("snapshot", "latest"))
        ids = self._ids(p)
        target = info.v(p["target"])
        best = "$states.input.w.best.v"
        poll = scope.reserve(info.label("poll (DB cluster)"))
        restore = self._restore(info, scope, snapshot, poll)
        existing = self._target(info, scope, target, restore, poll)
        names = self._if_multi_az(
            info, scope, "Multi-AZ DB cluster?", existing, self._names_free(info, scope, ids, existing)
        )
        fresh = fresh_enough(
            info,
            scope,
            f"'DB cluster snapshot ' & {best}.DbClusterSnapshotIdentifier",
            names,
            f"{best}.SnapshotCreateTime",
        )
        if snapshot == "latest":
            source = p["source_cluster"]
            chosen = newest(
                info,
                scope,
                what="DB cluster snapshots",
                service="rds",
                action="describeDBClusterSnapshots",
                parameters={"DbClusterIdentifier": source},
                items="DbClusterSnapshots",
                token_out="Marker",
                token_in="Marker",
                status=("Status", "available"),
                created=("SnapshotCreateTime",),  # cluster snapshots have no original time
                missing=f"DB cluster {source} has no available DB cluster snapshots",
                then=fresh,
                point="DbClusterSnapshotIdentifier",
            )
        else:
            chosen = self._named(info, scope, snapshot, fresh)
        self._wait(info, scope, poll, ids)
        return scope.add(
            info.label("the instances"), pass_state({"ids": info.v(ids)}, chosen, result="$.w.k")
        )

    def _named(self, info: StepInfo, scope: Scope, snapshot: str, then: str) -> str:
        """``lookup.named_snapshot``: it must exist, be of ``source_cluster`` and be available, and
        (``start``) have a creation time; kept at ``$.w.best.v`` like the newest one. Described by
        filter, so a missing one is an empty list, as the local action sees it."""
        source = info.params.get("source_cluster")
        what = f"DB cluster snapshot {snapshot}"
        rules: list[dict[str, Any]] = []
        if source:
            other = scope.add(
                info.label("DB cluster snapshot of another cluster"),
                fail(
                    formatted(f"{what} was taken of {{}}, not of {source}", "$.w.best.v.DbClusterIdentifier")
                ),
            )
            rules.append(
                {
                    "Not": {
                        "Variable": "$.w.best.v.DbClusterIdentifier",
                        "StringEquals": str(source).lower(),
                    },
                    "Next": other,
                }
            )
        unavailable = scope.add(
            info.label("DB cluster snapshot not available"),
            fail(formatted(f"{what} is {{}}, not available", "$.w.best.v.Status")),
        )
        rules.append(
            {"Not": {"Variable": "$.w.best.v.Status", "StringEquals": "available"}, "Next": unavailable}
        )
        untimed = scope.add(
            info.label("DB cluster snapshot without a time"), fail(f"{what} has no creation time")
        )
        rules.append({"Variable": "$.w.best.v.SnapshotCreateTime", "IsPresent": False, "Next": untimed})
        chosen = scope.add(
            info.label("DB cluster snapshot chosen"), chosen_point(info, "DbClusterSnapshotIdentifier", then)
        )
        verify = scope.add(info.label("DB cluster snapshot usable?"), choice(rules, chosen))
        pick = scope.add(
            info.label("the DB cluster snapshot"),
            pass_state({"v": Path("$.w.best.all[0]")}, verify, result="$.w.best"),
        )
        missing = scope.add(info.label("no such DB cluster snapshot"), fail(f"{what} does not exist"))
        there = scope.add(
            info.label("DB cluster snapshot there?"),
            choice([{"Variable": "$.w.best.n", "NumericEquals": 0, "Next": missing}], pick),
        )
        kind = {"SnapshotType": "automated"} if snapshot.startswith("rds:") else {}
        return scope.add(
            info.label("describe DB cluster snapshot"),
            task(
                "rds",
                "describeDBClusterSnapshots",
                {**by_filter("db-cluster-snapshot-id", [snapshot]), **kind},
                there,
                selector={
                    "n": Path("States.ArrayLength($.DbClusterSnapshots)"),
                    "all": Path("$.DbClusterSnapshots"),
                },
                result="$.w.best",
            ),
        )

    def _names_free(self, info: StepInfo, scope: Scope, ids: list[str], then: str) -> str:
        """``start``'s check of the instances' names: one that exists and is not this step's fails
        the step before anything is created (the first such one AWS lists)."""
        if not ids:
            return then
        taken = scope.add(
            info.label("DB instance name taken"),
            fail(formatted("DB instance {} already exists; refusing to touch it", "$.w.taken")),
        )
        free = scope.add(
            info.label("DB instance names free?"),
            choice([{"Variable": "$.w.taken", "IsPresent": True, "Next": taken}], then),
        )
        others = f"$filter($states.input.w.names.all, function($d){{ $not(({made_here(info)})($d)) }})"
        judge = scope.add(
            info.label("DB instance names ours?"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": jsonata_set("taken", f"{others}[0].DbInstanceIdentifier"),
                "Next": free,
            },
        )
        return scope.add(
            info.label("describe DB instances named"),
            task(
                "rds",
                "describeDBInstances",
                by_filter("db-instance-id", Path("$.w.k.ids")),
                judge,
                selector={"all": Path("$.DbInstances")},
                result="$.w.names",
            ),
        )

    def _target(self, info: StepInfo, scope: Scope, target: Any, restore: str, poll: str) -> str:
        """``start``: a DB cluster of the target's name that this step did not create fails it (not
        every API refuses an existing name); one it created (an earlier attempt's) is waited for."""
        exists = scope.add(
            info.label("DB cluster exists"),
            fail(_message("DB cluster {} already exists; refusing to overwrite it", target)),
        )
        check = ours(info, scope, "$.w.tc.v.TagList", poll, exists)
        pick = scope.add(
            info.label("the existing DB cluster"),
            pass_state({"v": Path("$.w.tc.all[0]")}, check, result="$.w.tc"),
        )
        there = scope.add(
            info.label("DB cluster there?"),
            choice([{"Variable": "$.w.tc.n", "NumericEquals": 0, "Next": restore}], pick),
        )
        return scope.add(
            info.label("describe target DB cluster"),
            task(
                "rds",
                "describeDBClusters",
                by_filter("db-cluster-id", info.v([info.params["target"]])),
                there,
                selector={"n": Path("States.ArrayLength($.DbClusters)"), "all": Path("$.DbClusters")},
                result="$.w.tc",
            ),
        )

    def _restore(self, info: StepInfo, scope: Scope, snapshot: str, then: str) -> str:
        """``RestoreDBClusterFromSnapshot`` as the local action calls it: the engine given (else the
        snapshot's), the snapshot's engine version when the engine is the snapshot's, and the
        instance class on the cluster for a Multi-AZ DB cluster. One Task state per combination,
        chosen when the snapshot is known (JSONPath cannot leave a parameter out)."""
        p = info.params
        engine = p.get("engine")
        base: dict[str, Any] = {
            "DbClusterIdentifier": info.v(p["target"]),
            "SnapshotIdentifier": Path("$.w.best.v.DbClusterSnapshotIdentifier")
            if snapshot == "latest"
            else snapshot,
            "Engine": engine if engine else Path("$.w.best.v.Engine"),
            "Tags": info.aws_tags(),
        }
        if p.get("port") is not None:
            base["Port"] = int(p["port"])
        if p.get("subnet_group"):
            base["DbSubnetGroupName"] = info.v(p["subnet_group"])
        if p.get("parameter_group"):
            base["DbClusterParameterGroupName"] = info.v(p["parameter_group"])
        if p.get("security_groups"):
            base["VpcSecurityGroupIds"] = info.v(list(p["security_groups"]))
        versioned: list[dict[str, Any]] = [
            {"Variable": "$.w.best.v.EngineVersion", "IsPresent": True},
            {"Variable": "$.w.best.v.EngineVersion", "IsString": True},
            {"Not": {"Variable": "$.w.best.v.EngineVersion", "StringEquals": ""}},
        ]
        if engine:
            versioned.insert(0, {"Variable": "$.w.best.v.Engine", "StringEquals": str(engine)})

        def call(multi: bool) -> str:
            extra = {"DbClusterInstanceClass": info.v(p["instance_class"])} if multi else {}
            plain = scope.add(
                info.label("restore DB cluster"),
                task("rds", "restoreDBClusterFromSnapshot", {**base, **extra}, then, result=None),
            )
            with_version = scope.add(
                info.label("restore DB cluster (engine version)"),
                task(
                    "rds",
                    "restoreDBClusterFromSnapshot",
                    {**base, "EngineVersion": Path("$.w.best.v.EngineVersion"), **extra},
                    then,
                    result=None,
                ),
            )
            return scope.add(
                info.label("snapshot's engine version?"),
                choice([{"And": versioned, "Next": with_version}], plain),
            )

        known = self._multi_az(p)
        if known is not None:
            return call(known)
        return self._if_multi_az(info, scope, "restore a Multi-AZ DB cluster?", call(True), call(False))

    def _wait(self, info: StepInfo, scope: Scope, poll: str, ids: list[str]) -> None:
        """``RestoreClusterSnapshot.poll`` then ``result``, from ``poll``: describe the cluster until
        it is there (a broken status fails at once); once it is available create the instances, once;
        then describe them until all are available (the first broken one, in their order, fails).
        Outputs as ``result`` gives them (``None`` for what the cluster does not report)."""
        from drplan.actions.rds.lookup import BROKEN

        check = scope.reserve(info.label("describe DB cluster"))
        start, wait = poll_loop(
            info, scope, "p", check, poll_waits(info.options, info.estimate, info.timeout), "DB cluster"
        )
        scope.put(poll, {"Type": "Pass", "Next": start})
        c = "$states.input.w.c.v"
        fields = {
            "endpoint": "Endpoint",
            "reader_endpoint": "ReaderEndpoint",
            "port": "Port",
            "arn": "DbClusterArn",
        }
        out = ", ".join(f"'{k}': $exists({c}.{f}) ? {c}.{f} : null" for k, f in fields.items())
        outputs = scope.add(
            info.label("outputs"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": "{% {"
                + out
                + f", 'cluster_id': {c}.DbClusterIdentifier,"
                + " 'snapshot_id': $states.input.w.best.v.DbClusterSnapshotIdentifier} %}",
                "End": True,
            },
        )

        def cluster_ready() -> str:  # a cluster without instances of drplan's
            return scope.add(
                info.label("DB cluster available?"),
                choice([{"Variable": "$.w.c.v.Status", "StringEquals": "available", "Next": outputs}], wait),
            )

        if not ids:
            after_cluster = cluster_ready()
        else:
            instances = self._instances(info, scope, ids, outputs, wait)
            multi = self._multi_az(info.params)
            after_cluster = (
                instances
                if multi is False
                else self._if_multi_az(info, scope, "Multi-AZ DB cluster? (wait)", cluster_ready(), instances)
            )
        broken = scope.add(
            info.label("DB cluster broken"),
            fail(formatted("DB cluster {} is {}", "$.w.c.v.DbClusterIdentifier", "$.w.c.v.Status")),
        )
        judge = scope.add(
            info.label("DB cluster broken?"),
            choice(
                [
                    {"Variable": "$.w.c.v.Status", "StringEquals": status, "Next": broken}
                    for status in sorted(BROKEN)
                ],
                after_cluster,
            ),
        )
        pick = scope.add(
            info.label("the DB cluster"), pass_state({"v": Path("$.w.cl.all[0]")}, judge, result="$.w.c")
        )
        there = scope.add(
            info.label("DB cluster there?"),
            choice([{"Variable": "$.w.cl.n", "NumericEquals": 0, "Next": wait}], pick),
        )
        scope.put(
            check,
            task(
                "rds",
                "describeDBClusters",
                by_filter("db-cluster-id", info.v([info.params["target"]])),
                there,
                selector={"n": Path("States.ArrayLength($.DbClusters)"), "all": Path("$.DbClusters")},
                result="$.w.cl",
            ),
        )

    def _instances(self, info: StepInfo, scope: Scope, ids: list[str], outputs: str, wait: str) -> str:
        """The instances' half of a poll: created once the cluster is available (``$.w.made`` says
        they were), then judged from one describe of them all."""
        from drplan.actions.rds.lookup import BROKEN

        broken = scope.add(
            info.label("DB instance broken"),
            fail(formatted("DB instance {} is {}", "$.w.judge.broken", "$.w.judge.status")),
        )
        judged = scope.add(
            info.label("DB instances available?"),
            choice(
                [
                    {"Variable": "$.w.judge.broken", "IsPresent": True, "Next": broken},
                    {
                        "And": [
                            {"Variable": "$.w.judge.ready", "BooleanEquals": True},
                            {"Variable": "$.w.c.v.Status", "StringEquals": "available"},
                        ],
                        "Next": outputs,
                    },
                ],
                wait,
            ),
        )
        # In the order of the names: the first broken one is the one the local message names.
        status = "function($i){ $states.input.w.inst.all[DbInstanceIdentifier = $i].DbInstanceStatus }"
        verdict = (
            f"($st := {status}; $ids := $states.input.w.k.ids; "
            f"$b := $filter($ids, function($i){{ $st($i) in {json.dumps(sorted(BROKEN))} }})[0]; "
            "{'broken': $b, 'status': $exists($b) ? $st($b), "
            "'ready': $count($filter($ids, function($i){ $st($i) = 'available' })) = $count($ids)})"
        )
        judge = scope.add(
            info.label("judge DB instances"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": jsonata_set("judge", verdict),
                "Next": judged,
            },
        )
        describe = scope.add(
            info.label("describe DB instances"),
            task(
                "rds",
                "describeDBInstances",
                by_filter("db-instance-id", Path("$.w.k.ids")),
                judge,
                selector={"all": Path("$.DbInstances")},
                result="$.w.inst",
            ),
        )
        made = scope.add(
            info.label("DB instances created"), pass_state({"yes": True}, describe, result="$.w.made")
        )
        then = made
        for identifier in reversed(ids):
            then = scope.add(
                info.label(f"create DB instance {identifier.replace(RUN_ID_MARKER, 'RUN')}"),
                task(
                    "rds",
                    "createDBInstance",
                    {
                        "DbInstanceIdentifier": info.v(identifier),
                        "DbClusterIdentifier": Path("$.w.c.v.DbClusterIdentifier"),
                        "DbInstanceClass": info.v(info.params["instance_class"]),
                        "Engine": Path("$.w.c.v.Engine"),
                        "Tags": info.aws_tags(),
                    },
                    then,
                    result=None,
                ),
            )
        create = scope.add(
            info.label("create the DB instances?"),
            choice([{"Variable": "$.w.c.v.Status", "StringEquals": "available", "Next": then}], wait),
        )
        return scope.add(
            info.label("DB instances created?"),
            choice([{"Variable": "$.w.made", "IsPresent": True, "Next": describe}], create),
        )

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """``lookup.teardown_cluster`` until nothing is left: each round deletes the instances this
        step created (by their tags) that are not being deleted, then deletes the cluster when it is
        this step's and not being deleted; AWS refusing while another's instance is in it fails the
        undo with the local message once this step's instances are gone."""
        ids = self._ids(info.params)
        target = info.v(info.params["target"])
        gone = done(scope, info)
        not_ours = scope.add(info.label("undo: not created by this step"), {"Type": "Succeed"})
        round_ = scope.reserve(info.label("undo: this round"))
        start, wait = poll_loop(info, scope, "u", round_, undo_waits(info.options), "DB cluster deletion")
        going: dict[str, Any] | None = (
            {"Or": [{"Variable": f"$.w.ug.m{i}", "IsPresent": True} for i in range(1, len(ids) + 1)]}
            if ids
            else None
        )
        # The cluster.
        refused = scope.add(
            info.label("undo: others' DB instances"),
            fail(
                _message(
                    "DB cluster {} has DB instances drplan did not create ({}); not deleting them",
                    target,
                    Path("$.w.others"),
                )
            ),
        )
        stop = scope.add(
            info.label("undo: others' DB instances?"),
            choice(
                [
                    {
                        "And": [
                            {"Variable": "$.w.others", "IsPresent": True},
                            *([{"Not": going}] if going else []),
                        ],
                        "Next": refused,
                    }
                ],
                wait,
            ),
        )
        mine = "$filter($states.input.w.ug.ids, function($v, $i){ $lookup($states.input.w.ug, 'm' & $string($i + 1)) = true })"
        members = "$states.input.w.uc.v.DbClusterMembers.DbInstanceIdentifier"
        others = scope.add(
            info.label("undo: whose DB instances?"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": jsonata_set(
                    "others",
                    f"($mine := {mine}; $o := $filter({members}, function($m){{ $not($m in $mine) }}); "
                    "$count($o) > 0 ? $join($o, ', '))",
                ),
                "Next": stop,
            },
        )
        delete = scope.add(
            info.label("undo: delete DB cluster"),
            task(
                "rds",
                "deleteDBCluster",
                {"DbClusterIdentifier": target, "SkipFinalSnapshot": True},
                wait,
                result=None,
                catch=[
                    (["Rds.InvalidDbClusterStateException"], others),  # members left: whose?
                    (["Rds.DbClusterNotFoundException"], wait),
                ],
            ),
        )
        deleting = scope.add(
            info.label("undo: DB cluster deleting?"),
            choice([{"Variable": "$.w.uc.v.Status", "StringEquals": "deleting", "Next": wait}], delete),
        )
        check = ours(info, scope, "$.w.uc.v.TagList", deleting, not_ours)
        pick = scope.add(
            info.label("undo: the DB cluster"),
            pass_state({"v": Path("$.w.uc.all[0]")}, check, result="$.w.uc"),
        )
        left = (
            scope.add(info.label("undo: DB instances left?"), choice([{**going, "Next": wait}], gone))
            if going
            else gone
        )
        there = scope.add(
            info.label("undo: DB cluster there?"),
            choice([{"Variable": "$.w.uc.n", "NumericEquals": 0, "Next": left}], pick),
        )
        then = scope.add(
            info.label("undo: find DB cluster"),
            task(
                "rds",
                "describeDBClusters",
                by_filter("db-cluster-id", info.v([info.params["target"]])),
                there,
                selector={"n": Path("States.ArrayLength($.DbClusters)"), "all": Path("$.DbClusters")},
                result="$.w.uc",
            ),
        )
        # The instances, last first (each goes on to the next).
        for i in range(len(ids), 0, -1):
            then = self._undo_instance(info, scope, i, ids[i - 1], then)
        scope.put(round_, pass_state({"ids": info.v(ids)}, then, result="$.w.ug"))
        return start

    def _undo_instance(self, info: StepInfo, scope: Scope, i: int, identifier: str, then: str) -> str:
        """``removal.remove_db_instance`` of the ``i``-th instance, when this step created it:
        ``$.w.ug.m<i>`` says it was still there (being deleted)."""
        mark = scope.add(
            info.label(f"undo: DB instance {i} going"), pass_state({"yes": True}, then, result=f"$.w.ug.m{i}")
        )
        delete = scope.add(
            info.label(f"undo: delete DB instance {i}"),
            task(
                "rds",
                "deleteDBInstance",
                {
                    "DbInstanceIdentifier": info.v(identifier),
                    "SkipFinalSnapshot": True,
                    "DeleteAutomatedBackups": True,
                },
                mark,
                result=None,
                catch=[(["Rds.InvalidDbInstanceStateException"], mark)],  # not deletable yet: next round
            ),
        )
        deleting = scope.add(
            info.label(f"undo: DB instance {i} deleting?"),
            choice(
                [{"Variable": "$.w.ui.v.DbInstanceStatus", "StringEquals": "deleting", "Next": mark}], delete
            ),
        )
        check = ours(info, scope, "$.w.ui.v.TagList", deleting, then)
        pick = scope.add(
            info.label(f"undo: DB instance {i}"),
            pass_state({"v": Path("$.w.ui.all[0]")}, check, result="$.w.ui"),
        )
        there = scope.add(
            info.label(f"undo: DB instance {i} there?"),
            choice([{"Variable": "$.w.ui.n", "NumericEquals": 0, "Next": then}], pick),
        )
        return scope.add(
            info.label(f"undo: find DB instance {i}"),
            task(
                "rds",
                "describeDBInstances",
                by_filter("db-instance-id", info.v([identifier])),
                there,
                selector={"n": Path("States.ArrayLength($.DbInstances)"), "all": Path("$.DbInstances")},
                result="$.w.ui",
            ),
        )
