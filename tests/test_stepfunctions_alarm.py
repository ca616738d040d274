"""``check.cloudwatch_alarm`` exported to Step Functions: the alarm held in its state for ``for``,
measured in JSONata (timestamps subtracted), against drplan's own run of the same plan in moto:
the same statuses, outputs and messages. Plans written from docs/actions.md."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import boto3
import pytest
from moto import mock_aws

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from tests.moto_jsonata import moto_evaluates_jsonata
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    SFN,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    records,
    statuses,
)

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00")


def alarms() -> None:
    """`api-5xx` OK, `api-latency` in ALARM."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for name in ("api-5xx", "api-latency"):
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            MetricName=name,
            Namespace="Shop",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="quiet")
    cloudwatch.set_alarm_state(AlarmName="api-latency", StateValue="ALARM", StateReason="slow")


def plan() -> dict[str, Any]:
    def check(alarm: str, **extra: Any) -> dict[str, Any]:
        return {
            "steps": [
                {
                    "id": "calm",
                    "uses": "check.cloudwatch_alarm",
                    "with": {"alarm": alarm, "for": "PT3S", "interval": "PT1S"},
                    **extra,
                }
            ]
        }

    return plan_data(
        {
            "api": check("api-5xx"),
            "latency": check("api-latency", timeout="PT4S"),
            "ghost": check("api-ghost"),
            "after": {
                "depends_on": ["latency"],
                "steps": [{"id": "w", "uses": "wait", "with": {"duration": "PT1S"}}],
            },
        },
        name="alarms",
    )


@pytest.mark.slow
def test_an_alarm_held_in_its_state_passes_and_the_others_fail_as_locally() -> None:
    with mock_aws():
        alarms()
        local = run_plan(plan(), run_id=RUN_ID)
    expected = {k: r.status for k, r in local.outcome.records.items()}
    assert expected == {
        "api.calm": "succeeded",
        "latency.calm": "failed",
        "ghost.calm": "failed",
        "after.w": "skipped",
    }
    exported = export_plan(build_plan(plan()), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with mock_aws(config=SFN), moto_evaluates_jsonata():
        alarms()
        described = execute(exported.definition, table=exported.coordination_table)
    doc = records(described)
    assert statuses(doc, exported.sids) == expected
    steps = {k: doc["steps"][sid] for k, sid in exported.sids.items()}
    for key in ("latency.calm", "ghost.calm"):
        assert steps[key]["cause"] == local.outcome.records[key].error, key
    assert steps["ghost.calm"]["cause"] == "CloudWatch alarm api-ghost does not exist"
    assert steps["latency.calm"]["cause"] == "timed out after 4.0s"
    out, local_out = steps["api.calm"]["out"], local.outcome.records["api.calm"].outputs
    assert {k: out[k] for k in ("alarm", "state")} == {k: local_out[k] for k in ("alarm", "state")}
    assert ISO.fullmatch(out["since"]) and ISO.fullmatch(local_out["since"])
    # Two emulators, two alarms set a moment apart: both `since` are when that alarm entered OK.
    assert abs(
        dt.datetime.fromisoformat(out["since"]) - dt.datetime.fromisoformat(local_out["since"])
    ) < dt.timedelta(seconds=30)
    assert described["seconds"] >= 3  # it held the alarm for the 3 s asked, from when it started watching
