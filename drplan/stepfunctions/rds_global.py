"""RDS read replica promotion and Aurora global database failover and switchover in Amazon States
Language, call for call as the local actions (``drplan/actions/rds/promote.py`` and
``drplan/actions/rds/global_cluster.py``).

``aws.rds.promote_read_replica``: ``DescribeDBInstances`` (a missing instance, one that is no read
replica, or one replicating from anything but ``source_instance`` fails with the local message,
``source_instance`` matched as ``same_instance`` matches it, in a JSONata state), then
``PromoteReadReplica`` (a state fault: "RDS refused to promote ... now: AWS's message"), then
``DescribeDBInstances`` with the local intervals until the instance is standalone and
``available``, failing at once on a broken status or when it is gone; the outputs ``endpoint``,
``port``, ``arn``, ``instance_id``. No undo, as locally.

``aws.rds.switchover_global_cluster`` and ``aws.rds.failover_global_cluster``: the global
cluster and the target DB cluster are described and judged as ``GlobalClusterSwitch._situation``
judges them (a target ARN of another Region, a missing global database or DB cluster, a target
that is no member, no writer, a primary other than ``source_cluster``, a switch in progress: each
with the local message). A target that is the primary already is left alone (and its undo does
nothing). Otherwise the recovery point is recorded (a switchover: now, no data loss; a failover:
now less the secondary's latest ``AuroraGlobalDBReplicationLag`` from CloudWatch's
``ListMetrics``/``GetMetricStatistics`` over the last 10 minutes, read as the local ``_lag`` reads
it: any error of those calls means no lag), then the call, then ``DescribeGlobalClusters`` with the
local intervals until the target is the writer and no switch is in progress, and the target
``available``; a global cluster that shows no switch and another primary 2 minutes after the start
fails the step with the local message. DescribeGlobalClusters is matched by identifier ignoring
case and the members by ARN ignoring case, in JSONata states (JSONPath filters are refused by
statelint and do not lower-case).

The switchover's undo (a rollback, a drill's cleanup of a drill global database from
``drill_with``) is ``SwitchoverGlobalCluster.undo``/``poll_undo``: the primary from before the step
(read once before the step's first attempt and kept in its record, ``prev``) switched back to,
unless it is the primary again, then waited for.

Refused: the parameters that name or decide things from references (the messages name them and
the target's Region is judged when the plan is exported), and ``retries`` for the global cluster
steps: a later attempt of the local action re-attaches to the switch an earlier attempt asked for
(``ctx.memo`` remembers that it asked), while a state machine keeps nothing from a failed attempt.
"""

from __future__ import annotations

from typing import Any

from drplan.stepfunctions.builder import Path, Scope, State, Untranslatable, machine
from drplan.stepfunctions.tasks import (
    STEP_FAILED,
    StepInfo,
    Translation,
    choice,
    chosen_point,
    done,
    fail,
    jsonata_set,
    jsonata_text,
    pass_state,
    poll_loop,
    poll_waits,
    task,
    undo_waits,
)

#: What ``drplan.actions.rds.lookup.state_fault`` takes for RDS refusing in the current state, and
#: the global cluster's own (``_GLOBAL_FAULTS``), as Step Functions names them.
STATE_FAULTS = ["Rds.InvalidDbInstanceStateException", "Rds.InvalidDbClusterStateException"]
GLOBAL_FAULTS = ["Rds.InvalidGlobalClusterStateException"]
GLOBAL_NOT_FOUND = ["Rds.GlobalClusterNotFoundException"]
CLUSTER_NOT_FOUND = ["Rds.DbClusterNotFoundException"]
INSTANCE_NOT_FOUND = ["Rds.DbInstanceNotFoundException"]
#: AWS's message from an ``aws-sdk`` error's cause (which ends with `` (Service: Rds, ...)``).
_CUT = r"/ \(Service: [^,\)]*, Status Code: \d+, [^\)]*\)$/"
#: The Region the execution runs in (its ``aws-sdk`` calls go there): from the state machine's ARN.
REGION = "$split($states.context.StateMachine.Id, ':')[3]"


def _broken() -> list[str]:
    from drplan.actions.rds.lookup import BROKEN

    return sorted(BROKEN)


def jsonata_pass(output: str, then: str) -> State:
    return {"Type": "Pass", "QueryLanguage": "JSONata", "Output": output, "Next": then}


