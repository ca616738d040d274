"""The plan's CloudWatch alarms as the ARC plan's ``associatedAlarms``.

ARC attaches CloudWatch alarms to a plan as a whole (``AssociatedAlarm``: the alarm's ARN as
``resourceIdentifier``, an ``alarmType``, and ``crossAccountRole``/``externalId`` for an alarm in
another account). An *application health* alarm is read as the application's health: ARC shows it
beside executions and uses it to measure the actual recovery time. A ``check.cloudwatch_alarm``
step waits for exactly such an alarm to be OK, so its alarm becomes one (the step itself stays a
step ARC cannot run: ARC has no block that waits).

Not written: *trigger* alarms and ``triggers``, which start the plan by themselves when an alarm
turns red (or green). A drplan plan never starts a recovery by itself, and an alarm that says the
recovered service is healthy is no condition to fail over on. A ``check.route53_health`` step names
a Route 53 health check, which is not a CloudWatch alarm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drplan.arcswitch.context import Context, Unmappable
from drplan.arcswitch.settings import Settings
from drplan.engine.prepare import PreparedStep
from drplan.model import Plan

ALARM_CHECK = "check.cloudwatch_alarm"
HEALTH_CHECK = "check.route53_health"


@dataclass(frozen=True)
class Alarm:
    name: str  # the key in associatedAlarms (what a trigger's associatedAlarmName would name)
    steps: tuple[str, ...]  # the drplan steps that check it
    entry: Mapping[str, Any]  # the AssociatedAlarm


def associated_alarms(
    steps: Mapping[str, PreparedStep], settings: Settings, plan: Plan
) -> tuple[dict[str, Alarm], dict[str, str]]:
    """(the alarms by their key in associatedAlarms, in plan order; the alarm and health checks
    that are not associated, step -> why)."""
    alarms: dict[str, Alarm] = {}
    refused: dict[str, str] = {}
    for key, prepared in steps.items():
        uses = prepared.step.uses
        if uses == HEALTH_CHECK:
            refused[key] = (
                "a Route 53 health check is not a CloudWatch alarm: ARC's associatedAlarms hold alarms only "
                "(an alarm on the check's HealthCheckStatus metric, AWS/Route53 in us-east-1, could be one)"
            )
            continue
        if uses != ALARM_CHECK:
            continue
        try:
            name, entry = _entry(Context(prepared, settings, plan))
        except Unmappable as why:
            refused[key] = str(why)
            continue
        same = next((a for a in alarms.values() if a.entry == entry), None)
        if same is not None:
            alarms[same.name] = Alarm(same.name, (*same.steps, key), same.entry)
            continue
        if name in alarms:  # the same name in the other Region or account
            name = f"{name} ({key})"
        alarms[name] = Alarm(name, (key,), entry)
    return alarms, refused


def _entry(ctx: Context) -> tuple[str, dict[str, Any]]:
    name = ctx.text("alarm")
    state = str(ctx.params.get("state", "OK"))
    if state != "OK":
        raise Unmappable(
            f"it waits for the alarm to be {state}: ARC reads an application health alarm as healthy when it "
            "is OK"
        )
    s = ctx.settings
    if ctx.region not in (s.primary_region, s.recovery_region):
        raise Unmappable(
            f"the alarm is in {ctx.region}, which is neither --primary-region {s.primary_region} nor "
            f"--recovery-region {s.recovery_region}"
        )
    arn = f"arn:{ctx.partition}:cloudwatch:{ctx.region}:{ctx.account}:alarm:{name}"
    return name, {"resourceIdentifier": arn, "alarmType": "applicationHealth", **ctx.cross_account()}
