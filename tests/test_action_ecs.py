"""aws.ecs.set_capacity against moto: the service's desired count set, steady state awaited, and put
back by undo.

moto runs every desired task at once and records no service events, so the wait for tasks (and the
notes on why they do not start, and a failed deployment) is tested with botocore's Stubber, which
validates the parameters against the real ECS model.
"""

from __future__ import annotations

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

ACTION = "aws.ecs.set_capacity"


@pytest.fixture
def ecs():
    with mock_aws():
        client = boto3.client("ecs", region_name="us-east-1")
        client.create_cluster(clusterName="prod")
        client.register_task_definition(
            family="web", containerDefinitions=[{"name": "web", "image": "nginx", "memory": 128}]
        )
        client.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=0)
        client.update_service(cluster="prod", service="web", desiredCount=2)
        yield client


def service(client: Any, name: str = "web", cluster: str = "prod") -> dict[str, Any]:
    found: dict[str, Any] = client.describe_services(cluster=cluster, services=[name])["services"][0]
    return found


def step_context(data: dict[str, Any], *, aws: AwsAccess | None = None):
    prepared = prepare(build_plan(data), "recover", registry(), run_id="t35t1d")
    runner = Runner(prepared, aws or AwsSession(region="us-east-1"), EventBus("t35t1d"), RunOptions(**FAST))
    step = prepared.steps["svc.s"]
    return runner.context(step, step.params)


def test_sets_the_desired_count_and_waits_for_steady_state(ecs):
    run = run_plan(one_step(ACTION, {"cluster": "prod", "service": "web", "desired": 6}))
    rec = run.record()
    assert rec.status == "succeeded", rec.error
    now = service(ecs)
    assert (now["desiredCount"], now["runningCount"]) == (6, 6)
    assert rec.outputs == {"cluster": "prod", "service": "web", "desired": 6, "running": 6}
    assert rec.handle["previous"] == 2
    assert rec.resources == []
    assert [c.operation for c in run.calls].count("UpdateService") == 1


def test_undo_restores_the_previous_count(ecs):
    run = run_plan(one_step(ACTION, {"cluster": "prod", "service": "web", "desired": 8}))
    assert run.record().status == "succeeded", run.record().error
    assert run.runner.undo(["svc.s"], reason="test") == []
    now = service(ecs)
    assert (now["desiredCount"], now["runningCount"]) == (2, 2)


def test_a_service_given_by_arn_and_a_missing_service(ecs):
    arn = service(ecs)["serviceArn"]
    cluster_arn = ecs.describe_clusters(clusters=["prod"])["clusters"][0]["clusterArn"]
    run = run_plan(one_step(ACTION, {"cluster": cluster_arn, "service": arn, "desired": 3}))
    assert run.record().status == "succeeded", run.record().error
    assert run.record().outputs["service"] == "web" and run.record().outputs["cluster"] == "prod"
    missing = run_plan(one_step(ACTION, {"cluster": "prod", "service": "api", "desired": 3}))
    assert missing.record().status == "failed"
    assert missing.record().error == "ECS service api does not exist in cluster prod"
    no_cluster = run_plan(one_step(ACTION, {"cluster": "nope", "service": "web", "desired": 3}))
    assert no_cluster.record().error == "ECS service web does not exist in cluster nope"


def test_an_inactive_service_is_refused(ecs):
    ecs.update_service(cluster="prod", service="web", desiredCount=0)
    ecs.delete_service(cluster="prod", service="web")
    run = run_plan(one_step(ACTION, {"cluster": "prod", "service": "web", "desired": 3}))
    assert run.record().status == "failed"
    assert run.record().error == "ECS service web is INACTIVE, not ACTIVE"


def test_without_wait_steady_it_finishes_at_once(ecs):
    run = run_plan(
        one_step(ACTION, {"cluster": "prod", "service": "web", "desired": 4, "wait_steady": False})
    )
    assert run.record().status == "succeeded", run.record().error
    assert [c.operation for c in run.calls] == ["DescribeServices", "UpdateService"]