def jsonata_fail(expr: str) -> State:
    """A failure with the local message, worked out in JSONata."""
    return {"Type": "Fail", "QueryLanguage": "JSONata", "Error": STEP_FAILED, "Cause": "{% " + expr + " %}"}


def aws_message() -> str:
    """AWS's message of the error caught at ``$.w.error``, as ``drplan.aws.error_message`` gives it."""
    return f"$replace($states.input.w.error.Cause, {_CUT}, '')"


def _literal_text(translation: Translation, info: StepInfo, name: str) -> str | None:
    """A parameter the messages name: text known when the plan is exported."""
    translation.without_references(info, name)
    value = translation.literal(info, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Untranslatable(f"`{name}` must be text (it is {value!r})")
    return value


# --- aws.rds.promote_read_replica ------------------------------------------------------------------


class RdsPromoteReadReplica(Translation):
    action = "aws.rds.promote_read_replica"
    understood = frozenset({"instance", "source_instance", "backup_retention_days", "backup_window"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        for name in ("instance", "source_instance", "backup_window"):
            _literal_text(self, info, name)
        self.without_references(info, "backup_retention_days")
        days = self.literal(info, "backup_retention_days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int)):
            raise Untranslatable(f"`backup_retention_days` must be a whole number (it is {days!r})")

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        name = str(p["instance"])
        db = "$states.input.w.d.db"
        # --- after the call: wait until standalone and available, then the outputs -------------
        outputs = scope.add(
            info.label("outputs"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": "{% ($d := $states.input.w.r.db; {'endpoint': $exists($d.Endpoint.Address) ? "
                "$d.Endpoint.Address : null, 'port': $exists($d.Endpoint.Port) ? $d.Endpoint.Port : null, "
                "'arn': $exists($d.DbInstanceArn) ? $d.DbInstanceArn : null, "
                "'instance_id': $d.DbInstanceIdentifier}) %}",
                "End": True,
            },
        )
        vanished = scope.add(
            info.label("DB instance disappeared"),
            fail(Path("States.Format('DB instance {} disappeared', $.w.h.instance)")),
        )
        result = scope.add(
            info.label("describe the promoted DB instance"),
            task(
                "rds",
                "describeDBInstances",
                {"DbInstanceIdentifier": Path("$.w.h.instance")},
                outputs,
                selector={"db": Path("$.DbInstances[0]")},
                result="$.w.r",
                catch=[(INSTANCE_NOT_FOUND, vanished)],
            ),
        )
        check = scope.reserve(info.label("describe DB instance"))
        start, wait = poll_loop(
            info, scope, "p", check, poll_waits(info.options, info.estimate, info.timeout), "promotion"
        )
        gone = scope.add(
            info.label("DB instance gone during the promotion"),
            fail(Path("States.Format('DB instance {} disappeared during its promotion', $.w.h.instance)")),
        )
        broken = scope.add(
            info.label("DB instance broken"),
            fail(Path("States.Format('DB instance {} is {}', $.w.h.instance, $.w.p2.db.DbInstanceStatus)")),
        )
        judge = scope.add(
            info.label("standalone and available?"),
            choice(
                [
                    *(
                        {"Variable": "$.w.p2.db.DbInstanceStatus", "StringEquals": s, "Next": broken}
                        for s in _broken()
                    ),
                    {
                        "And": [
                            {
                                "Variable": "$.w.p2.db.ReadReplicaSourceDbInstanceIdentifier",
                                "IsPresent": True,
                            },
                            {"Variable": "$.w.p2.db.ReadReplicaSourceDbInstanceIdentifier", "IsString": True},
                            {
                                "Not": {
                                    "Variable": "$.w.p2.db.ReadReplicaSourceDbInstanceIdentifier",
                                    "StringEquals": "",
                                }
                            },
                        ],
                        "Next": wait,
                    },
                    {"Variable": "$.w.p2.db.DbInstanceStatus", "StringEquals": "available", "Next": result},
                ],
                wait,
            ),
        )
        scope.put(
            check,
            task(
                "rds",
                "describeDBInstances",
                {"DbInstanceIdentifier": Path("$.w.h.instance")},
                judge,
                selector={"db": Path("$.DbInstances[0]")},
                result="$.w.p2",
                catch=[(INSTANCE_NOT_FOUND, gone)],
            ),
        )
        # --- the call ---------------------------------------------------------------------------
        refused = scope.add(
            info.label("RDS refused to promote"),
            jsonata_fail(jsonata_text(f"RDS refused to promote {name} now: ") + " & " + aws_message()),
        )
        call: dict[str, Any] = {"DbInstanceIdentifier": name}
        if p.get("backup_retention_days") is not None:
            call["BackupRetentionPeriod"] = int(p["backup_retention_days"])
        if p.get("backup_window"):
            call["PreferredBackupWindow"] = str(p["backup_window"])
        promote = scope.add(
            info.label("promote"),
            task("rds", "promoteReadReplica", call, start, result=None, catch=[(STATE_FAULTS, refused)]),
        )
        handle = scope.add(
            info.label("what is promoted"),
            pass_state(
                {
                    "instance": Path("$.w.d.db.DbInstanceIdentifier"),
                    "source": Path("$.w.d.db.ReadReplicaSourceDbInstanceIdentifier"),
                },
                promote,
                result="$.w.h",
            ),
        )
        # --- before it: the local `_check` ------------------------------------------------------
        source = f"{db}.ReadReplicaSourceDbInstanceIdentifier"
        after_source = handle
        wanted = p.get("source_instance")
        if wanted:
            other = scope.add(
                info.label("replica of another source"),
                jsonata_fail(
                    jsonata_text(f"DB instance {name} is a replica of ")
                    + f" & {source} & "
                    + jsonata_text(f", not of {wanted}; not promoting it")
                ),
            )
            after_source = scope.add(
                info.label("replica of source_instance?"),
                {
                    "Type": "Choice",
                    "QueryLanguage": "JSONata",
                    "Choices": [
                        {"Condition": "{% " + _same_instance(str(wanted), source) + " %}", "Next": handle}
                    ],
                    "Default": other,
                },
            )
        not_replica = scope.add(
            info.label("not a read replica"),
            fail(
                f"DB instance {name} is not a read replica (promoted already, or a primary); nothing to promote"
            ),
        )
        replica = scope.add(
            info.label("a read replica?"),
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [
                    {
                        "Condition": "{% " + f"$exists({source}) and $boolean({source})" + " %}",
                        "Next": after_source,
                    }
                ],
                "Default": not_replica,
            },
        )
        missing = scope.add(info.label("no DB instance"), fail(f"DB instance {name} does not exist"))
        return scope.add(
            info.label("describe read replica"),
            task(
                "rds",
                "describeDBInstances",
                {"DbInstanceIdentifier": name},
                replica,
                selector={"db": Path("$.DbInstances[0]")},
                result="$.w.d",
                catch=[(INSTANCE_NOT_FOUND, missing)],
            ),
        )


def _ends_with(text: str, suffix: str) -> str:
    """JSONata: does the expression ``text`` end with the expression ``suffix``?"""
    return f"($length({text}) >= $length({suffix}) and $substring({text}, $length({text}) - $length({suffix})) = {suffix})"


def _same_instance(named: str, source: str) -> str:
    """``drplan.actions.rds.promote.same_instance(named, source)`` in JSONata, ``named`` known at
    export, ``source`` an expression."""
    a = named.lower()
    b = f"$lowercase({source})"
    if a.startswith("arn:"):
        suffix = f"(':db:' & {b})"
        other = f"($substring({b}, 0, 4) != 'arn:' and {_ends_with(jsonata_text(a), suffix)})"
    else:
        other = f"($substring({b}, 0, 4) = 'arn:' and {_ends_with(b, jsonata_text(':db:' + a))})"
    return f"({b} = {jsonata_text(a)} or {other})"


# --- Aurora global databases ---------------------------------------------------------------------


def _cluster_name(reference: str) -> str:
    from drplan.actions.rds.global_cluster import cluster_name

    return cluster_name(reference)


class _GlobalSwitch(Translation):
    """What the switchover and the failover share (``GlobalClusterSwitch``)."""

    understood = frozenset({"global_cluster", "target_cluster", "source_cluster"})
    verb = ""
    operation = ""
    #: The recovery point's words (a switchover's; the failover measures its own).
    point_words = ""

    def check(self, info: StepInfo) -> None:
        super().check(info)
        for name in self.understood:
            _literal_text(self, info, name)
        if info.step.retries:
            raise Untranslatable(
                f"`retries`: a later attempt of the local action re-attaches to the {self.verb} an "
                "earlier attempt asked for (it remembers that it asked), and a state machine keeps "
                "nothing from a failed attempt"
            )

    # --- shared states ------------------------------------------------------------------------

    def find_global(self, info: StepInfo, scope: Scope, tag: str, name: Any, then: str, missing: str) -> str:
        """``describe_global``: the global cluster named ``name`` (identifier ignoring case) at
        ``$.w.gc``; ``missing`` when AWS says it does not exist or does not list it."""
        present = scope.add(
            info.label(f"{tag}global database there?"),
            choice([{"Variable": "$.w.gc", "IsNull": True, "Next": missing}], then),
        )
        want = jsonata_text(name.lower()) if isinstance(name, str) else "$lowercase($states.input.w.h.name)"
        pick = scope.add(
            info.label(f"{tag}pick the global database"),
            jsonata_pass(
                "{% $merge([$states.input, {'w': $merge([$states.input.w, {'gc': ("
                f"$x := ($states.input.w.gall.GlobalClusters[$lowercase(GlobalClusterIdentifier) = {want}])[0]; "
                "$exists($x) ? $x : null)}])}]) %}",
                present,
            ),
        )
        return scope.add(
            info.label(f"{tag}describe global database"),
            task(
                "rds",
                "describeGlobalClusters",
                {"GlobalClusterIdentifier": name if isinstance(name, str) else Path("$.w.h.name")},
                pick,
                result="$.w.gall",
                catch=[(GLOBAL_NOT_FOUND, missing)],
            ),
        )

    @staticmethod
    def view(arn: str, source: str | None = None) -> str:
        """JSONata: the global cluster at ``$.w.gc`` as seen by the local action for the DB cluster
        ``arn`` (an expression): its name, whether ``arn`` is a member, the members, the writer, a
        switch in progress, and (``source`` given) whether its primary is another than ``source``."""
        body = (
            "$g := $states.input.w.gc; $m := $g.GlobalClusterMembers; "
            f"$a := $lowercase({arn}); $w := ($m[IsWriter = true])[0].DbClusterArn; "
            "$s := $g.FailoverState.Status; "
            "$busy := $exists($s) and $boolean($s); "
        )
        fields = (
            "'name': $g.GlobalClusterIdentifier, "
            "'member': $count($m[$lowercase(DbClusterArn) = $a]) > 0, "
            "'members': $count($m.DbClusterArn) > 0 ? $join($m.DbClusterArn, ', ') : 'none', "
            "'writer': $w, "
            "'shown': $exists($w) ? $w : 'no DB cluster', "
            "'is_writer': $exists($w) and $lowercase($w) = $a, "
            "'busy': $busy, 'status': $busy ? $s : null"
        )
        if source is not None:
            s = source.lower()
            if s.startswith("arn:"):
                same = f"$lowercase($w) = {jsonata_text(s)}"
            else:
                name = "($substring($w, 0, 4) = 'arn:' ? $substringAfter($w, ':cluster:') : $w)"
                same = f"$lowercase({name}) = {jsonata_text(s)}"
            fields += f", 'source_bad': $exists($w) and $lowercase($w) != $a and $not({same})"
        return "(" + body + "{" + fields + "})"

    def wait_for_writer(
        self,
        info: StepInfo,
        scope: Scope,
        tag: str,
        at: str,
        arn: str,
        since: str,
        wait: str,
        then: str,
        *,
        target: bool,
    ) -> None:
        """``_wait_for_writer`` at the reserved ``at``: ``then`` once ``arn`` (a JSONPath) is the
        writer with no switch in progress (and, ``target``, the target DB cluster available or
        gone); ``wait`` while not; the local failures. ``since``: where the start time is (absent:
        no grace)."""
        vanished = scope.add(
            info.label(f"{tag}global database disappeared"),
            fail(Path("States.Format('Aurora global database {} disappeared', $.w.h.name)")),
        )
        expr = arn.replace("$.", "$states.input.", 1)
        other = scope.add(
            info.label(f"{tag}not switched"),
            jsonata_fail(
                "'Aurora global database ' & $states.input.w.h.name & ' is not being switched, and its primary is ' "
                f"& $states.input.w.v.shown & ', not ' & {expr}"
            ),
        )
        since_expr = since.replace("$.", "$states.input.", 1)
        grace = scope.add(
            info.label(f"{tag}still within the grace?"),
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [
                    {
                        "Condition": "{% "
                        + f"$exists({since_expr}) and ($toMillis($states.context.State.EnteredTime) - "
                        + f"$toMillis({since_expr})) < {_grace_ms()}"
                        + " %}",
                        "Next": wait,
                    }
                ],
                "Default": other,
            },
        )
        finished = then
        if target:
            status = scope.add(
                info.label(f"{tag}target available?"),
                choice(
                    [
                        {"Variable": "$.w.tc.c.Status", "IsPresent": False, "Next": then},
                        {"Variable": "$.w.tc.c.Status", "StringEquals": "available", "Next": then},
                    ],
                    wait,
                ),
            )
            finished = scope.add(
                info.label(f"{tag}describe target DB cluster"),
                task(
                    "rds",
                    "describeDBClusters",
                    {"DbClusterIdentifier": Path("$.w.h.target")},
                    status,
                    selector={"c": Path("$.DbClusters[0]")},
                    result="$.w.tc",
                    catch=[(CLUSTER_NOT_FOUND, then)],
                ),
            )
        judge = scope.add(
            info.label(f"{tag}the writer?"),
            choice(
                [
                    {"Variable": "$.w.v.busy", "BooleanEquals": True, "Next": wait},
                    {"Variable": "$.w.v.is_writer", "BooleanEquals": False, "Next": grace},
                ],
                finished,
            ),
        )
        look = scope.add(
            info.label(f"{tag}look at the global database"),
            jsonata_pass(jsonata_set("v", self.view(expr)), judge),
        )
        scope.put(at, self._describe_by_handle(info, scope, tag, look, vanished))

    def _describe_by_handle(self, info: StepInfo, scope: Scope, tag: str, then: str, missing: str) -> State:
        first = self.find_global(info, scope, tag + "again: ", None, then, missing)
        return {"Type": "Pass", "Next": first}

    # --- the step ---------------------------------------------------------------------------------

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        name, wanted = str(p["global_cluster"]), str(p["target_cluster"])
        target_id = _cluster_name(wanted)
        source = p.get("source_cluster")

        # --- the outputs (the local `result`) -----------------------------------------------------
        outputs = scope.add(
            info.label("outputs"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": "{% ($t := $states.input.w.rc.c; $g := $states.input.w.gc; {"
                "'endpoint': $exists($t.Endpoint) ? $t.Endpoint : null, "
                "'reader_endpoint': $exists($t.ReaderEndpoint) ? $t.ReaderEndpoint : null, "
                "'port': $exists($t.Port) ? $t.Port : null, "
                "'cluster_arn': $t.DbClusterArn, 'cluster_id': $t.DbClusterIdentifier, "
                "'previous_primary_arn': $states.input.w.h.previous, "
                "'global_endpoint': $exists($g.Endpoint) ? $g.Endpoint : null"
                + self.extra_outputs()
                + "}) %}",
                "End": True,
            },
        )
        no_global = scope.add(
            info.label("result: no global database"),
            {"Type": "Pass", "Result": None, "ResultPath": "$.w.gc", "Next": outputs},
        )
        result_global = self.find_global(info, scope, "result: ", None, outputs, no_global)
        vanished = scope.add(
            info.label("target disappeared"),
            fail(Path("States.Format('DB cluster {} disappeared', $.w.h.target)")),
        )
        result = scope.add(
            info.label("result: describe target DB cluster"),
            task(
                "rds",
                "describeDBClusters",
                {"DbClusterIdentifier": Path("$.w.h.target")},
                result_global,
                selector={"c": Path("$.DbClusters[0]")},
                result="$.w.rc",
                catch=[(CLUSTER_NOT_FOUND, vanished)],
            ),
        )
        # --- the wait (the local `poll`) ----------------------------------------------------------
        check = scope.reserve(info.label("poll the global database"))
        start, wait = poll_loop(
            info, scope, "p", check, poll_waits(info.options, info.estimate, info.timeout), self.verb
        )
        self.wait_for_writer(info, scope, "", check, "$.w.h.arn", "$.w.h.started", wait, result, target=True)

        # --- the call -----------------------------------------------------------------------------
        refused = scope.add(
            info.label(f"RDS refused to {self.verb}"),
            jsonata_fail(
                jsonata_text(f"RDS refused to {self.verb} ")
                + " & $states.input.w.h.name & ' to ' & $states.input.w.h.arn & ' now: ' & "
                + aws_message()
            ),
        )
        call = scope.add(
            info.label(self.verb),
            task(
                "rds",
                self.operation,
                {
                    "GlobalClusterIdentifier": Path("$.w.h.name"),
                    "TargetDbClusterIdentifier": Path("$.w.h.arn"),
                    **self.call_extra(),
                },
                start,
                result=None,
                catch=[(STATE_FAULTS + GLOBAL_FAULTS, refused)],
            ),
        )
        point = self.record_point(info, scope, call)
        # --- before it: the local `start` ----------------------------------------------------------
        busy = scope.add(
            info.label("a switch in progress"),
            fail(
                Path(
                    "States.Format('Aurora global database {} is {} already; not starting another', "
                    "$.w.h.name, $.w.j.status)"
                )
            ),
        )
        decide = scope.add(
            info.label(f"{self.verb}?"),
            choice(
                [
                    {"Variable": "$.w.j.busy", "BooleanEquals": True, "Next": busy},
                    {"Variable": "$.w.j.is_writer", "BooleanEquals": True, "Next": start},  # nothing to do
                ],
                point,
            ),
        )
        handle = scope.add(
            info.label("the handle"),
            pass_state(
                {
                    "name": Path("$.w.j.name"),
                    "arn": Path("$.w.t.c.DbClusterArn"),
                    "target": Path("$.w.t.c.DbClusterIdentifier"),
                    "previous": Path("$.w.j.writer"),
                    "started": Path("$$.State.EnteredTime"),
                },
                decide,
                result="$.w.h",
            ),
        )
        rules: list[dict[str, Any]] = []
        not_member = scope.add(
            info.label("not a member"),
            jsonata_fail(
                "'DB cluster ' & $states.input.w.t.c.DbClusterArn & "
                + jsonata_text(f" is not a member of Aurora global database {name} (its members: ")
                + " & $states.input.w.j.members & ')'"
            ),
        )
        rules.append({"Variable": "$.w.j.member", "BooleanEquals": False, "Next": not_member})
        no_writer = scope.add(
            info.label("no writer"), fail(f"Aurora global database {name} has no writer DB cluster")
        )
        rules.append({"Variable": "$.w.j.writer", "IsPresent": False, "Next": no_writer})
        if source:
            other = scope.add(
                info.label("another primary"),
                jsonata_fail(
                    jsonata_text(f"the primary of Aurora global database {name} is ")
                    + " & $states.input.w.j.writer & "
                    + jsonata_text(f", not {source}; not going to {self.verb}")
                ),
            )
            rules.append({"Variable": "$.w.j.source_bad", "BooleanEquals": True, "Next": other})
        situation = scope.add(info.label("the situation"), choice(rules, handle))
        judge = scope.add(
            info.label("judge the situation"),
            jsonata_pass(
                jsonata_set(
                    "j", self.view("$states.input.w.t.c.DbClusterArn", str(source) if source else None)
                ),
                situation,
            ),
        )
        no_target = scope.add(
            info.label("no target DB cluster"),
            jsonata_fail(jsonata_text(f"DB cluster {target_id} does not exist in ") + f" & {REGION}"),
        )
        describe_target = scope.add(
            info.label("describe target DB cluster"),
            task(
                "rds",
                "describeDBClusters",
                {"DbClusterIdentifier": target_id},
                judge,
                selector={"c": Path("$.DbClusters[0]")},
                result="$.w.t",
                catch=[(CLUSTER_NOT_FOUND, no_target)],
            ),
        )
        no_global_db = scope.add(
            info.label("no global database"), fail(f"Aurora global database {name} does not exist")
        )
        first = self.find_global(info, scope, "", name, describe_target, no_global_db)
        from drplan.actions.rds.global_cluster import arn_region

        where = arn_region(wanted)
        if where is None:
            return first
        elsewhere = scope.add(
            info.label("target in another Region"),
            jsonata_fail(
                jsonata_text(f"DB cluster {wanted} is in {where}, but the step runs in ")
                + f" & {REGION} & "
                + jsonata_text(f'; give the step "region": "{where}" (the Region that becomes the primary)')
            ),
        )
        return scope.add(
            info.label("target in this Region?"),
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [
                    {"Condition": "{% " + f"{REGION} != {jsonata_text(where)}" + " %}", "Next": elsewhere}
                ],
                "Default": first,
            },
        )

    def extra_outputs(self) -> str:
        return ""

    def call_extra(self) -> dict[str, Any]:
        return {}

    def record_point(self, info: StepInfo, scope: Scope, then: str) -> str:
        """``_record_point``: the recovery point at ``$.w.best`` (``t``, and ``v.id``), said by a
        ``point`` state for followers of the history."""
        said = scope.add(info.label("recovery point"), chosen_point(info, "id", then))
        return scope.add(
            info.label("no data loss"),
            pass_state(
                {
                    "t": Path("$$.State.EnteredTime"),
                    "v": {"id": Path(f"States.Format('{{}} ({self.point_words})', $.w.h.name)")},
                },
                said,
                result="$.w.best",
            ),
        )


def _grace_ms() -> int:
    from drplan.actions.rds.global_cluster import GRACE

    return int(GRACE.total_seconds() * 1000)


class RdsSwitchoverGlobalCluster(_GlobalSwitch):
    action = "aws.rds.switchover_global_cluster"
    verb = "switch over"
    operation = "switchoverGlobalCluster"
    point_words = "switchover, no data loss"

    def remembers(self, info: StepInfo) -> bool:
        return True

    def remember(self, info: StepInfo, scope: Scope, then: str) -> str:
        """The primary before the step (the local ``first_seen``), the global database's name as AWS
        spells it and the target's ARN at ``$.w.prev``; a global database that is not there has
        nothing to switch back to (``{"none": true}``: the step then fails on it)."""
        name, target = str(info.params["global_cluster"]), _cluster_name(str(info.params["target_cluster"]))
        nothing = scope.add(
            info.label("before: no global database"), pass_state({"none": True}, then, result="$.w.prev")
        )
        keep = scope.add(
            info.label("before: keep the primary"),
            jsonata_pass(
                "{% ($g := $states.input.w.gc; $w := ($g.GlobalClusterMembers[IsWriter = true])[0].DbClusterArn; "
                "$merge([$states.input, {'w': $merge([$states.input.w, {'prev': "
                "{'name': $g.GlobalClusterIdentifier, 'writer': $w, 'target': $states.input.w.bt.c.DbClusterArn}"
                "}])}])) %}",
                then,
            ),
        )
        no_target = scope.add(
            info.label("before: no target DB cluster"), pass_state({}, keep, result="$.w.bt")
        )
        target_state = scope.add(
            info.label("before: describe target DB cluster"),
            task(
                "rds",
                "describeDBClusters",
                {"DbClusterIdentifier": target},
                keep,
                selector={"c": Path("$.DbClusters[0]")},
                result="$.w.bt",
                catch=[(CLUSTER_NOT_FOUND, no_target)],
            ),
        )
        return self.find_global(info, scope, "before: ", name, target_state, nothing)

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """``SwitchoverGlobalCluster.undo``/``poll_undo``: back to the primary from before the step
        unless the step changed nothing or it is the primary again, then waited for."""
        gone = done(scope, info)
        check = scope.reserve(info.label("undo: poll the global database"))
        start, wait = poll_loop(info, scope, "u", check, undo_waits(info.options), "undo: switch back")
        self.wait_for_writer(
            info, scope, "undo: ", check, "$.w.h.arn", "$.w.h.started", wait, gone, target=False
        )
        # A start time only when the call is made: `poll_undo` has no grace otherwise.
        call = scope.add(
            info.label("undo: switch back"),
            task(
                "rds",
                self.operation,
                {
                    "GlobalClusterIdentifier": Path("$.w.h.name"),
                    "TargetDbClusterIdentifier": Path("$.w.h.arn"),
                },
                start,
                result=None,
            ),
        )
        started_at = scope.add(
            info.label("undo: since the call"),
            pass_state(
                {
                    "name": Path("$.w.h.name"),
                    "arn": Path("$.w.h.arn"),
                    "started": Path("$$.State.EnteredTime"),
                },
                call,
                result="$.w.h",
            ),
        )
        back = scope.add(
            info.label("undo: the primary again?"),
            choice([{"Variable": "$.w.v.is_writer", "BooleanEquals": True, "Next": start}], started_at),
        )
        look = scope.add(
            info.label("undo: look at the global database"),
            jsonata_pass(jsonata_set("v", self.view("$states.input.w.h.arn")), back),
        )
        first = self.find_global(info, scope, "undo: ", None, look, start)
        handle = scope.add(
            info.label("undo: back to"),
            pass_state(
                {"name": Path("$.w.prev.name"), "arn": Path("$.w.prev.writer")}, first, result="$.w.h"
            ),
        )
        lost = scope.add(
            info.label("undo: previous primary unknown"),
            fail(
                f"the primary {info.key} replaced is not known (the run ended before writing its record): "
                f"check Aurora global database {info.params['global_cluster']} and switch it back by hand"
            ),
        )
        unchanged = scope.add(
            info.label("undo: did the step change anything?"),
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [
                    {
                        "Condition": "{% $not($exists($states.input.w.prev.target)) or "
                        "$lowercase($states.input.w.prev.writer) = $lowercase($states.input.w.prev.target) %}",
                        "Next": gone,
                    }
                ],
                "Default": handle,
            },
        )
        return scope.add(
            info.label("undo: what was the primary?"),
            choice(
                [
                    {"Variable": "$.w.prev.none", "IsPresent": True, "Next": gone},
                    {"Variable": "$.w.prev.writer", "IsPresent": True, "Next": unchanged},
                    {"Variable": "$.w.prev.name", "IsPresent": True, "Next": gone},  # no writer: failed
                ],
                lost,
            ),
        )


class RdsFailoverGlobalCluster(_GlobalSwitch):
    action = "aws.rds.failover_global_cluster"
    verb = "fail over"
    operation = "failoverGlobalCluster"

    def call_extra(self) -> dict[str, Any]:
        return {"AllowDataLoss": True}

    def extra_outputs(self) -> str:
        return ", 'replication_lag_seconds': $exists($states.input.w.lag.v) ? $states.input.w.lag.v : null"

    def record_point(self, info: StepInfo, scope: Scope, then: str) -> str:
        """``FailoverGlobalCluster._record_point``: the secondary's latest replication lag (any error
        reading it: none), and the recovery point that far back; no lag, no point."""
        from drplan.actions.rds.global_cluster import LAG_METRIC, LAG_WINDOW

        said = scope.add(info.label("recovery point"), chosen_point(info, "id", then))
        best = scope.add(
            info.label("the data the secondary has"),
            jsonata_pass(
                jsonata_set(
                    "best",
                    "{'t': $fromMillis($toMillis($states.context.State.EnteredTime) - "
                    "$round($states.input.w.lag.v * 1000)), 'v': {'id': $states.input.w.h.name & "
                    "' (failover, ' & $formatNumber($states.input.w.lag.v, '0.000') & 's replication lag)'}}",
                ),
                said,
            ),
        )
        measured = scope.add(
            info.label("lag reported?"),
            choice([{"Variable": "$.w.lag.v", "IsNull": True, "Next": then}], best),
        )
        latest = scope.add(
            info.label("latest lag"),
            jsonata_pass(
                jsonata_set(
                    "lag",
                    "($d := $append([], $states.input.w.pts.Datapoints); {'v': $count($d) = 0 ? null : "
                    "$reduce($d, function($a, $p) {$toMillis($p.Timestamp) > $toMillis($a.Timestamp) ? $p : $a})"
                    ".Maximum / 1000})",
                ),
                measured,
            ),
        )
        none = scope.add(info.label("no lag read"), pass_state({"v": None}, then, result="$.w.lag"))
        window = int(LAG_WINDOW.total_seconds() * 1000)
        each = scope.branch()
        get = each.add(
            info.label("lag statistics of a metric"),
            task(
                "cloudwatch",
                "getMetricStatistics",
                {
                    "Namespace": "AWS/RDS",
                    "MetricName": LAG_METRIC,
                    "Dimensions": Path("$.Dimensions"),
                    "StartTime": Path("$.StartTime"),
                    "EndTime": Path("$.EndTime"),
                    "Period": 60,
                    "Statistics": ["Maximum"],
                },
                None,
                result="$",
            ),
        )
        statistics = scope.add(
            info.label("lag datapoints"),
            {
                "Type": "Map",
                "ItemsPath": "$.w.lm.Metrics",
                "ItemSelector": {
                    "Dimensions.$": "$$.Map.Item.Value.Dimensions",
                    "StartTime.$": "$.w.win.start",
                    "EndTime.$": "$.w.win.end",
                },
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **machine(each, get)},
                "ResultPath": "$.w.pts",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.w.error", "Next": none}],
                "Next": latest,
            },
        )
        now = scope.add(
            info.label("lag window"),
            jsonata_pass(
                jsonata_set(
                    "win",
                    "($e := $states.context.State.EnteredTime; {'end': $e, 'start': "
                    f"$fromMillis($toMillis($e) - {window})}})",
                ),
                statistics,
            ),
        )
        return scope.add(
            info.label("lag metrics"),
            task(
                "cloudwatch",
                "listMetrics",
                {
                    "Namespace": "AWS/RDS",
                    "MetricName": LAG_METRIC,
                    "Dimensions": [
                        {"Name": "DBClusterIdentifier", "Value": Path("$.w.t.c.DbClusterIdentifier")}
                    ],
                },
                now,
                result="$.w.lm",
                catch=[(["States.ALL"], none)],
            ),
        )
