"""Amazon ECS: set a service's desired task count (scale the application tier up in the recovery
Region) and wait for the service to be steady."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.actions._aws import as_utc, unresolved
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext
from drplan.aws import error_code, error_message
from drplan.errors import StepFailed
from drplan.resources import Target


def short_name(value: Any) -> str:
    """A cluster or service name from its name or ARN (``arn:…:service/cluster/name`` -> ``name``)."""
    return str(value).rsplit("/", 1)[-1]


def describe_service(ctx: StepContext, cluster: str, service: str) -> dict[str, Any] | None:
    """The service, or None when ECS says it is missing (or its cluster is)."""
    try:
        found = ctx.client("ecs").describe_services(cluster=cluster, services=[service])
    except Exception as exc:
        if error_code(exc) == "ClusterNotFoundException":
            return None
        raise
    services = found.get("services", [])
    return dict(services[0]) if services else None


def steady(service: Mapping[str, Any]) -> bool:
    """ECS's own test (the ``services_stable`` waiter): one deployment, all desired tasks running."""
    return len(service.get("deployments", [])) == 1 and service.get("runningCount") == service.get(
        "desiredCount"
    )


def counts(service: Mapping[str, Any]) -> str:
    deployments = len(service.get("deployments", []))
    return (
        f"{service.get('runningCount', 0)} of {service.get('desiredCount', 0)} tasks running, "
        f"{service.get('pendingCount', 0)} pending, {deployments} deployment{'s' if deployments != 1 else ''}"
    )


def failed_rollout(service: Mapping[str, Any]) -> str | None:
    """Why the primary deployment failed (ECS's deployment circuit breaker), or None."""
    for deployment in service.get("deployments", []):
        if deployment.get("status") == "PRIMARY" and deployment.get("rolloutState") == "FAILED":
            return str(deployment.get("rolloutStateReason") or "the deployment failed")
    return None


def latest_event(service: Mapping[str, Any], since: datetime) -> str:
    """The newest service event since the change (why tasks do not start), as a note."""
    for event in service.get("events", []):  # newest first
        when = event.get("createdAt")
        if isinstance(when, datetime) and as_utc(when) >= since:
            return f"; ECS: {event.get('message', '')}"
        break
    return ""


