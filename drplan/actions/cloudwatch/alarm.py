"""Amazon CloudWatch: a check that an alarm has been in the expected state for a while (the probe
that says a service is really back, not just answering once)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.actions._aws import as_utc, unresolved
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext
from drplan.durations import humanize, parse_duration
from drplan.errors import StepFailed

DEFAULT_FOR = timedelta(minutes=1)
DEFAULT_INTERVAL = timedelta(seconds=10)


def describe_alarm(ctx: StepContext, name: str) -> dict[str, Any] | None:
    """The metric or composite alarm ``name``, or None."""
    found = ctx.client("cloudwatch").describe_alarms(
        AlarmNames=[name], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )
    alarms = list(found.get("MetricAlarms", [])) + list(found.get("CompositeAlarms", []))
    return dict(alarms[0]) if alarms else None


def entered(alarm: Mapping[str, Any]) -> datetime | None:
    """When the alarm entered its current state."""
    when = alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp")
    return as_utc(when) if isinstance(when, datetime) else None


def _duration(params: Mapping[str, Any], name: str, default: timedelta) -> timedelta:
    value = params.get(name)
    return parse_duration(value) if isinstance(value, str) else default


class AlarmCheck(Action):
    name = "check.cloudwatch_alarm"
    family = "check"
    summary = "Wait until a CloudWatch alarm has been in the expected state (OK) for a while"
    outputs = {
        "alarm": "Name of the alarm",
        "state": "State it held",
        "since": "When it entered that state (ISO 8601)",
    }
    iam = ("cloudwatch:DescribeAlarms",)
    default_estimate = DEFAULT_FOR

    def estimate(self, params: Mapping[str, Any]) -> timedelta:
        return _duration(params, "for", DEFAULT_FOR)

    def describe(self, params: Mapping[str, Any]) -> str:
        held = params.get("for", "PT1M")
        return (
            f"Check that CloudWatch alarm {params.get('alarm')} stays {params.get('state', 'OK')} for {held}"
        )

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        name = ctx.params["alarm"]
        if unresolved(name):
            return [PreflightResult("ok", f"the alarm comes from {name}; checked when the step runs")]
        alarm = describe_alarm(ctx, str(name))
        if alarm is None:
            return [PreflightResult("error", f"CloudWatch alarm {name} does not exist", {"alarm": name})]
        state = alarm.get("StateValue")
        wanted = ctx.params.get("state", "OK")
        since = entered(alarm)
        facts = {"alarm": name, "state": state, "since": since.isoformat() if since else None}
        return [PreflightResult("ok", f"alarm {name} is {state} now; the check waits for {wanted}", facts)]

    def start(self, ctx: StepContext) -> Handle:
        name = str(ctx.params["alarm"])
        if describe_alarm(ctx, name) is None:
            raise StepFailed(ctx.step.key, f"CloudWatch alarm {name} does not exist")
        hold = _duration(ctx.params, "for", DEFAULT_FOR).total_seconds()
        if ctx.max_wait is not None and hold > ctx.max_wait:
            ctx.note(
                f"holding {humanize(ctx.max_wait)} instead of {humanize(hold)} (waits are shortened here)"
            )
            hold = ctx.max_wait
        return {
            "alarm": name,
            "state": str(ctx.params.get("state", "OK")),
            "hold": hold,
            "watching_since": datetime.now(timezone.utc).isoformat(),
        }

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        name, wanted, hold = handle["alarm"], handle["state"], float(handle["hold"])
        interval = _duration(ctx.params, "interval", DEFAULT_INTERVAL).total_seconds()
        alarm = describe_alarm(ctx, name)
        if alarm is None:
            return Poll.failure(f"CloudWatch alarm {name} was deleted")
        state = alarm.get("StateValue")
        if state != wanted:
            reason = alarm.get("StateReason")
            return Poll.running(
                f"alarm {name} is {state}" + (f": {reason}" if reason else ""), retry_after=interval
            )
        watching = datetime.fromisoformat(handle["watching_since"])
        since = max(watching, entered(alarm) or watching)
        held = (datetime.now(timezone.utc) - since).total_seconds()
        handle["since"] = (entered(alarm) or since).isoformat()
        if held >= hold:
            return Poll.finished(f"alarm {name} has been {wanted} for {humanize(held)}")
        left = hold - held
        return Poll.running(
            f"alarm {name} is {wanted}, for {humanize(held)} of {humanize(hold)}",
            retry_after=min(interval, left),
        )

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {"alarm": handle["alarm"], "state": handle["state"], "since": handle.get("since")}