def test_skipped_in_drills_unless_drill_with_names_a_drill_service(ecs):
    ecs.create_service(cluster="prod", serviceName="web-drill", taskDefinition="web", desiredCount=0)
    skipped = run_plan(one_step(ACTION, {"cluster": "prod", "service": "web", "desired": 5}), "drill")
    assert "svc.s" in skipped.prepared.skipped
    data = one_step(
        ACTION, {"cluster": "prod", "service": "web", "desired": 5}, drill_with={"service": "web-drill"}
    )
    drill = run_plan(data, "drill")
    assert drill.record().status == "succeeded", drill.record().error
    assert service(ecs, "web-drill")["desiredCount"] == 5
    assert service(ecs)["desiredCount"] == 2  # production untouched
    assert drill.runner.undo(["svc.s"], reason="drill cleanup") == []
    assert service(ecs, "web-drill")["desiredCount"] == 0


def test_preflight_is_read_only(ecs):
    session = AwsSession(region="us-east-1", read_only=True)
    calls: list[Any] = []
    session.on_call = calls.append
    action = registry()[ACTION]
    [ok] = action.preflight(
        step_context(one_step(ACTION, {"cluster": "prod", "service": "web", "desired": 4}), aws=session)
    )
    assert ok.status == "ok"
    assert (
        ok.message
        == "service web has 2 of 2 tasks running, 0 pending, 1 deployment; would set 4 desired tasks"
    )
    assert ok.facts == {"cluster": "prod", "service": "web", "desired": 2, "running": 2}
    [missing] = action.preflight(
        step_context(one_step(ACTION, {"cluster": "prod", "service": "nope", "desired": 4}), aws=session)
    )
    assert missing.status == "error"
    assert {c.operation for c in calls} == {"DescribeServices"}


class _Stubbed(AwsAccess):
    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str, *, region: str | None = None, role_arn: str | None = None) -> Any:
        return self._client

    def region_of(self, region: str | None) -> str:
        return "us-east-1"


def _described(
    running: int, deployments: int, *, rollout: str = "IN_PROGRESS", events: Any = ()
) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    primary = {
        "id": "ecs-svc/1",
        "status": "PRIMARY",
        "desiredCount": 4,
        "runningCount": running,
        "pendingCount": 4 - running,
        "rolloutState": rollout,
        "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start."
        if rollout == "FAILED"
        else "",
        "createdAt": now,
        "updatedAt": now,
    }
    old = {
        **primary,
        "id": "ecs-svc/0",
        "status": "ACTIVE",
        "rolloutState": "COMPLETED",
        "rolloutStateReason": "",
    }
    return {
        "services": [
            {
                "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/prod/web",
                "serviceName": "web",
                "status": "ACTIVE",
                "desiredCount": 4,
                "runningCount": running,
                "pendingCount": 4 - running,
                "deployments": [primary, old][:deployments],
                "events": list(events),
            }
        ],
        "failures": [],
    }


def test_poll_waits_for_running_tasks_and_a_single_deployment_and_says_why_tasks_do_not_start():
    client = boto3.client("ecs", region_name="us-east-1")
    ctx = step_context(
        one_step(ACTION, {"cluster": "prod", "service": "web", "desired": 4}), aws=_Stubbed(client)
    )
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    handle = {
        "cluster": "prod",
        "service": "web",
        "previous": 2,
        "desired": 4,
        "wait": True,
        "since": since.isoformat(),
    }
    event = {
        "id": "e1",
        "createdAt": datetime.now(timezone.utc),
        "message": "(service web) was unable to place a task because no container instance met all of its requirements.",
    }
    expected = {"cluster": "prod", "services": ["web"]}
    action = registry()[ACTION]
    with Stubber(client) as stub:
        stub.add_response("describe_services", _described(1, 1, events=[event]), expected)
        stub.add_response("describe_services", _described(4, 2), expected)
        stub.add_response("describe_services", _described(4, 1, rollout="COMPLETED"), expected)
        polls = [action.poll(ctx, handle) for _ in range(3)]
        stub.assert_no_pending_responses()
    assert [(p.done, p.note) for p in polls] == [
        (
            False,
            "1 of 4 tasks running, 3 pending, 1 deployment; ECS: (service web) was unable to place a task "
            "because no container instance met all of its requirements.",
        ),
        (False, "4 of 4 tasks running, 0 pending, 2 deployments"),
        (True, "service web is steady: 4 of 4 tasks running, 0 pending, 1 deployment"),
    ]
    assert action.result(ctx, handle)["running"] == 4