class SetServiceCapacity(Action):
    name = "aws.ecs.set_capacity"
    family = "compute"
    summary = (
        "Set an ECS service's desired task count and wait for steady state; undo restores the previous count"
    )
    outputs = {
        "cluster": "Cluster of the service",
        "service": "ECS service name",
        "desired": "Desired task count set",
        "running": "Tasks running when the service was steady",
    }
    iam = ("ecs:DescribeServices", "ecs:UpdateService")
    default_estimate = timedelta(minutes=5)
    drill = "skip"  # drills never scale production services; `drill_with` may name a drill service
    undoable = True

    def describe(self, params: Mapping[str, Any]) -> str:
        return (
            f"Scale ECS service {params.get('service')} in cluster {params.get('cluster')} "
            f"to {params.get('desired')} tasks"
        )

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        extra = {"cluster": short_name(params["cluster"])}
        return (Target("ecs:service", short_name(params["service"]), "service", creates=False, extra=extra),)

    def _desired(self, ctx: StepContext) -> int:
        value = ctx.params["desired"]
        try:
            desired = int(value)
        except (TypeError, ValueError):
            raise StepFailed(ctx.step.key, f"`desired` must be an integer, got {value!r}") from None
        if desired < 0:
            raise StepFailed(ctx.step.key, f"`desired` must not be negative, got {desired}")
        return desired

    def _service(self, ctx: StepContext) -> dict[str, Any]:
        cluster, name = str(ctx.params["cluster"]), str(ctx.params["service"])
        service = describe_service(ctx, cluster, name)
        if service is None:
            raise StepFailed(ctx.step.key, f"ECS service {name} does not exist in cluster {cluster}")
        if service.get("status") != "ACTIVE":
            raise StepFailed(ctx.step.key, f"ECS service {name} is {service.get('status')}, not ACTIVE")
        return service

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        cluster, name = ctx.params["cluster"], ctx.params["service"]
        if unresolved(cluster) or unresolved(name):
            return [
                PreflightResult(
                    "ok", "the service comes from an earlier step's output; checked when the step runs"
                )
            ]
        try:
            service = self._service(ctx)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason, {"cluster": cluster, "service": name})]
        facts: dict[str, Any] = {
            "cluster": cluster,
            "service": name,
            "desired": service.get("desiredCount"),
            "running": service.get("runningCount"),
        }
        wanted = ctx.params["desired"]
        shown = wanted if unresolved(wanted) else self._desired(ctx)
        return [
            PreflightResult(
                "ok", f"service {name} has {counts(service)}; would set {shown} desired tasks", facts
            )
        ]

    def start(self, ctx: StepContext) -> Handle:
        desired = self._desired(ctx)
        service = self._service(ctx)
        cluster, name = str(ctx.params["cluster"]), str(ctx.params["service"])
        previous = int(
            ctx.first_seen(f"previous desiredCount {cluster}/{name}", service.get("desiredCount", 0))
        )
        self._update(ctx, cluster, name, desired)
        return {
            "cluster": cluster,
            "service": name,
            "service_arn": service.get("serviceArn"),
            "previous": previous,
            "desired": desired,
            "wait": bool(ctx.params.get("wait_steady", True)),
            "since": datetime.now(timezone.utc).isoformat(),
        }

    def _update(self, ctx: StepContext, cluster: str, service: str, desired: int) -> None:
        try:
            ctx.client("ecs").update_service(cluster=cluster, service=service, desiredCount=desired)
        except Exception as exc:
            if error_code(exc) in ("InvalidParameterException", "ServiceNotActiveException"):
                raise StepFailed(
                    ctx.step.key, f"ECS refused to scale {service}: {error_message(exc)}"
                ) from exc
            raise

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        name = handle["service"]
        if not handle.get("wait", True):
            return Poll.finished(f"service {name} set to {handle['desired']} tasks (not waiting for them)")
        service = describe_service(ctx, handle["cluster"], name)
        if service is None or service.get("status") != "ACTIVE":
            state = "missing" if service is None else service.get("status")
            return Poll.failure(f"ECS service {name} is {state}")
        failed = failed_rollout(service)
        if failed:
            return Poll.failure(f"ECS service {name}: {failed}")
        if steady(service):
            handle["running"] = service.get("runningCount")
            note = f"service {name} is steady: {counts(service)}"
            if service.get("desiredCount") != handle["desired"]:
                note += f" (the step set {handle['desired']}; something else has changed it since)"
            return Poll.finished(note)
        since = datetime.fromisoformat(handle["since"])
        return Poll.running(counts(service) + latest_event(service, since))

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {
            "cluster": short_name(handle["cluster"]),
            "service": short_name(handle["service"]),
            "desired": handle["desired"],
            "running": handle.get("running"),
        }

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        service = describe_service(ctx, handle["cluster"], handle["service"])
        if service is None or service.get("status") != "ACTIVE":
            return {"gone": True}
        self._update(ctx, handle["cluster"], handle["service"], int(handle["previous"]))
        return {"gone": False}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        name, previous = handle["service"], handle["previous"]
        service = describe_service(ctx, handle["cluster"], name)
        if service is None or service.get("status") != "ACTIVE":
            return Poll.finished(f"service {name} no longer exists")
        if service.get("desiredCount") != previous:
            return Poll.running(
                f"service {name} wants {service.get('desiredCount')} tasks, restoring {previous}"
            )
        if not steady(service):
            return Poll.running(f"service {name} is going back to {previous} tasks: {counts(service)}")
        return Poll.finished(f"service {name} is back at {previous} tasks")
