"""check.route53_health against moto (whose one health checker always reports healthy), and with
botocore's Stubber for what moto cannot show: checkers that disagree, none reporting yet, a
calculated health check."""

from __future__ import annotations

from datetime import datetime, timezone
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
from drplan.sandbox.ids import HEALTH_CHECK_IDS, EmulatedIds
from tests.runs import FAST, one_step, run_plan, seed

ACTION = "check.route53_health"
PLAN_ID = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"


@pytest.fixture
def r53():
    with mock_aws():
        yield boto3.client("route53", region_name="us-east-1")


@pytest.fixture
def check_id(r53) -> str:
    config = {
        "Type": "HTTPS",
        "FullyQualifiedDomainName": "shop.example.com",
        "Port": 443,
        "ResourcePath": "/health",
    }
    return str(r53.create_health_check(CallerReference="t", HealthCheckConfig=config)["HealthCheck"]["Id"])


def step_context(data: dict[str, Any], *, aws: AwsAccess | None = None):
    prepared = prepare(build_plan(data), "recover", registry(), run_id="t35t1d")
    runner = Runner(prepared, aws or AwsSession(region="us-east-1"), EventBus("t35t1d"), RunOptions(**FAST))
    step = prepared.steps["svc.s"]
    return runner.context(step, step.params)


def test_passes_when_the_checkers_report_healthy(check_id):
    run = run_plan(one_step(ACTION, {"health_check_id": check_id}))
    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert rec.outputs == {"health_check_id": check_id, "healthy_checkers": 1, "checkers": 1}
    assert {c.operation for c in run.calls} == {"GetHealthCheck", "GetHealthCheckStatus"}


def test_a_missing_health_check_fails_at_once(r53):
    run = run_plan(one_step(ACTION, {"health_check_id": PLAN_ID}))
    assert run.record().status == "failed"
    assert run.record().error == f"Route 53 health check {PLAN_ID} does not exist"


def test_runs_in_drills(check_id):
    assert registry()[ACTION].drill == "run"
    run = run_plan(one_step(ACTION, {"health_check_id": check_id}), "drill")
    assert run.record().status == "succeeded", run.record().error


def test_preflight_is_read_only(check_id):
    session = AwsSession(region="us-east-1", read_only=True)
    calls: list[Any] = []
    session.on_call = calls.append
    [ok] = registry()[ACTION].preflight(
        step_context(one_step(ACTION, {"health_check_id": check_id}), aws=session)
    )
    assert ok.status == "ok"
    assert ok.message == (
        f"health check {check_id} (HTTPS shop.example.com/health): 1 of 1 checkers report healthy now"
    )
    assert {c.operation for c in calls} == {"GetHealthCheck", "GetHealthCheckStatus"}


class _Stubbed(AwsAccess):
    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str, *, region: str | None = None, role_arn: str | None = None) -> Any:
        return self._client

    def region_of(self, region: str | None) -> str:
        return "us-east-1"


def _check(kind: str = "HTTPS") -> dict[str, Any]:
    config: dict[str, Any] = {"Type": kind}
    if kind == "CALCULATED":
        config["ChildHealthChecks"] = ["a"]
    else:
        config.update(
            {"FullyQualifiedDomainName": "shop.example.com", "Port": 443, "ResourcePath": "/health"}
        )
    return {
        "HealthCheck": {
            "Id": PLAN_ID,
            "CallerReference": "t",
            "HealthCheckConfig": config,
            "HealthCheckVersion": 1,
        }
    }


def _status(healthy: int, failing: int) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    regions = [
        "us-east-1",
        "us-west-1",
        "us-west-2",
        "eu-west-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "sa-east-1",
    ]
    seen = [
        {
            "Region": regions[i % len(regions)],
            "IPAddress": f"192.0.2.{i}",
            "StatusReport": {
                "Status": "Success: HTTP Status Code 200, OK"
                if i < healthy
                else "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are being blocked by your firewall.",
                "CheckedTime": now,
            },
        }
        for i in range(healthy + failing)
    ]
    return {"HealthCheckObservations": seen}


def test_waits_until_enough_checkers_report_healthy():
    client = boto3.client("route53", region_name="us-east-1")
    by_id = {"HealthCheckId": PLAN_ID}
    action = registry()[ACTION]
    ctx = step_context(
        one_step(ACTION, {"health_check_id": PLAN_ID, "min_healthy_percent": 50}), aws=_Stubbed(client)
    )
    with Stubber(client) as stub:
        stub.add_response("get_health_check", _check(), by_id)
        stub.add_response("get_health_check_status", {"HealthCheckObservations": []}, by_id)
        stub.add_response("get_health_check_status", _status(3, 5), by_id)
        stub.add_response("get_health_check_status", _status(4, 4), by_id)
        handle = action.start(ctx)
        polls = [action.poll(ctx, handle) for _ in range(3)]
        stub.assert_no_pending_responses()
    assert [(p.done, p.note) for p in polls] == [
        (False, f"health check {PLAN_ID}: no health checker has reported yet"),
        (
            False,
            f"health check {PLAN_ID}: 3 of 8 health checkers report healthy, 50% needed; e.g. (eu-west-1) "
            "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are "
            "being blocked by your firewall.",
        ),
        (True, f"health check {PLAN_ID}: 4 of 8 health checkers report healthy"),
    ]
    assert polls[0].retry_after == 10.0
    assert action.result(ctx, handle) == {"health_check_id": PLAN_ID, "healthy_checkers": 4, "checkers": 8}


def test_all_checkers_by_default_and_calculated_health_checks_are_refused():
    client = boto3.client("route53", region_name="us-east-1")
    by_id = {"HealthCheckId": PLAN_ID}
    action = registry()[ACTION]
    ctx = step_context(one_step(ACTION, {"health_check_id": PLAN_ID}), aws=_Stubbed(client))
    with Stubber(client) as stub:
        stub.add_response("get_health_check", _check(), by_id)
        stub.add_response("get_health_check_status", _status(7, 1), by_id)
        handle = action.start(ctx)
        assert not action.poll(ctx, handle).done
        stub.add_response("get_health_check", _check("CALCULATED"), by_id)
        from drplan.errors import StepFailed

        with pytest.raises(StepFailed, match="is CALCULATED: Route 53 reports no checker status for it"):
            action.start(ctx)


def test_seed_maps_the_plans_health_check_id_to_the_one_it_creates(r53):
    data = one_step(ACTION, {"health_check_id": PLAN_ID})
    state: dict[str, Any] = {}
    session = AwsSession(region="us-east-1", customize=EmulatedIds(state).customize)
    seed(step_context(data, aws=session), state)
    seed(step_context(data, aws=session), state)  # idempotent
    [created] = r53.list_health_checks()["HealthChecks"]
    assert state[HEALTH_CHECK_IDS] == {PLAN_ID: created["Id"]}
    run = run_plan(data, aws=AwsSession(region="us-east-1", customize=EmulatedIds(state).customize))
    assert run.record().status == "succeeded", run.record().error
    assert run.record().outputs["health_check_id"] == PLAN_ID