def test_a_failed_deployment_fails_the_step():
    client = boto3.client("ecs", region_name="us-east-1")
    ctx = step_context(
        one_step(ACTION, {"cluster": "prod", "service": "web", "desired": 4}), aws=_Stubbed(client)
    )
    handle = {
        "cluster": "prod",
        "service": "web",
        "desired": 4,
        "wait": True,
        "since": datetime.now(timezone.utc).isoformat(),
    }
    with Stubber(client) as stub:
        stub.add_response(
            "describe_services", _described(0, 1, rollout="FAILED"), {"cluster": "prod", "services": ["web"]}
        )
        poll = registry()[ACTION].poll(ctx, handle)
    assert poll.failed == "ECS service web: ECS deployment circuit breaker: tasks failed to start."


def test_seed_creates_the_cluster_and_an_empty_service_that_the_step_scales():
    with mock_aws():
        data = one_step(ACTION, {"cluster": "shop", "service": "storefront", "desired": 3})
        seed(step_context(data))
        seed(step_context(data))  # idempotent
        client = boto3.client("ecs", region_name="us-east-1")
        seeded = service(client, "storefront", "shop")
        assert (seeded["status"], seeded["desiredCount"]) == ("ACTIVE", 0)
        run = run_plan(data)
        assert run.record().status == "succeeded", run.record().error
        assert service(client, "storefront", "shop")["runningCount"] == 3
        assert run.runner.undo(["svc.s"], reason="test") == []
        assert service(client, "storefront", "shop")["desiredCount"] == 0


def test_a_preflight_aws_will_not_answer_is_an_error_finding_not_a_crash():
    """Through the engine's preflight, as a drill runs it: the action raises, the engine reports."""
    from drplan.engine.preflight import run_preflight

    client = boto3.client("ecs", region_name="us-east-1")
    prepared = prepare(
        build_plan(one_step(ACTION, {"cluster": "prod", "service": "web", "desired": 4})),
        "recover",
        registry(),
        run_id="t35t1d",
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "describe_services",
            "AccessDeniedException",
            "User is not authorized to perform: ecs:DescribeServices",
            400,
        )
        [finding] = run_preflight(prepared, _Stubbed(client)).results["svc.s"]
    assert finding.status == "error" and finding.checked  # a scaled service is no name a drill could take
    assert finding.message == (
        "could not check: DescribeServices: AccessDeniedException: User is not authorized to perform: "
        "ecs:DescribeServices"
    )
    assert "target" not in finding.facts and "unverified" not in finding.facts  # no reason to refuse a drill


def test_service_names_aws_would_refuse_are_reported_by_validate():
    import json

    from drplan.document import read_document
    from drplan.pipeline import validate_document

    def findings(service: str) -> list[str]:
        data = one_step(ACTION, {"cluster": "prod", "service": service, "desired": 1})
        result = validate_document(read_document("p.json", data=json.dumps(data).encode()))
        return [d.message for d in result.diagnostics if d.code == "DR212"]

    assert findings("web_app-2") == []
    assert findings("arn:aws:ecs:us-east-1:123456789012:service/prod/web") == []
    assert findings("web app") == [
        "step `s` of service `svc`: ECS service name `web app` may contain only letters, digits, `_` and `-`"
    ]
