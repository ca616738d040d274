"""Amazon Route 53 Application Recovery Controller (ARC): set a routing control On or Off, the switch
that moves traffic from one cell (a Region) to another.

Routing control states are read and changed through the *cluster endpoints* of the ARC cluster that
hosts the control panel: five Regional endpoints, of which any one answering is enough. AWS's advice
is to try them in turn until one answers, and the step does: the plan lists them (``aws
route53-recovery-control-config describe-cluster`` prints them), and a client is made per endpoint
(signed for its Region).

Safety rules of the control panel (assertion and gating rules) may refuse a change, for instance
turning off the last cell that is On. The step says so in words and names the way out: give the
rules' ARNs in ``safety_rules_to_override`` to break the glass, deliberately.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions._aws import unresolved
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext
from drplan.aws import error_code, error_message, is_unreachable
from drplan.errors import StepFailed
from drplan.resources import Target

SERVICE = "route53-recovery-cluster"
#: Errors after which another cluster endpoint may answer (AWS: "Try another cluster endpoint").
_TRY_ANOTHER = frozenset(
    {"EndpointTemporarilyUnavailableException", "InternalServerException", "ThrottlingException"}
)


def _name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def safety_rule_refusal(exc: BaseException) -> bool:
    """Did ARC refuse the change because of a safety rule? It answers ``ConflictException`` for a
    change that a rule forbids (and for a change racing another); a message naming a safety rule
    counts whatever the code."""
    return error_code(exc) == "ConflictException" or "safety rule" in error_message(exc).lower()


class SetRoutingControl(Action):
    name = "aws.arc.set_routing_control"
    family = "dns"
    summary = "Set a Route 53 ARC routing control On or Off through the cluster endpoints; undo puts back its previous state"
    outputs = {"routing_control_arn": "ARN of the routing control", "state": "State set (On or Off)"}
    iam = (
        "route53-recovery-cluster:GetRoutingControlState",
        "route53-recovery-cluster:UpdateRoutingControlState",
    )
    default_estimate = timedelta(minutes=1)
    drill = "skip"  # moving production traffic is never drilled unless `drill_with` names a drill control
    undoable = True

    def describe(self, params: Mapping[str, Any]) -> str:
        override = params.get("safety_rules_to_override") or []
        extra = (
            f", overriding {len(override)} safety rule{'s' if len(override) != 1 else ''}" if override else ""
        )
        return f"Turn ARC routing control {_name(str(params.get('routing_control_arn')))} {params.get('state')}{extra}"

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        return (
            Target(
                "arc:routing-control",
                str(params["routing_control_arn"]),
                "routing_control_arn",
                creates=False,
            ),
        )

    # --- the cluster endpoints ----------------------------------------------------------------------

    def _endpoints(self, ctx: StepContext, first: int = 0) -> list[tuple[int, Mapping[str, Any]]]:
        endpoints = list(enumerate(ctx.params["cluster_endpoints"]))
        return endpoints[first:] + endpoints[:first]

    def _call(
        self, ctx: StepContext, operation: str, first: int = 0, **kwargs: Any
    ) -> tuple[dict[str, Any], int]:
        """``operation`` on the first cluster endpoint that answers (from ``first`` on): the answer
        and the endpoint's index. Endpoints that are unavailable or unreachable are skipped; when
        none answers, the last error is raised for the engine (which retries what is retryable)."""
        last: BaseException | None = None
        for index, endpoint in self._endpoints(ctx, first):
            client = ctx.aws.client(
                SERVICE,
                region=str(endpoint["region"]),
                role_arn=ctx.step.role_arn,
                endpoint_url=str(endpoint["endpoint"]),
            )
            try:
                answer: dict[str, Any] = getattr(client, operation)(**kwargs)
                return answer, index
            except Exception as exc:
                if error_code(exc) in _TRY_ANOTHER or is_unreachable(exc):
                    ctx.note(
                        f"cluster endpoint {endpoint['endpoint']} did not answer ({error_message(exc)}); trying the next"
                    )
                    last = exc
                    continue
                raise
        assert last is not None
        raise last

    def _state(self, ctx: StepContext, arn: str, first: int = 0) -> tuple[str, int]:
        answer, index = self._call(ctx, "get_routing_control_state", first, RoutingControlArn=arn)
        return str(answer["RoutingControlState"]), index

    def _set(self, ctx: StepContext, arn: str, state: str, first: int = 0) -> int:
        kwargs: dict[str, Any] = {"RoutingControlArn": arn, "RoutingControlState": state}
        rules = list(ctx.params.get("safety_rules_to_override") or [])
        if rules:
            kwargs["SafetyRulesToOverride"] = rules
        try:
            _, index = self._call(ctx, "update_routing_control_state", first, **kwargs)
        except Exception as exc:
            code = error_code(exc)
            if safety_rule_refusal(exc):
                raise StepFailed(
                    ctx.step.key,
                    f"ARC refused to turn routing control {_name(arn)} {state}: {error_message(exc)}. "
                    "A safety rule of the control panel blocks this change (an assertion rule keeps "
                    "enough cells On; a gating rule needs its gating control On), or another change "
                    "raced it. Check the other routing controls' states; to break the glass, list the "
                    "rules to override in `safety_rules_to_override`",
                ) from exc
            if code in ("ValidationException", "ResourceNotFoundException", "AccessDeniedException"):
                raise StepFailed(
                    ctx.step.key,
                    f"ARC refused to turn routing control {_name(arn)} {state}: {error_message(exc)}",
                ) from exc
            raise
        return index

    # --- running ------------------------------------------------------------------------------------

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        arn = ctx.params["routing_control_arn"]
        if unresolved(arn):
            return [
                PreflightResult("ok", f"the routing control comes from {arn}; checked when the step runs")
            ]
        try:
            state, index = self._state(ctx, str(arn))
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return [
                    PreflightResult(
                        "error", f"ARC routing control {arn} does not exist", {"routing_control_arn": arn}
                    )
                ]
            raise
        wanted = ctx.params["state"]
        endpoint = ctx.params["cluster_endpoints"][index]["endpoint"]
        facts = {"routing_control_arn": arn, "state": state, "endpoint": endpoint}
        if state == wanted:
            return [PreflightResult("ok", f"routing control {_name(str(arn))} is {state} already", facts)]
        return [
            PreflightResult(
                "ok", f"routing control {_name(str(arn))} is {state}; would turn it {wanted}", facts
            )
        ]

    def start(self, ctx: StepContext) -> Handle:
        arn, wanted = str(ctx.params["routing_control_arn"]), str(ctx.params["state"])
        current, index = self._state(ctx, arn)
        previous = ctx.first_seen(f"previous state {arn}", current)
        if current != wanted:
            index = self._set(ctx, arn, wanted, index)
        return {"routing_control_arn": arn, "previous": previous, "state": wanted, "endpoint": index}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        arn, wanted = handle["routing_control_arn"], handle["state"]
        state, handle["endpoint"] = self._state(ctx, arn, int(handle.get("endpoint", 0)))
        if state == wanted:
            was = "" if handle["previous"] != wanted else " (it was already)"
            return Poll.finished(f"routing control {_name(arn)} is {state}{was}")
        return Poll.running(f"routing control {_name(arn)} still reads {state}")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {"routing_control_arn": handle["routing_control_arn"], "state": handle["state"]}

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        arn, previous = handle["routing_control_arn"], handle["previous"]
        first = int(handle.get("endpoint", 0))
        state, first = self._state(ctx, arn, first)
        if state != previous:
            self._set(ctx, arn, previous, first)
        return {"endpoint": first}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        arn, previous = handle["routing_control_arn"], handle["previous"]
        state, undo_handle["endpoint"] = self._state(ctx, arn, int(undo_handle.get("endpoint", 0)))
        if state == previous:
            return Poll.finished(f"routing control {_name(arn)} is back {state}")
        return Poll.running(f"routing control {_name(arn)} reads {state}, putting back {previous}")
