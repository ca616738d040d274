"""``aws.arc.set_routing_control`` in a state machine: set a Route 53 ARC routing control On or Off
and wait until it reads so, as the local action does (``drplan/actions/arc/routing_control.py``).

ARC's cluster API answers only at the cluster's own endpoints (five, one per Region), which an
``aws-sdk`` task cannot address: every call of this step goes through the **calls function**
(:mod:`drplan.stepfunctions.calls`), which is given the step's ``cluster_endpoints`` and tries them
in turn, as the local action does (an endpoint unavailable, throttling, failing inside or
unreachable is passed over). So the step always has a route (:meth:`ArcSetRoutingControl.route`),
also in the machine's own Region.

The control's state from before the step is read once before its first attempt and kept in the
step's record (the local ``first_seen``; a read that fails there is met again by the step's own
first read, inside its attempts, and an undo then lacks the state and says so). The step reads
the state; unless it is the wanted one already, ``UpdateRoutingControlState`` (with
``SafetyRulesToOverride`` when the step lists rules);
then ``GetRoutingControlState`` at the local engine's intervals until the control reads the wanted
state. ARC refusing the change fails the step with the local message: a conflict or a message
naming a safety rule with the advice about safety rules and ``safety_rules_to_override``; a
validation error, a missing control or access denied with ARC's message. The outputs are the local
ones: ``routing_control_arn`` and ``state``.

The undo (before a retry, in a rollback, in a drill of a drill control given by ``drill_with``)
puts the remembered state back unless the control reads it already, and waits until it does; a
refusal fails the undo with the same message.

Refused: a ``routing_control_arn``, ``state``, ``cluster_endpoints`` or
``safety_rules_to_override`` from a reference (the step's states and its route are built from them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from drplan.stepfunctions.builder import Path, Scope, State, Untranslatable, argument
from drplan.stepfunctions.calls import Route
from drplan.stepfunctions.tasks import (
    STEP_FAILED,
    StepInfo,
    Translation,
    choice,
    done,
    fail,
    jsonata_text,
    pass_state,
    poll_loop,
    poll_waits,
    task,
    undo_waits,
)

#: Step Functions' name of the service (boto3's ``route53-recovery-cluster``); its transient errors
#: are retried by :func:`task` (``TRANSIENT``).
SERVICE = "route53recoverycluster"
PREFIX = "Route53RecoveryCluster"
#: What the local ``_set`` reports as ARC refusing the change.
CONFLICT = f"{PREFIX}.ConflictException"
REFUSED = [
    CONFLICT,
    f"{PREFIX}.ValidationException",
    f"{PREFIX}.ResourceNotFoundException",
    f"{PREFIX}.AccessDeniedException",
]
NOT_FOUND = [f"{PREFIX}.ResourceNotFoundException"]
STATES = ("On", "Off")


def _name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class ArcSetRoutingControl(Translation):
    action = "aws.arc.set_routing_control"
    understood = frozenset({"routing_control_arn", "state", "cluster_endpoints", "safety_rules_to_override"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        for name in ("routing_control_arn", "state", "cluster_endpoints", "safety_rules_to_override"):
            self.literal(info, name)
        argument(str(info.params["routing_control_arn"]))  # in the messages: no quotes or braces
        if info.params["state"] not in STATES:
            raise Untranslatable(f"`state` must be On or Off (it is {info.params['state']!r})")

    def route(self, route: Route | None, params: Mapping[str, Any], function: str) -> Route:
        endpoints = tuple(
            (str(e.get("region")), str(e.get("endpoint")))
            for e in params.get("cluster_endpoints") or []
            if isinstance(e, Mapping)
        )
        return replace(route or Route(None, None, None, function), endpoints=endpoints)

    # --- shared states ----------------------------------------------------------------------------

    def read(self, info: StepInfo, then: str, into: str, **kwargs: Any) -> State:
        """``GetRoutingControlState``: the control's state at ``into`` (``{"s": "On"}``)."""
        return task(
            SERVICE,
            "getRoutingControlState",
            {"RoutingControlArn": str(info.params["routing_control_arn"])},
            then,
            selector={"s": Path("$.RoutingControlState")},
            result=into,
            **kwargs,
        )

    def turn(self, info: StepInfo, scope: Scope, tag: str, state: str, then: str) -> str:
        """``UpdateRoutingControlState`` to ``state`` (On or Off, or the path of the undo's), refused
        as the local ``_set`` refuses: the local message, as JSONata (it cuts ARC's message out of
        the cause and looks for a safety rule in it)."""
        p = info.params
        arn = str(p["routing_control_arn"])
        prefix = f"ARC refused to turn routing control {_name(arn)} "
        said = "$states.input.w.error"
        to = jsonata_text(state) if not state.startswith("$") else "$states.input" + state[1:]
        cut = r"/ \(Service: [^,\)]*, Status Code: \d+, [^\)]*\)$/"
        advice = (
            ". A safety rule of the control panel blocks this change (an assertion rule keeps "
            "enough cells On; a gating rule needs its gating control On), or another change "
            "raced it. Check the other routing controls' states; to break the glass, list the "
            "rules to override in `safety_rules_to_override`"
        )
        refused = scope.add(
            info.label(f"{tag}ARC refused the change"),
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% ($m := $replace("
                + f"{said}.Cause, {cut}, ''); "
                + f"{jsonata_text(prefix)} & {to} & ': ' & $m & "
                + f"(({said}.Error = '{CONFLICT}' or $contains($lowercase($m), 'safety rule')) ? "
                + f"{jsonata_text(advice)} : '')) %}}",
            },
        )
        parameters: dict[str, Any] = {
            "RoutingControlArn": arn,
            "RoutingControlState": state if not state.startswith("$") else Path(state),
        }
        rules = list(p.get("safety_rules_to_override") or [])
        if rules:
            parameters["SafetyRulesToOverride"] = rules
        return scope.add(
            info.label(f"{tag}turn the routing control"),
            task(SERVICE, "updateRoutingControlState", parameters, then, catch=[(REFUSED, refused)]),
        )

    # --- the step ---------------------------------------------------------------------------------

    def remembers(self, info: StepInfo) -> bool:
        return True

    def remember(self, info: StepInfo, scope: Scope, then: str) -> str:
        """The state from before the step at ``$.w.prev`` (``{"s": ...}``); a control that is not
        there has nothing to put back (``{"none": true}``: the step then fails on it). Any other
        error leaves ``$.w.prev`` unset: the step's own first read meets it again inside its
        attempts (its record says why, its retries and timeout apply), and an undo without the
        previous state fails with advice rather than guess it."""
        nothing = scope.add(
            info.label("before: no routing control"), pass_state({"none": True}, then, result="$.w.prev")
        )
        return scope.add(
            info.label("before: routing control state"),
            self.read(info, then, "$.w.prev", catch=[(NOT_FOUND, nothing), (["States.ALL"], then)]),
        )

    def work(self, info: StepInfo, scope: Scope) -> str:
        arn, wanted = str(info.params["routing_control_arn"]), str(info.params["state"])
        outputs = scope.add(
            info.label("outputs"), pass_state({"routing_control_arn": arn, "state": wanted}, None)
        )
        check = scope.reserve(info.label("now: routing control state"))
        start, wait = poll_loop(
            info, scope, "p", check, poll_waits(info.options, info.estimate, info.timeout), "routing control"
        )
        judge = scope.add(
            info.label(f"reads {wanted}?"),
            choice([{"Variable": "$.w.now.s", "StringEquals": wanted, "Next": outputs}], wait),
        )
        scope.put(check, self.read(info, judge, "$.w.now"))
        turn = self.turn(info, scope, "", wanted, start)
        already = scope.add(
            info.label(f"{wanted} already?"),
            choice([{"Variable": "$.w.one.s", "StringEquals": wanted, "Next": start}], turn),
        )
        return scope.add(info.label("routing control state"), self.read(info, already, "$.w.one"))

    # --- the undo ---------------------------------------------------------------------------------

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """The remembered state put back unless the control reads it, then waited for."""
        back = done(scope, info)
        check = scope.reserve(info.label("undo: now routing control state"))
        start, wait = poll_loop(info, scope, "u", check, undo_waits(info.options), "undo: routing control")
        judge = scope.add(
            info.label("undo: reads the previous state?"),
            choice([{"Variable": "$.w.un.s", "StringEqualsPath": "$.w.prev.s", "Next": back}], wait),
        )
        scope.put(check, self.read(info, judge, "$.w.un"))
        turn = self.turn(info, scope, "undo: ", "$.w.prev.s", start)
        same = scope.add(
            info.label("undo: at the previous state?"),
            choice([{"Variable": "$.w.r.s", "StringEqualsPath": "$.w.prev.s", "Next": back}], turn),
        )
        known = scope.add(info.label("undo: routing control state"), self.read(info, same, "$.w.r"))
        lost = scope.add(
            info.label("undo: previous state unknown"),
            fail(
                f"the state {info.key} replaced is not known (the run ended before writing its record): "
                f"check ARC routing control {info.params['routing_control_arn']} and set it by hand"
            ),
        )
        return scope.add(
            info.label("undo: what was the state?"),
            choice(
                [
                    {"Variable": "$.w.prev.s", "IsPresent": True, "Next": known},
                    {"Variable": "$.w.prev.none", "IsPresent": True, "Next": back},
                ],
                lost,
            ),
        )
