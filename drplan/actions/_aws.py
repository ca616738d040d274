"""Small helpers shared by the AWS actions: tags, freshness against the RPO, picking the newest,
references not resolved yet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from drplan.actions.base import Handle, PreflightResult, StepContext, add_handle_resource, set_recovery_point
from drplan.aws import is_not_found as is_not_found  # re-exported: the actions import it from here
from drplan.durations import humanize, parse_duration
from drplan.errors import StepFailed
from drplan.resources import Resource

T = TypeVar("T")


def unresolved(value: Any) -> bool:
    """A ``${service.step.output}`` reference: known only when the run gets there."""
    return isinstance(value, str) and "${" in value


def aws_tags(ctx: StepContext, extra: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """The run's tags plus the step's own ``tags`` parameter, in AWS's Key/Value list form."""
    merged = {**ctx.tags, **(extra or {}), **ctx.params.get("tags", {}), "drplan:step": ctx.step.key}
    return [{"Key": k, "Value": str(v)} for k, v in sorted(merged.items())]


def max_age(ctx: StepContext) -> timedelta | None:
    """``max_age`` of the step: a duration, or ``rpo`` for the service's RPO objective."""
    return max_age_of(ctx.params.get("max_age"), ctx.objectives.rpo)


def max_age_of(value: Any, rpo: timedelta | None) -> timedelta | None:
    """A ``max_age`` parameter as a duration (None: no limit; ``rpo`` without an RPO is no limit
    either, which validation reports)."""
    if value is None:
        return None
    if value == "rpo":
        return rpo
    return parse_duration(str(value))


def as_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def age(created: datetime, ctx: StepContext) -> timedelta:
    """How old a backup is when the run started (the RPO actually achieved)."""
    return max(timedelta(0), ctx.started_at - as_utc(created))


def require_fresh(ctx: StepContext, created: datetime, what: str) -> None:
    limit = max_age(ctx)
    old = age(created, ctx)
    if limit is not None and old > limit:
        raise StepFailed(
            ctx.step.key,
            f"{what} is {humanize(old)} old, older than the allowed {humanize(limit)} (max_age); "
            "nothing restored",
        )


def newest(items: Iterable[T], created: Any) -> T | None:
    """The item with the latest creation time (``created`` extracts it), or None."""
    best: T | None = None
    best_time: datetime | None = None
    for item in items:
        when = created(item)
        if when is not None and (best_time is None or as_utc(when) > best_time):
            best, best_time = item, as_utc(when)
    return best


def recovery_point(handle: Handle, identifier: str, created: datetime) -> None:
    """Record what was restored and when it was taken (evidence uses it for the measured RPO)."""
    set_recovery_point(handle, identifier, as_utc(created))


def add_resource(ctx: StepContext, handle: Handle, resource: Resource) -> None:
    """Record a resource the step just created: in the handle (undo) and, at once, in the run's
    journal (cleanup even if the step fails before returning its handle)."""
    add_handle_resource(handle, resource)
    ctx.record(resource)


def freshness_result(ctx: StepContext, what: str, identifier: str, created: datetime) -> PreflightResult:
    """Preflight finding for the backup that would be used: its age against ``max_age`` and the RPO."""
    old = age(created, ctx)
    facts = {
        "recovery_point": identifier,
        "created": as_utc(created).isoformat(),
        "age_seconds": int(old.total_seconds()),
    }
    limit = max_age(ctx)
    if limit is not None and old > limit:
        return PreflightResult(
            "error", f"{what} {identifier} is {humanize(old)} old, over max_age {humanize(limit)}", facts
        )
    rpo = ctx.objectives.rpo
    if rpo is not None and old > rpo:
        return PreflightResult(
            "warning", f"{what} {identifier} is {humanize(old)} old, over the RPO of {humanize(rpo)}", facts
        )
    return PreflightResult("ok", f"would restore {what} {identifier} ({humanize(old)} old)", facts)


def target_free(exists: bool, kind: str, name: str) -> PreflightResult:
    if exists:
        return PreflightResult(
            "error", f"{kind} {name} already exists; the restore would fail", {"target": name}, name=name
        )
    return PreflightResult("ok", f"{kind} name {name} is free", {"target": name}, name=name)


def with_sizes(
    ctx: StepContext, current: Mapping[str, int], keys: tuple[tuple[str, str], ...]
) -> dict[str, int]:
    """``current`` sizes (an Auto Scaling group's, a node group's) with the step's parameters put in:
    each ``(param, key)`` of ``keys`` given in the step replaces ``key``; min and max stay as they
    are when not given. A value that is not an integer fails the step, naming the parameter."""
    target = dict(current)
    for param, key in keys:
        value = ctx.params.get(param)
        if value is None:
            continue
        try:
            target[key] = int(value)
        except (TypeError, ValueError):
            raise StepFailed(ctx.step.key, f"`{param}` must be an integer, got {value!r}") from None
    return target
