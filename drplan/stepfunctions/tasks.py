"""What each action does, in Amazon States Language: one :class:`Translation` per action.

A translation mirrors its action in :mod:`drplan.actions` call for call, through Step Functions'
``aws-sdk:`` service integrations: the same API calls with the same parameters, the same choice
of backup ("latest": the newest available one), the same wait for the job (describe, then wait
with the local engine's growing interval), the same outputs, and an undo that removes only what
the step created (checked by drplan's tags, as the local undo checks its handle). Where the local
action does something ASL's JSONPath cannot, the step is refused with the reason, never
approximated; the one exception is date arithmetic (``max_age``), which a single state writes in
JSONata, the other query language Step Functions runs (a state may choose it in a JSONPath machine).

Fragments follow the conventions of :mod:`drplan.stepfunctions.builder`: they read ``$.run`` and
``$.s``, keep their own data under ``$.w``, and end (``End``) with the step's outputs as their
whole output. A failure is a ``Fail`` state (``drplan.StepFailed`` with the local engine's message)
or the AWS error as Step Functions names it (``DynamoDb.ResourceNotFoundException``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from drplan.durations import humanize
from drplan.engine.records import RunOptions
from drplan.model import Mode, Step
from drplan.resources import Resource
from drplan.stepfunctions.builder import Path, Scope, State, Untranslatable, Values, goto, role, template

SDK = "arn:aws:states:::aws-sdk"

#: The errors each service throttles or fails transiently with, as Step Functions names them
#: (``<Service>.<exception>``): retried with backoff like the local engine's throttling waits.
TRANSIENT = {
    "dynamodb": [
        "DynamoDb.ThrottlingException",
        "DynamoDb.LimitExceededException",
        "DynamoDb.RequestLimitExceededException",
        "DynamoDb.InternalServerErrorException",
    ],
    "rds": ["Rds.ThrottlingException", "Rds.RdsException"],
    "ecs": ["Ecs.ThrottlingException", "Ecs.ServerException"],
    "autoscaling": ["AutoScaling.ThrottlingException", "AutoScaling.AutoScalingException"],
    # EC2 models no error shapes: Step Functions names every EC2 error Ec2.Ec2Exception, its code
    # only in the cause (a throttled call: "Request limit exceeded. (Service: Ec2, Status Code:
    # 503 ...)"). A Retry cannot look at the cause, so every EC2 error is retried, briefly
    # (UNNAMED_RETRY): throttling gets a minute of backoff, a permanent error surfaces as itself
    # a minute late.
    "ec2": ["Ec2.Ec2Exception"],
    "route53": [
        "Route53.ThrottlingException",
        "Route53.PriorRequestNotCompleteException",
        "Route53.Route53Exception",
    ],
}

#: Services whose errors all carry one name (their API models no error shapes): their transient
#: errors cannot be told from the others, so all are retried, a few times only.
UNNAMED = frozenset({"ec2"})
UNNAMED_RETRY = {"IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 5, "JitterStrategy": "FULL"}

#: The local engine's throttling backoff (``RunOptions.backoff_base``/``backoff_max``), as ASL Retry.
_OPTIONS = RunOptions()
THROTTLE_RETRY = {
    "IntervalSeconds": int(_OPTIONS.backoff_base),
    "BackoffRate": 2.0,
    "MaxDelaySeconds": int(_OPTIONS.backoff_max),
    "MaxAttempts": 40,  # the step's timeout ends it sooner: it races the step (see asl.py)
    "JitterStrategy": "FULL",
}

STEP_FAILED = "drplan.StepFailed"


@dataclass(frozen=True)
class ApprovalTopic:
    """Where ``manual`` steps ask for approval (:mod:`drplan.stepfunctions.approval`): the SNS topic
    the stack creates, by name (its ARN is worked out at run time from the execution's), the plan's
    name and its contacts by role (``name <contact>``), for the message."""

    name: str
    plan: str
    contacts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepInfo:
    """What a translation knows about its step: everything the local engine's context gives."""

    key: str
    sid: str
    step: Step
    params: Mapping[str, Any]  # prepared for the mode: drill_with merged, names isolated (marker run id)
    mode: Mode
    values: Values
    tags: Mapping[str, Any]  # the run's tags (values may be Paths: run id, creation time)
    estimate: float
    timeout: float
    options: RunOptions = field(default_factory=RunOptions)  # polling and retry timings (tests shorten them)
    approvals: ApprovalTopic | None = None  # where manual steps ask for approval
    max_age: float | None = None  # seconds: ``max_age`` resolved (``rpo``: the service's RPO)
    checks_function: str = ""  # the Lambda function checks try with (drplan.stepfunctions.checks)
    rollback: bool = False  # a recovery that rolls back when a step fails (--rollback-on-failure)

    def v(self, value: Any) -> Any:
        return self.values.of(value)

    def label(self, what: str) -> str:
        return f"{self.key} {what}"

    def aws_tags(self) -> list[dict[str, Any]]:
        """``drplan.actions._aws.aws_tags``: the run's tags, the step's ``tags``, ``drplan:step``."""
        merged: dict[str, Any] = {
            **self.tags,
            **{k: self.v(v) for k, v in self.params.get("tags", {}).items()},
        }
        merged["drplan:step"] = self.key
        return [template({"Key": k, "Value": merged[k]}) for k in sorted(merged)]


def poll_waits(
    options: RunOptions,
    estimate: float,
    timeout: float,
    *,
    initial: float | None = None,
    cap: float | None = None,
) -> list[int]:
    """The local engine's polling intervals (``StepDriver._watch``: from ``poll_initial``, times
    ``poll_factor``, up to ``min(poll_max, max(15, estimate / 15))``), in whole seconds, up to the
    first one at the cap: polling loops stay at the last interval from then on."""
    opts = options
    interval = opts.poll_initial if initial is None else initial
    top = min(opts.poll_max, max(15.0, estimate / 15)) if cap is None else cap
    out: list[int] = []
    while True:
        out.append(max(1, math.floor(interval + 0.5)))
        if interval >= top or sum(out) >= timeout:
            return out
        interval = min(interval * opts.poll_factor, top)


def undo_waits(options: RunOptions) -> list[int]:
    """Undo verifies deletions as the local Undoer does: from at most 5 s, growing to 15 s."""
    return poll_waits(
        options,
        0,
        options.undo_timeout,
        initial=min(options.poll_initial, 5.0),
        cap=min(15.0, options.poll_max),
    )


# --- small state builders --------------------------------------------------------------------------


def task(
    service: str,
    action: str,
    parameters: Mapping[str, Any],
    then: str | None,
    *,
    selector: Mapping[str, Any] | None = None,
    result: str | None = None,
    catch: Sequence[tuple[Sequence[str], str]] = (),
    retry: bool = True,
) -> State:
    """An ``aws-sdk`` Task: ``service:action`` with ``parameters`` (a payload template), its result
    (after ``selector``) at ``result`` (None: discarded), transient errors retried, ``catch`` as
    (error names, state) pairs with the error at ``$.w.error``."""
    state: State = {
        "Type": "Task",
        "Resource": f"{SDK}:{service}:{action}",
        "Parameters": template(parameters),
        "ResultPath": result,
    }
    if selector is not None:
        state["ResultSelector"] = template(selector)
    if retry and service in TRANSIENT:
        backoff = UNNAMED_RETRY if service in UNNAMED else THROTTLE_RETRY
        state["Retry"] = [{"ErrorEquals": TRANSIENT[service], **backoff}]
    if catch:
        state["Catch"] = [
            {"ErrorEquals": list(errors), "ResultPath": "$.w.error", "Next": target}
            for errors, target in catch
        ]
    return goto(state, then)


def pass_state(parameters: Mapping[str, Any], then: str | None, *, result: str | None = "$") -> State:
    state: State = {"Type": "Pass", "Parameters": template(parameters)}
    if result != "$":
        state["ResultPath"] = result
    return goto(state, then)


def choice(rules: Sequence[Mapping[str, Any]], default: str) -> State:
    return {"Type": "Choice", "Choices": list(rules), "Default": default}


def fail(cause: str | Path, error: str = STEP_FAILED) -> State:
    """A failure with the local engine's message (``cause``: static text, or computed)."""
    if isinstance(cause, Path):
        return {"Type": "Fail", "Error": error, "CausePath": cause.expr}
    return {"Type": "Fail", "Error": error, "Cause": cause}


def poll_loop(
    info: StepInfo, scope: Scope, slot: str, check: str, waits: Sequence[int], what: str
) -> tuple[str, str]:
    """The waiting half of a polling loop: (start, wait). ``start`` sets the interval sequence up and
    goes to ``check``; ``wait`` waits the current interval, moves to the next one (staying at the
    last), then goes to ``check`` again."""
    wait = scope.reserve(info.label(f"wait ({what})"))
    capped = scope.reserve(info.label(f"longest interval? ({what})"))
    bump = scope.add(
        info.label(f"next interval ({what})"),
        pass_state(
            {
                "i": Path(f"States.MathAdd($.w.{slot}.i, 1)"),
                "d": Path(f"States.ArrayGetItem($.w.{slot}.seq, States.MathAdd($.w.{slot}.i, 1))"),
                "seq": Path(f"$.w.{slot}.seq"),
            },
            check,
            result=f"$.w.{slot}",
        ),
    )
    scope.put(wait, {"Type": "Wait", "SecondsPath": f"$.w.{slot}.d", "Next": capped})
    scope.put(
        capped,
        choice(
            [{"Variable": f"$.w.{slot}.i", "NumericGreaterThanEquals": len(waits) - 1, "Next": check}], bump
        ),
    )
    start = scope.add(
        info.label(f"poll ({what})"),
        pass_state({"i": 0, "d": waits[0], "seq": list(waits)}, check, result=f"$.w.{slot}"),
    )
    return start, wait


def newest(
    info: StepInfo,
    scope: Scope,
    *,
    what: str,
    service: str,
    action: str,
    parameters: Mapping[str, Any],
    items: str,
    token_out: str,
    token_in: str,
    status: tuple[str, str],
    created: Sequence[str],
    missing: str,
    then: str,
    point: str | None = None,
) -> str:
    """``drplan.actions._aws.newest`` over every page of a list call: the item with the latest
    creation time among those whose ``status`` field has the wanted value, kept at ``$.w.best.v``.
    ``created`` lists the creation-time fields in order of preference (a copied RDS snapshot keeps
    its original time). ASL cannot sort, so this is a loop: about three transitions per item.
    ``point`` names the item's field that identifies the recovery point, as the local action
    records it: the state that finds the choice says so (``drplan:point KEY FIELD``), so the
    evidence of an execution measures the RPO from its history."""
    first = scope.reserve(info.label(f"list {what}"))
    again = scope.reserve(info.label(f"list more {what}"))
    count = scope.reserve(info.label(f"count {what}"))
    more = scope.reserve(info.label(f"more {what}?"))
    item = scope.reserve(info.label(f"next {what}"))
    usable = scope.reserve(info.label(f"usable {what}?"))
    newer = scope.reserve(info.label(f"newer {what}?"))
    take = scope.reserve(info.label(f"take {what}"))
    paged = scope.reserve(info.label(f"more pages of {what}?"))
    found = scope.reserve(info.label(f"found {what}?"))
    scope.put(first, task(service, action, parameters, count, result="$.w.page"))
    scope.put(
        again,
        task(
            service, action, {**parameters, token_in: Path(f"$.w.page.{token_out}")}, count, result="$.w.page"
        ),
    )
    scope.put(
        count,
        pass_state({"i": 0, "n": Path(f"States.ArrayLength($.w.page.{items})")}, more, result="$.w.scan"),
    )
    scope.put(
        more, choice([{"Variable": "$.w.scan.i", "NumericLessThanPath": "$.w.scan.n", "Next": item}], paged)
    )
    scope.put(
        item,
        pass_state(
            {
                "i": Path("States.MathAdd($.w.scan.i, 1)"),
                "n": Path("$.w.scan.n"),
                "v": Path(f"States.ArrayGetItem($.w.page.{items}, $.w.scan.i)"),
            },
            usable,
            result="$.w.scan",
        ),
    )
    field_name, wanted = status
    skip_unusable = {"Not": {"Variable": f"$.w.scan.v.{field_name}", "StringEquals": wanted}, "Next": more}
    if len(created) == 1:
        # One creation-time field: look at the item itself, no candidate state (fewer transitions).
        (name,) = created
        scope.put(
            usable,
            choice(
                [
                    skip_unusable,
                    {"Variable": f"$.w.scan.v.{name}", "IsPresent": False, "Next": more},
                    {"Variable": "$.w.best", "IsPresent": False, "Next": take},
                    {
                        "Variable": f"$.w.scan.v.{name}",
                        "TimestampGreaterThanPath": "$.w.best.t",
                        "Next": take,
                    },
                ],
                more,
            ),
        )
        pick = {"t": Path(f"$.w.scan.v.{name}"), "v": Path("$.w.scan.v")}
        scope.put(take, pass_state(pick, more, result="$.w.best"))
        scope.states.pop(newer, None)
    else:
        rules: list[dict[str, Any]] = [skip_unusable]
        for name in created:
            candidate = scope.add(
                info.label(f"candidate {what} ({name})"),
                pass_state(
                    {"t": Path(f"$.w.scan.v.{name}"), "v": Path("$.w.scan.v")}, newer, result="$.w.cand"
                ),
            )
            rules.append({"Variable": f"$.w.scan.v.{name}", "IsPresent": True, "Next": candidate})
        scope.put(usable, choice(rules, more))  # no creation time: never the newest (as locally)
        scope.put(
            newer,
            choice(
                [
                    {"Variable": "$.w.best", "IsPresent": False, "Next": take},
                    {"Variable": "$.w.cand.t", "TimestampGreaterThanPath": "$.w.best.t", "Next": take},
                ],
                more,
            ),
        )
        scope.put(
            take, pass_state({"t": Path("$.w.cand.t"), "v": Path("$.w.cand.v")}, more, result="$.w.best")
        )
    scope.put(paged, choice([{"Variable": f"$.w.page.{token_out}", "IsPresent": True, "Next": again}], found))
    missing_state = scope.add(info.label(f"no {what}"), fail(missing))
    found_state = choice([{"Variable": "$.w.best", "IsPresent": True, "Next": then}], missing_state)
    scope.put(found, role(found_state, "point", f"{info.key} {point}") if point else found_state)
    return first


#: The ``point`` field of a point-in-time restore: its recovery point is named after the source and
#: the moment (``SOURCE@ISO-TIME``, as the local action names it), not by a field AWS returns.
POINT_IN_TIME = "@source"


def chosen_point(info: StepInfo, field_name: str, then: str) -> State:
    """A Pass state that says, for followers of the history, that the recovery point is chosen and
    kept at ``$.w.best`` (``t``: its time, ``v``: what identifies it by ``field_name``)."""
    return role({"Type": "Pass", "Next": then}, "point", f"{info.key} {field_name}")


def fresh_enough(
    info: StepInfo, scope: Scope, what: str, then: str, taken: str = "$states.input.w.best.t"
) -> str:
    """``drplan.actions._aws.require_fresh`` for the chosen recovery point: older than ``max_age``
    when the run started fails the step with the local message, before anything is restored.
    ``what`` names it and ``taken`` is when it was taken, both JSONata expressions. JSONPath
    compares timestamps but cannot subtract them, so these two states are JSONata."""
    if info.max_age is None:
        return then
    age = f"($toMillis($states.input.run.created) - $toMillis({taken})) / 1000"
    limit = info.max_age
    old = jsonata_humanize(f"$max([{age}, 0])")
    too_old = scope.add(
        info.label("recovery point too old"),
        {
            "Type": "Fail",
            "QueryLanguage": "JSONata",
            "Error": STEP_FAILED,
            "Cause": "{% "
            + f"{what} & ' is ' & {old} & ' old, older than the allowed {humanize(limit)} (max_age); "
            + "nothing restored' %}",
        },
    )
    return scope.add(
        info.label("recovery point young enough?"),
        {
            "Type": "Choice",
            "QueryLanguage": "JSONata",
            "Choices": [{"Condition": "{% " + f"{age} > {_number(limit)}" + " %}", "Next": too_old}],
            "Default": then,
        },
    )


def jsonata_set(slot: str, expr: str) -> str:
    """A JSONata ``Output`` that is the state's input with ``w.<slot>`` set to ``expr`` (JSONata
    states have no ``ResultPath``: the whole document is written back)."""
    return "{% $merge([$states.input, {'w': $merge([$states.input.w, {'" + slot + "': (" + expr + ")}])}]) %}"


def jsonata_text(text: str) -> str:
    """A JSONata string literal."""
    return json.dumps(text)


def jsonata_humanize(seconds: str) -> str:
    """:func:`drplan.durations.humanize` as a JSONata expression of ``seconds`` (an expression):
    the same text for the same number (``$round`` rounds half to even, as Python's ``round``)."""
    whole = "$w := $round($s); $d := $floor($w / 86400); $h := $floor(($w % 86400) / 3600); "
    whole += "$m := $floor(($w % 3600) / 60); $x := $w % 60; "
    parts = (
        "$join([$d > 0 ? $string($d) & 'd', $h > 0 ? $string($h) & 'h', $m > 0 ? $string($m) & 'm', "
        "($x > 0 and $d = 0 and $h = 0) ? $string($x) & 's'], ' ')"
    )
    short = "($s > 0 and $s < 10 ? $formatNumber($round($s, 1), '0.0') : $string($round($s))) & 's'"
    return f"($s := {seconds}; $s < 60 ? {short} : ({whole}{parts}))"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def ours(info: StepInfo, scope: Scope, tags: str, then: str, otherwise: str) -> str:
    """Go to ``then`` when the tag list at ``tags`` says this step of this run created the resource
    (``drplan.actions.rds.lookup.ours``), to ``otherwise`` when not: undo never touches anything else.
    Whole tags are looked up (``States.ArrayContains`` of a Key/Value object), not filtered by key:
    a JSONPath filter that matches nothing is an error in some interpreters."""
    check = scope.reserve(info.label("ours?"))
    contains = scope.add(
        info.label("look for our tags"),
        pass_state(
            {
                "run": Path(f"States.ArrayContains({tags}, $.w.want.run)"),
                "step": Path(f"States.ArrayContains({tags}, $.w.want.step)"),
            },
            check,
            result="$.w.ours",
        ),
    )
    start = scope.add(
        info.label("our tags"),
        pass_state(
            {
                "run": {"Key": "drplan:run-id", "Value": Path("$.run.id")},
                "step": {"Key": "drplan:step", "Value": info.key},
            },
            contains,
            result="$.w.want",
        ),
    )
    scope.put(
        check,
        choice(
            [
                {
                    "And": [
                        {"Variable": "$.w.ours.run", "BooleanEquals": True},
                        {"Variable": "$.w.ours.step", "BooleanEquals": True},
                    ],
                    "Next": then,
                }
            ],
            otherwise,
        ),
    )
    return start


def done(scope: Scope, info: StepInfo, what: str = "undone") -> str:
    return scope.add(info.label(what), {"Type": "Succeed"})


def _arn_name(value: Any) -> str:
    """A name for an ARN: the run id and references, known only at run time, become ``*``."""
    import re

    from drplan.iam import RUN_ID_MARKER

    return re.sub(r"\*+", "*", re.sub(r"\$\{[^}]*\}", "*", str(value)).replace(RUN_ID_MARKER, "*"))


# --- translations ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Translation:
    """How one action runs in a state machine. Subclasses set ``action`` and build fragments."""

    action: ClassVar[str]
    #: Parameters the translation understands; any other one in ``with`` refuses the step.
    understood: ClassVar[frozenset[str]] = frozenset()
    #: Seconds the step's timer waits beyond its timeout: a fragment that times itself out (an
    #: approval's TimeoutSeconds) ends with its own message rather than the timer's.
    timer_grace: ClassVar[int] = 0
    #: Whether the step polls a job until it ends (each poll writes history events; a step that
    #: only waits or calls once does not): what an execution's worst-case history counts.
    polls: ClassVar[bool] = True

    def check(self, info: StepInfo) -> None:
        """Raise :class:`Untranslatable` for what this translation does not do (yet)."""
        unknown = sorted(set(info.params) - self.understood)
        if unknown:
            raise Untranslatable(f"parameter(s) {', '.join(unknown)} not translated yet")

    def waits(self, info: StepInfo) -> list[int] | None:
        """The intervals the step polls at (the last one repeated until its timeout), or None when
        it does not poll: what its worst-case history counts."""
        return poll_waits(info.options, info.estimate, info.timeout) if self.polls else None

    def remembers(self, info: StepInfo) -> bool:
        """Whether the undo puts back a value read before the step changed it (:meth:`remember`)."""
        return False

    def remember(self, info: StepInfo, scope: Scope, then: str) -> str:
        """States that read what the undo puts back, once, before the step's first attempt (the
        local ``StepContext.first_seen``), into ``$.w.prev``, when :meth:`remembers`. The step's
        record keeps it (``prev``), so a drill's cleanup or a rollback has it too."""
        raise NotImplementedError

    def work(self, info: StepInfo, scope: Scope) -> str:
        raise NotImplementedError

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """The first state of the undo (ends with ``End`` or ``Succeed``), or None: nothing to undo."""
        return None

    def created(
        self, params: Mapping[str, Any], outputs: Mapping[str, Any], mode: Mode, region: str | None
    ) -> list[Resource]:
        """What a step that succeeded with ``outputs`` created, as the local action records it (the
        evidence's cleanup proof lists it); ``params`` as prepared for the run."""
        return []

    def extra_iam(self, params: Mapping[str, Any], arn: str) -> list[tuple[str, str]]:
        """(IAM action, resource ARN) the fragments need beyond the action's own ``iam`` list.
        ``arn`` is the ARN prefix with ``{service}`` to fill in; ``params`` use the IAM policy's
        run-id marker, written ``*`` in ARNs."""
        return []

    def without_references(self, info: StepInfo, *names: str) -> None:
        """Parameters the fragment needs as text when the plan is exported: no ``${...}`` (a drill
        name's run id is fine: the execution fills it in)."""
        for name in names:
            value = info.params.get(name)
            if value is not None and "${" in str(value):
                raise Untranslatable(f"`{name}` must be known when the plan is exported (it is {value!r})")

    def literal(self, info: StepInfo, name: str) -> Any:
        """A parameter that decides what the fragment looks like: it must be known at export time."""
        value = info.params.get(name)
        if value is not None and Values({}).of(value) != value:
            raise Untranslatable(f"`{name}` must be known when the plan is exported (it is {value!r})")
        return value


class WaitStep(Translation):
    action = "wait"
    understood = frozenset({"duration", "reason"})
    polls = False  # one Wait state

    def work(self, info: StepInfo, scope: Scope) -> str:
        from drplan.durations import parse_duration

        seconds = parse_duration(str(info.params.get("duration", "PT0S"))).total_seconds()
        outputs = scope.add(info.label("done"), {"Type": "Pass", "Result": {}, "End": True})
        return scope.add(info.label("wait"), {"Type": "Wait", "Seconds": math.ceil(seconds), "Next": outputs})


# --- DynamoDB ----------------------------------------------------------------------------------------


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
        name = info.v(info.params["target"])
        gone = done(scope, info)
        describe = scope.reserve(info.label("undo: describe table"))
        start, wait = poll_loop(info, scope, "u", describe, undo_waits(info.options), "table deletion")
        delete = scope.reserve(info.label("undo: delete table"))
        deleting = scope.reserve(info.label("undo: deleting?"))
        tags = scope.reserve(info.label("undo: table tags"))
        not_ours = scope.add(info.label("undo: not created by this step"), {"Type": "Succeed"})
        scope.put(
            describe,
            task(
                "dynamodb",
                "describeTable",
                {"TableName": name},
                deleting,
                selector={"status": Path("$.Table.TableStatus"), "arn": Path("$.Table.TableArn")},
                result="$.w.desc",
                catch=[(["DynamoDb.ResourceNotFoundException"], gone)],
            ),
        )
        scope.put(
            deleting,
            choice([{"Variable": "$.w.desc.status", "StringEquals": "DELETING", "Next": wait}], tags),
        )
        check = ours(info, scope, "$.w.tags.Tags", delete, not_ours)
        scope.put(
            tags,
            task(
                "dynamodb",
                "listTagsOfResource",
                {"ResourceArn": Path("$.w.desc.arn")},
                check,
                result="$.w.tags",
            ),
        )
        scope.put(
            delete,
            task(
                "dynamodb",
                "deleteTable",
                {"TableName": name},
                wait,
                result=None,
                catch=[
                    (["DynamoDb.ResourceNotFoundException"], gone),
                    (["DynamoDb.ResourceInUseException"], wait),  # still CREATING: try again
                ],
            ),
        )
        return start


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


# --- RDS ---------------------------------------------------------------------------------------------


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


# --- Route 53 -----------------------------------------------------------------------------------------

#: Longest zone name (in labels) whose records the exporter can name without their trailing dot.
MAX_ZONE_LABELS = 8


def _text(value: Any) -> Any:
    """A record value is text (the local action writes ``str(value)``): a whole reference to a
    number is formatted as one."""
    if isinstance(value, Path) and value.expr.startswith("$."):
        return Path(f"States.Format('{{}}', {value.expr})")
    return value


class Route53ChangeRecord(Translation):
    action = "aws.route53.change_record"
    understood = frozenset({"zone_id", "name", "type", "ttl", "values", "wait"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.without_references(info, "zone_id", "name", "type", "ttl", "wait")
        if not info.params.get("values"):
            raise Untranslatable("only records with `values` are translated (not `alias`)")

    def remembers(self, info: StepInfo) -> bool:
        return info.mode == "recover"  # a drill creates its own record: its undo deletes it

    def remember(self, info: StepInfo, scope: Scope, then: str) -> str:
        """A recovery's undo puts back the record set the step replaced (or deletes the record when
        there was none), as the local action does from its memo: read before the first attempt."""
        kept = scope.add(
            info.label("before: keep the record set"),
            pass_state({"rr": Path("$.w.cur.v")}, then, result="$.w.prev"),
        )
        none = scope.add(
            info.label("before: no record set"), pass_state({"none": True}, then, result="$.w.prev")
        )
        listed = self._current(info, scope, kept, none, tag="before: ")
        return self._names(info, scope, listed, tag="before: ")

    def created(
        self, params: Mapping[str, Any], outputs: Mapping[str, Any], mode: Mode, region: str | None
    ) -> list[Resource]:
        """A drill's record (it refuses one that exists, so it created it). A recovery may have
        changed a record that was there: like the local action, it claims nothing it cannot know."""
        from drplan.actions.route53.record import bare_zone_id

        if mode != "drill" or not outputs.get("fqdn"):
            return []
        zone, kind, fqdn = bare_zone_id(params["zone_id"]), str(params.get("type", "CNAME")), outputs["fqdn"]
        return [
            Resource(
                "route53:record",
                f"{zone}/{fqdn}/{kind}",
                region,
                extra={"zone_id": zone, "name": f"{fqdn}.", "type": kind},
            )
        ]

    # The record's absolute name, as ``fqdn_in_zone``: the zone's name is only known once read, so
    # each zone the name could be in is a Choice rule (a name ending with it is absolute); any
    # other zone is appended to a relative name.

    def _names(
        self, info: StepInfo, scope: Scope, then: str, undo: str | None = None, tag: str | None = None
    ) -> str:
        from drplan.actions.route53.record import bare_zone_id

        raw = str(info.params["name"]).strip()
        short = raw.rstrip(".").lower()
        tag = tag if tag is not None else ("undo: " if undo else "")
        labels = short.split(".") if short not in ("", "@") else []
        candidates = [".".join(labels[i:]) for i in range(len(labels))]
        candidates = [c for c in candidates if "r0u1n2i3" not in c]
        same = scope.add(
            info.label(f"{tag}name in zone"),
            pass_state({"dot": info.v(f"{short}."), "bare": info.v(short)}, then, result="$.w.name"),
        )
        rules: list[dict[str, Any]] = [
            {"Variable": "$.w.zone.name", "StringEquals": f"{c}.", "Next": same} for c in candidates
        ]
        if short in ("", "@"):
            apex = scope.add(
                info.label(f"{tag}zone apex"),
                pass_state(
                    {"dot": Path("$.w.zone.name"), "bare": Path("$.w.zone.name")}, then, result="$.w.name"
                ),
            )
            default = apex
        elif raw.endswith("."):
            default = scope.add(
                info.label(f"{tag}name outside zone"),
                fail(Path(f"States.Format('{raw} is not in hosted zone {{}}', $.w.zone.name)")),
            )
        else:
            default = self._appended(info, scope, short, then, tag)
        decide = scope.add(info.label(f"{tag}absolute name?"), choice(rules, default))
        zone_id = bare_zone_id(info.params["zone_id"])
        return scope.add(
            info.label(f"{tag}hosted zone"),
            task(
                "route53",
                "getHostedZone",
                {"Id": zone_id},
                decide,
                selector={"name": Path("$.HostedZone.Name")},
                result="$.w.zone",
                # Undo: the zone is gone, and the record with it.
                catch=[(["Route53.NoSuchHostedZoneException"], undo)] if undo else (),
            ),
        )

    def _appended(self, info: StepInfo, scope: Scope, short: str, then: str, tag: str) -> str:
        """``short.<zone>.``, and the same without its trailing dot (the ``fqdn`` output): the zone's
        labels joined again, for zones of up to :data:`MAX_ZONE_LABELS` labels."""
        split = "States.StringSplit($.w.zone.name, '.')"
        rules = []
        for n in range(1, MAX_ZONE_LABELS + 1):
            joined = ".".join(["{}"] * n)
            items = ", ".join(f"States.ArrayGetItem($.w.zone.labels, {i})" for i in range(n))
            build = scope.add(
                info.label(f"{tag}name with a {n}-label zone"),
                pass_state(
                    {
                        "dot": Path("States.Format('{}.{}', $.w.zone.short, $.w.zone.name)"),
                        "bare": Path(f"States.Format('{{}}.{joined}', $.w.zone.short, {items})"),
                    },
                    then,
                    result="$.w.name",
                ),
            )
            rules.append({"Variable": "$.w.zone.n", "NumericEquals": n, "Next": build})
        too_long = scope.add(
            info.label(f"{tag}zone name too long"),
            fail(
                f"zone names of more than {MAX_ZONE_LABELS} labels are not supported by the exported state machine"
            ),
        )
        count = scope.add(info.label(f"{tag}zone labels"), choice(rules, too_long))
        # Step Functions may keep an empty last label after the trailing dot; moto drops it.
        trailing = scope.add(
            info.label(f"{tag}zone labels without the empty one"),
            pass_state({"n": Path("States.MathAdd($.w.zone.n, -1)")}, count, result="$.w.zone.fix"),
        )
        fix = scope.add(
            info.label(f"{tag}use the fixed count"),
            {"Type": "Pass", "InputPath": "$.w.zone.fix.n", "ResultPath": "$.w.zone.n", "Next": count},
        )
        scope.states[trailing]["Next"] = fix
        empty_last = scope.add(
            info.label(f"{tag}empty last label?"),
            choice([{"Variable": "$.w.zone.last", "StringEquals": "", "Next": trailing}], count),
        )
        return scope.add(
            info.label(f"{tag}zone labels"),
            pass_state(
                {
                    "name": Path("$.w.zone.name"),
                    "short": info.v(short),
                    "labels": Path(split),
                    "n": Path(f"States.ArrayLength({split})"),
                    "last": Path(
                        f"States.ArrayGetItem({split}, States.MathAdd(States.ArrayLength({split}), -1))"
                    ),
                },
                empty_last,
                result="$.w.zone",
            ),
        )

    def _record(self, info: StepInfo) -> dict[str, Any]:
        p = info.params
        return {
            "Name": Path("$.w.name.dot"),
            "Type": str(p.get("type", "CNAME")),
            "Ttl": int(p.get("ttl", 60)),
            "ResourceRecords": [{"Value": _text(info.v(str(v)))} for v in p["values"]],
        }

    def _current(self, info: StepInfo, scope: Scope, found: str, absent: str, tag: str = "") -> str:
        """The record set with the record's name and type (``record_sets``), at ``$.w.cur.v``."""
        kind = str(info.params.get("type", "CNAME"))
        first = scope.add(
            info.label(f"{tag}first record set"),
            pass_state({"v": Path("$.w.list.sets[0]")}, "", result="$.w.cur"),
        )
        match = scope.add(
            info.label(f"{tag}same name and type?"),
            choice(
                [
                    {
                        "And": [
                            {"Variable": "$.w.cur.v.Name", "StringEqualsPath": "$.w.name.dot"},
                            {"Variable": "$.w.cur.v.Type", "StringEquals": kind},
                        ],
                        "Next": found,
                    }
                ],
                absent,
            ),
        )
        scope.states[first]["Next"] = match
        anything = scope.add(
            info.label(f"{tag}any record set?"),
            choice([{"Variable": "$.w.list.n", "NumericEquals": 0, "Next": absent}], first),
        )
        return scope.add(
            info.label(f"{tag}list record sets"),
            task(
                "route53",
                "listResourceRecordSets",
                {
                    "HostedZoneId": self._zone(info),
                    "StartRecordName": Path("$.w.name.dot"),
                    "StartRecordType": kind,
                    "MaxItems": "1",
                },
                anything,
                selector={
                    "sets": Path("$.ResourceRecordSets"),
                    "n": Path("States.ArrayLength($.ResourceRecordSets)"),
                },
                result="$.w.list",
            ),
        )

    def _zone(self, info: StepInfo) -> str:
        from drplan.actions.route53.record import bare_zone_id

        return bare_zone_id(info.params["zone_id"])

    def _change(
        self, info: StepInfo, scope: Scope, action: str, record: Any, then: str, tag: str = ""
    ) -> str:
        """ChangeResourceRecordSets, then GetChange until INSYNC (unless ``wait: false``)."""
        check = scope.reserve(info.label(f"{tag}change in sync?"))
        waits = poll_waits(info.options, info.estimate, info.timeout)
        start, wait = poll_loop(info, scope, "p" if not tag else "u", check, waits, f"{tag}change")
        state = scope.reserve(info.label(f"{tag}INSYNC?"))
        scope.put(
            check,
            task(
                "route53",
                "getChange",
                {"Id": Path("$.w.change.id")},
                state,
                selector={"status": Path("$.ChangeInfo.Status")},
                result="$.w.sync",
            ),
        )
        scope.put(
            state, choice([{"Variable": "$.w.sync.status", "StringEquals": "INSYNC", "Next": then}], wait)
        )
        after = start if info.params.get("wait", True) else then
        verb = "drplan undo" if tag else "drplan run"
        change: dict[str, Any] = {"Action": action, "ResourceRecordSet": record}
        return scope.add(
            info.label(f"{tag}change record"),
            task(
                "route53",
                "changeResourceRecordSets",
                {
                    "HostedZoneId": self._zone(info),
                    "ChangeBatch": {
                        "Comment": Path(f"States.Format('{verb} {{}}: {info.key}', $.run.id)"),
                        "Changes": [change],
                    },
                },
                after,
                selector={"id": Path("$.ChangeInfo.Id")},
                result="$.w.change",
            ),
        )

    def _put_back(self, info: StepInfo, scope: Scope) -> str:
        """``RecordChange.undo``: UPSERT the record set the step replaced; when there was none,
        DELETE the record if it is there; the zone gone, the record is gone with it. Without the
        remembered value (a run that ended by an unexpected error lost it) nothing is guessed."""
        gone = done(scope, info)
        upsert = self._change(info, scope, "UPSERT", Path("$.w.prev.rr"), gone, tag="put back: ")
        delete = self._change(info, scope, "DELETE", Path("$.w.cur.v"), gone, tag="undo: ")
        listed = self._current(info, scope, delete, gone, tag="undo: ")
        deletion = self._names(info, scope, listed, undo=gone)
        unknown = scope.add(
            info.label("undo: previous record unknown"),
            fail(
                f"the record set {info.key} replaced is not known (the run ended before writing its record): "
                "check the record and put it back by hand"
            ),
        )
        return scope.add(
            info.label("undo: what was there before?"),
            choice(
                [
                    {"Variable": "$.w.prev.rr", "IsPresent": True, "Next": upsert},
                    {"Variable": "$.w.prev.none", "IsPresent": True, "Next": deletion},
                ],
                unknown,
            ),
        )

    def work(self, info: StepInfo, scope: Scope) -> str:
        kind = str(info.params.get("type", "CNAME"))
        parts = "States.StringSplit($.w.change.id, '/')"
        outputs = scope.add(
            info.label("outputs"),
            pass_state(
                {
                    "fqdn": Path("$.w.name.bare"),
                    "change_id": Path(
                        f"States.ArrayGetItem({parts}, States.MathAdd(States.ArrayLength({parts}), -1))"
                    ),
                },
                None,
            ),
        )
        change = self._change(info, scope, "UPSERT", self._record(info), outputs)
        sets = scope.add(
            info.label("weighted or failover sets"),
            fail(
                Path(
                    f"States.Format('{kind} {{}} has weighted/failover record sets ({{}}); give `set_identifier` to change one', $.w.name.bare, $.w.cur.v.SetIdentifier)"
                )
            ),
        )
        rules: list[dict[str, Any]] = [
            {"Variable": "$.w.cur.v.SetIdentifier", "IsPresent": True, "Next": sets}
        ]
        if info.mode == "drill":
            taken = scope.add(
                info.label("drill record taken"),
                fail(
                    Path(
                        f"States.Format('drill record {kind} {{}} already exists: a drill creates its own record and "
                        "deletes it afterwards; remove the leftover (drplan cleanup RUN_ID of the drill that left it) "
                        "or put [run_id] in the drill_with name', $.w.name.bare)"
                    )
                ),
            )
            rules.append({"Variable": "$.w.cur.v.Name", "IsPresent": True, "Next": taken})
        existing = scope.add(info.label("existing record"), choice(rules, change))
        listed = self._current(info, scope, existing, change)
        return self._names(info, scope, listed)

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """A drill's record: deleted when it points where this step pointed it (a drill creates its
        record, so there is nothing to put back); a record pointing elsewhere is not this step's.
        A recovery's: the record set from before the step put back (:meth:`remember`)."""
        if info.mode == "recover":
            return self._put_back(info, scope)
        gone = done(scope, info)
        elsewhere = scope.add(
            info.label("undo: record points elsewhere"),
            fail(
                Path(
                    "States.Format('{} points at {}, not where this step pointed it; not deleting it', $.w.name.bare, $.w.cmp.have)"
                )
            ),
        )
        delete = self._change(info, scope, "DELETE", Path("$.w.cur.v"), gone, tag="undo: ")
        same = scope.add(
            info.label("undo: points where we pointed it?"),
            choice(
                [{"Variable": "$.w.cmp.have", "StringEqualsPath": "$.w.cmp.want", "Next": delete}], elsewhere
            ),
        )
        compare = scope.add(
            info.label("undo: compare values"),
            pass_state(
                {
                    "have": Path("States.JsonToString($.w.cur.v.ResourceRecords)"),
                    "want": Path("States.JsonToString($.w.want.rr)"),
                },
                same,
                result="$.w.cmp",
            ),
        )
        want = scope.add(
            info.label("undo: what this step wrote"),
            pass_state({"rr": self._record(info)["ResourceRecords"]}, compare, result="$.w.want"),
        )
        listed = self._current(info, scope, want, gone, tag="undo: ")
        return self._names(info, scope, listed, undo=gone)
