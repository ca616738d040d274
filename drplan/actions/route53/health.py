"""Amazon Route 53: a check that a health check reports the endpoint healthy (Route 53's health
checkers, from several Regions, agree that the recovered service answers)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions._aws import unresolved
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext
from drplan.aws import error_code
from drplan.durations import parse_duration
from drplan.errors import StepFailed

DEFAULT_INTERVAL = timedelta(seconds=10)
#: Health check types whose status Route 53 does not report per checker.
_NO_CHECKERS = ("CALCULATED",)


def get_health_check(ctx: StepContext, health_check_id: str) -> dict[str, Any] | None:
    """The health check, or None when there is none with that id."""
    try:
        found = ctx.client("route53").get_health_check(HealthCheckId=health_check_id)
    except Exception as exc:
        if error_code(exc) == "NoSuchHealthCheck":
            return None
        raise
    return dict(found["HealthCheck"])


def observations(ctx: StepContext, health_check_id: str) -> list[dict[str, Any]]:
    found = ctx.client("route53").get_health_check_status(HealthCheckId=health_check_id)
    return list(found.get("HealthCheckObservations", []))


def healthy(observation: Mapping[str, Any]) -> bool:
    """A checker's report says healthy: Route 53 words it "Success: ..." (failures "Failure: ...")."""
    return str((observation.get("StatusReport") or {}).get("Status", "")).startswith("Success")


def _endpoint(check: Mapping[str, Any]) -> str:
    config = check.get("HealthCheckConfig") or {}
    host = config.get("FullyQualifiedDomainName") or config.get("IPAddress") or ""
    return f"{config.get('Type', '?')} {host}{config.get('ResourcePath', '')}".strip()


class HealthCheck(Action):
    name = "check.route53_health"
    family = "check"
    summary = "Wait until a Route 53 health check reports the endpoint healthy"
    outputs = {
        "health_check_id": "Id of the health check",
        "healthy_checkers": "Health checkers that reported healthy",
        "checkers": "Health checkers that reported",
    }
    iam = ("route53:GetHealthCheck", "route53:GetHealthCheckStatus")
    default_estimate = timedelta(minutes=2)

    def describe(self, params: Mapping[str, Any]) -> str:
        share = int(params.get("min_healthy_percent", 100))
        who = "all its health checkers" if share >= 100 else f"at least {share}% of its health checkers"
        return f"Check that Route 53 health check {params.get('health_check_id')} is healthy for {who}"

    def _check(self, ctx: StepContext, health_check_id: str) -> dict[str, Any]:
        check = get_health_check(ctx, health_check_id)
        if check is None:
            raise StepFailed(ctx.step.key, f"Route 53 health check {health_check_id} does not exist")
        kind = (check.get("HealthCheckConfig") or {}).get("Type")
        if kind in _NO_CHECKERS:
            raise StepFailed(
                ctx.step.key,
                f"Route 53 health check {health_check_id} is {kind}: Route 53 reports no checker status "
                "for it; check the health checks it combines instead",
            )
        return check

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        health_check_id = ctx.params["health_check_id"]
        if unresolved(health_check_id):
            return [
                PreflightResult(
                    "ok", f"the health check comes from {health_check_id}; checked when the step runs"
                )
            ]
        try:
            check = self._check(ctx, str(health_check_id))
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason, {"health_check_id": health_check_id})]
        seen = observations(ctx, str(health_check_id))
        good = sum(1 for o in seen if healthy(o))
        facts = {"health_check_id": health_check_id, "healthy": good, "checkers": len(seen)}
        return [
            PreflightResult(
                "ok",
                f"health check {health_check_id} ({_endpoint(check)}): {good} of {len(seen)} checkers report healthy now",
                facts,
            )
        ]

    def start(self, ctx: StepContext) -> Handle:
        health_check_id = str(ctx.params["health_check_id"])
        check = self._check(ctx, health_check_id)
        return {
            "health_check_id": health_check_id,
            "endpoint": _endpoint(check),
            "min_percent": int(ctx.params.get("min_healthy_percent", 100)),
        }

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        value = ctx.params.get("interval")
        interval = (parse_duration(value) if isinstance(value, str) else DEFAULT_INTERVAL).total_seconds()
        seen = observations(ctx, handle["health_check_id"])
        good = [o for o in seen if healthy(o)]
        handle["healthy"], handle["checkers"] = len(good), len(seen)
        name = f"health check {handle['health_check_id']}"
        if not seen:
            return Poll.running(f"{name}: no health checker has reported yet", retry_after=interval)
        share = 100 * len(good) / len(seen)
        counted = f"{len(good)} of {len(seen)} health checkers report healthy"
        if share >= handle["min_percent"]:
            return Poll.finished(f"{name}: {counted}")
        failing = next((o for o in seen if not healthy(o)), {})
        report = (failing.get("StatusReport") or {}).get("Status", "")
        where = f" ({failing.get('Region')})" if failing.get("Region") else ""
        return Poll.running(
            f"{name}: {counted}, {handle['min_percent']}% needed"
            + (f"; e.g.{where} {report}" if report else ""),
            retry_after=interval,
        )

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {
            "health_check_id": handle["health_check_id"],
            "healthy_checkers": handle.get("healthy"),
            "checkers": handle.get("checkers"),
        }
