"""check.cloudwatch_alarm against moto: an alarm held in the expected state, counted from when the
step started watching or the alarm entered the state, whichever is later."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from drplan.actions import registry
from drplan.actions.base import AwsAccess
from drplan.aws import AwsSession
from drplan.engine.events import EventBus
from drplan.engine.prepare import prepare
from drplan.engine.records import RunOptions
from drplan.engine.runner import Runner
from drplan.model import build_plan
from tests.runs import FAST, one_step, run_plan, seed

ACTION = "check.cloudwatch_alarm"


@pytest.fixture
def cw():
    with mock_aws():
        client = boto3.client("cloudwatch", region_name="us-east-1")
        client.put_metric_alarm(
            AlarmName="api-5xx",
            Namespace="shop",
            MetricName="5xx",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        client.set_alarm_state(AlarmName="api-5xx", StateValue="OK", StateReason="test")
        yield client


def step_context(data: dict[str, Any], *, aws: AwsAccess | None = None, **options: Any):
    prepared = prepare(build_plan(data), "recover", registry(), run_id="t35t1d")
    runner = Runner(
        prepared, aws or AwsSession(region="us-east-1"), EventBus("t35t1d"), RunOptions(**{**FAST, **options})
    )
    step = prepared.steps["svc.s"]
    return runner.context(step, step.params)


def test_passes_once_the_alarm_has_been_ok_for_the_period(cw):
    started = time.monotonic()
    run = run_plan(one_step(ACTION, {"alarm": "api-5xx", "for": "PT0.3S", "interval": "PT0.1S"}))
    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert time.monotonic() - started >= 0.3  # held from when the step started watching
    assert rec.outputs["alarm"] == "api-5xx" and rec.outputs["state"] == "OK"
    assert datetime.fromisoformat(rec.outputs["since"]) <= datetime.now(timezone.utc)
    assert {c.operation for c in run.calls} == {"DescribeAlarms"}


def test_an_alarm_in_another_state_keeps_the_check_waiting_until_its_timeout(cw):
    cw.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="Threshold Crossed: 12 errors")
    run = run_plan(
        one_step(ACTION, {"alarm": "api-5xx", "for": "PT0.1S", "interval": "PT0.1S"}, timeout="PT0.5S")
    )
    assert run.record().status == "failed"
    assert run.record().error.startswith("timed out after")
    notes = [e.data.get("note") for e in run.events if e.kind == "step.progress"]
    assert "alarm api-5xx is ALARM: Threshold Crossed: 12 errors" in notes


def test_a_state_change_restarts_the_count_and_another_state_can_be_expected(cw):
    action = registry()[ACTION]
    ctx = step_context(one_step(ACTION, {"alarm": "api-5xx", "for": "PT10M", "interval": "PT1S"}))
    handle = action.start(ctx)
    handle["watching_since"] = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    cw.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="flap")
    cw.set_alarm_state(AlarmName="api-5xx", StateValue="OK", StateReason="recovered")
    poll = action.poll(ctx, handle)  # OK again, but only since just now
    assert (
        not poll.done and poll.note.startswith("alarm api-5xx is OK, for ") and poll.note.endswith(" of 10m")
    )
    assert poll.retry_after == 1.0

    ctx = step_context(one_step(ACTION, {"alarm": "api-5xx", "state": "ALARM", "for": "PT0S"}))
    cw.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="drill: injected errors")
    handle = action.start(ctx)
    assert action.poll(ctx, handle).done


def test_a_missing_alarm_fails_at_once(cw):
    run = run_plan(one_step(ACTION, {"alarm": "nope"}))
    assert run.record().status == "failed"
    assert run.record().error == "CloudWatch alarm nope does not exist"


class _Stubbed(AwsAccess):
    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str, *, region: str | None = None, role_arn: str | None = None) -> Any:
        return self._client

    def region_of(self, region: str | None) -> str:
        return "us-east-1"


def test_composite_alarms_count_too():
    """Stubber: moto has no composite alarms."""
    client = boto3.client("cloudwatch", region_name="us-east-1")
    ctx = step_context(one_step(ACTION, {"alarm": "shop-healthy", "for": "PT0S"}), aws=_Stubbed(client))
    composite = {
        "AlarmName": "shop-healthy",
        "AlarmRule": 'ALARM("api-5xx")',
        "StateValue": "OK",
        "StateUpdatedTimestamp": datetime.now(timezone.utc) - timedelta(hours=2),
        "StateTransitionedTimestamp": datetime.now(timezone.utc) - timedelta(hours=1),
    }
    asked = {"AlarmNames": ["shop-healthy"], "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}
    action = registry()[ACTION]
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_response("describe_alarms", {"MetricAlarms": [], "CompositeAlarms": [composite]}, asked)
        handle = action.start(ctx)
        poll = action.poll(ctx, handle)
    assert poll.done, poll
    assert handle["since"] == composite["StateTransitionedTimestamp"].isoformat()


def test_an_embedding_that_shortens_waits_shortens_the_hold_and_says_so(cw):
    ctx = step_context(one_step(ACTION, {"alarm": "api-5xx", "for": "PT1H"}), max_wait=0.2)
    notes: list[str] = []
    ctx.note = notes.append
    handle = registry()[ACTION].start(ctx)
    assert handle["hold"] == 0.2
    assert notes == ["holding 0.2s instead of 1h (waits are shortened here)"]


def test_runs_in_drills_and_its_estimate_is_the_hold(cw):
    action = registry()[ACTION]
    assert action.drill == "run" and action.family == "check"
    assert action.estimate({"alarm": "a", "for": "PT5M"}) == timedelta(minutes=5)
    assert action.estimate({"alarm": "a"}) == timedelta(minutes=1)
    drill = run_plan(one_step(ACTION, {"alarm": "api-5xx", "for": "PT0.1S", "interval": "PT0.1S"}), "drill")
    assert drill.record().status == "succeeded", drill.record().error


def test_preflight_is_read_only(cw):
    session = AwsSession(region="us-east-1", read_only=True)
    calls: list[Any] = []
    session.on_call = calls.append
    action = registry()[ACTION]
    [ok] = action.preflight(step_context(one_step(ACTION, {"alarm": "api-5xx"}), aws=session))
    assert (ok.status, ok.message) == ("ok", "alarm api-5xx is OK now; the check waits for OK")
    [missing] = action.preflight(step_context(one_step(ACTION, {"alarm": "nope"}), aws=session))
    assert (missing.status, missing.message) == ("error", "CloudWatch alarm nope does not exist")
    assert {c.operation for c in calls} == {"DescribeAlarms"}


def test_seed_creates_the_alarm_in_the_state_the_check_expects():
    with mock_aws():
        for state in ("OK", "ALARM"):
            data = one_step(ACTION, {"alarm": f"shop-{state.lower()}", "state": state, "for": "PT0.1S"})
            seed(step_context(data))
            seed(step_context(data))  # idempotent
            client = boto3.client("cloudwatch", region_name="us-east-1")
            [alarm] = client.describe_alarms(AlarmNames=[f"shop-{state.lower()}"])["MetricAlarms"]
            assert alarm["StateValue"] == state
            run = run_plan(data)
            assert run.record().status == "succeeded", run.record().error
