"""The seeder of ``check.cloudwatch_alarm``: the alarm, in the state the check expects."""

from __future__ import annotations

from drplan.actions._aws import unresolved
from drplan.actions.cloudwatch.alarm import describe_alarm
from drplan.sandbox.seeders.context import SeedContext


def seed_alarm(ctx: SeedContext) -> None:
    """A metric alarm named as the plan says, set to the state the step waits for (OK by default):
    the recovered service, seen by CloudWatch."""
    name = ctx.params.get("alarm")
    if not name or unresolved(name) or describe_alarm(ctx, str(name)) is not None:
        return
    cloudwatch = ctx.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=str(name),
        AlarmDescription="drplan sandbox",
        Namespace="drplan/sandbox",
        MetricName="errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    cloudwatch.set_alarm_state(
        AlarmName=str(name),
        StateValue=str(ctx.params.get("state", "OK")),
        StateReason="seeded by the sandbox",
    )
