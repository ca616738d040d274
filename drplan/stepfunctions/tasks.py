"""What each action does, in Amazon States Language: the :class:`Translation` contract and the
state builders every translation shares (the translations themselves live one module per AWS
service beside this one; :mod:`drplan.stepfunctions.translations` lists them).

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
from typing import TYPE_CHECKING, Any, ClassVar

from drplan.durations import humanize
from drplan.engine.records import RunOptions
from drplan.model import Mode, Step
from drplan.resources import Resource
from drplan.stepfunctions.builder import Path, Scope, State, Untranslatable, Values, goto, role, template

if TYPE_CHECKING:
    from drplan.stepfunctions.calls import Route

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
    # What drplan.aws.is_retryable takes (throttling, and errors with a 5xx status).
    "eks": ["Eks.ThrottlingException", "Eks.ServerException", "Eks.ServiceUnavailableException"],
    # ARC's cluster API, through the calls function (drplan.stepfunctions.arc): what it raises when
    # no cluster endpoint answered (the last one's error; SdkClientException: none was reachable).
    "route53recoverycluster": [
        "Route53RecoveryCluster.ThrottlingException",
        "Route53RecoveryCluster.InternalServerException",
        "Route53RecoveryCluster.EndpointTemporarilyUnavailableException",
        "Route53RecoveryCluster.SdkClientException",
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
    #: Where the step's AWS calls go when not to the machine's own Region as its role (its own
    #: ``region`` or ``role_arn``): its ``aws-sdk`` Tasks are rewritten (drplan.stepfunctions.calls).
    route: Route | None = None

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


def interval_waits(info: StepInfo, default: float) -> list[int]:
    """The one interval of a step that tries again every ``interval`` (a check, an alarm or health
    check watch; ``default``: the local action's when the step gives none), in whole seconds."""
    from drplan.durations import seconds_param

    return [max(1, math.ceil(seconds_param(info.params, "interval", default)))]


def undo_waits(options: RunOptions) -> list[int]:
    """Undo verifies deletions as the local Undoer does: from at most 5 s, growing to 15 s."""
    return poll_waits(
        options,
        0,
        options.undo_timeout,
        initial=min(options.poll_initial, 5.0),
        cap=min(15.0, options.poll_max),
    )


#: History events of one step besides its polls, and of one poll (measured in moto for a DynamoDB
#: restore: 71 events in a recovery, 129 in a drill with its undo; 11-13 per poll).
STEP_EVENTS = {"recover": 75, "drill": 135}
POLL_EVENTS = 13


def polled_events(info: StepInfo, waits: Sequence[int] | None, undo: Sequence[int] | None = None) -> int:
    """The most history events a step that polls at ``waits`` (None: does not poll) can write: its
    fixed events and 13 for each poll that fits in its timeout (the last interval repeated); for a
    step that is undone (a drill's cleanup, a recovery's rollback: ``undo`` is not None), the polls
    at ``undo`` verifying the deletion, for as long as the undo deadline allows.

    Not counted: the time a step waits for a slot of a semaphore (bounded by the other steps, not by
    its timeout), polling a predecessor's coordination record, and listing backups page by page."""
    undone = undo is not None
    fixed = STEP_EVENTS["drill"] if undone else STEP_EVENTS.get(info.mode, STEP_EVENTS["drill"])
    count = polls_within(waits, info.timeout) if waits else 0
    if undo:
        count += polls_within(undo, info.options.undo_timeout)
    return fixed + POLL_EVENTS * count


def polls_within(waits: Sequence[int], total: float) -> int:
    """How many polls at ``waits`` (then at the last one) fit in ``total`` seconds."""
    rest = total - sum(waits)
    return len(waits) + (math.ceil(rest / waits[-1]) if rest > 0 else 0)


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

    def check(self, info: StepInfo) -> None:
        """Raise :class:`Untranslatable` for what this translation does not do (yet)."""
        unknown = sorted(set(info.params) - self.understood)
        if unknown:
            raise Untranslatable(f"parameter(s) {', '.join(unknown)} not translated yet")

    def waits(self, info: StepInfo) -> list[int] | None:
        """The intervals the step polls its job at (the last one repeated until its timeout), or None
        for a step that only waits or calls once."""
        return poll_waits(info.options, info.estimate, info.timeout)

    def history_events(self, info: StepInfo, *, undone: bool = False) -> int:
        """The most history events the step can write (``undone``: and its undo): what splits a plan
        into child executions (:mod:`drplan.stepfunctions.parts`)."""
        waits = self.waits(info)
        if not undone:
            return polled_events(info, waits)
        # A step that polls its job polls its undo's deletion too; one that does not, does not.
        return polled_events(info, waits, undo_waits(info.options) if waits else [])

    def route(self, route: Route | None, params: Mapping[str, Any], function: str) -> Route | None:
        """Where the step's AWS calls go: ``route`` (from its own ``region`` and ``role_arn``,
        :func:`drplan.stepfunctions.calls.route_of`), unless the service answers only at endpoints
        of its own, which the calls function ``function`` then addresses (Route 53 ARC)."""
        return route

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
        try:
            known = Values({}).of(value) == value
        except Untranslatable:  # a reference to a step: none is known here
            known = False
        if value is not None and not known:
            raise Untranslatable(f"`{name}` must be known when the plan is exported (it is {value!r})")
        return value


class WaitStep(Translation):
    action = "wait"
    understood = frozenset({"duration", "reason"})

    def waits(self, info: StepInfo) -> None:
        return None  # one Wait state

    def work(self, info: StepInfo, scope: Scope) -> str:
        from drplan.durations import parse_duration

        seconds = parse_duration(str(info.params.get("duration", "PT0S"))).total_seconds()
        outputs = scope.add(info.label("done"), {"Type": "Pass", "Result": {}, "End": True})
        return scope.add(info.label("wait"), {"Type": "Wait", "Seconds": math.ceil(seconds), "Next": outputs})
