"""aws.autoscaling.set_capacity against moto: the group's sizes and InService instances checked after.

moto launches instances InService at once and has no scaling activities, so the wait for
instances (and the note about a failed launch) is tested with botocore's Stubber, which validates
the parameters against the real Auto Scaling model.
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

ACTION = "aws.autoscaling.set_capacity"


@pytest.fixture
def asg():
    with mock_aws():
        boto3.client("ec2", region_name="us-east-1").create_launch_template(
            LaunchTemplateName="web",
            LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.micro"},
        )
        client = boto3.client("autoscaling", region_name="us-east-1")
        client.create_auto_scaling_group(
            AutoScalingGroupName="web",
            LaunchTemplate={"LaunchTemplateName": "web", "Version": "$Latest"},
            MinSize=1,
            MaxSize=4,
            DesiredCapacity=1,
            AvailabilityZones=["us-east-1a"],
        )
        yield client


def group(client, name: str = "web") -> dict[str, Any]:
    return client.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def sizes(client, name: str = "web") -> tuple[int, int, int]:
    g = group(client, name)
    return g["MinSize"], g["MaxSize"], g["DesiredCapacity"]


def in_service(client, name: str = "web") -> int:
    return sum(1 for i in group(client, name)["Instances"] if i["LifecycleState"] == "InService")


def step_context(data: dict[str, Any], *, aws: AwsAccess | None = None):
    """The StepContext the engine would give the step (parameters as written: references unresolved)."""
    prepared = prepare(build_plan(data), "recover", registry(), run_id="t35t1d")
    runner = Runner(prepared, aws or AwsSession(region="us-east-1"), EventBus("t35t1d"), RunOptions(**FAST))
    step = prepared.steps["svc.s"]
    return runner.context(step, step.params)


def test_sets_desired_capacity_and_waits_for_instances(asg):
    run = run_plan(one_step(ACTION, {"group": "web", "desired": 3}))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert sizes(asg) == (1, 4, 3)  # min and max unchanged when not given
    assert in_service(asg) == 3
    assert rec.outputs == {"group": "web", "desired": 3}
    assert rec.handle["previous"] == {"MinSize": 1, "MaxSize": 4, "DesiredCapacity": 1}
    assert rec.resources == []  # it changes an existing group; nothing for drill cleanup to delete
    updates = [c.operation for c in run.calls].count("UpdateAutoScalingGroup")
    assert updates == 1


def test_min_max_and_desired_then_undo_restores_them_exactly(asg):
    run = run_plan(one_step(ACTION, {"group": "web", "desired": 6, "min": 3, "max": 12}))
    assert run.record().status == "succeeded", run.record().error
    assert sizes(asg) == (3, 12, 6)
    assert in_service(asg) == 6

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert sizes(asg) == (1, 4, 1)
    assert in_service(asg) == 1


def test_desired_above_max_fails_without_changing_the_group(asg):
    run = run_plan(one_step(ACTION, {"group": "web", "desired": 10}))
    assert run.record().status == "failed"
    assert run.record().error == (
        "group web: desired capacity 10 is above the max size 4 (give `max` to raise it); "
        "the group was left unchanged"
    )
    assert "UpdateAutoScalingGroup" not in [c.operation for c in run.calls]
    assert sizes(asg) == (1, 4, 1)


def test_desired_below_the_new_min_fails(asg):
    run = run_plan(one_step(ACTION, {"group": "web", "desired": 1, "min": 2}))
    assert run.record().status == "failed"
    assert "desired capacity 1 is below the min size 2" in run.record().error
    assert sizes(asg) == (1, 4, 1)


def test_missing_group_fails_clearly(asg):
    run = run_plan(one_step(ACTION, {"group": "nope", "desired": 2}))
    assert run.record().status == "failed"
    assert run.record().error == "Auto Scaling group nope does not exist"


def test_without_wait_in_service_it_finishes_at_once(asg):
    run = run_plan(one_step(ACTION, {"group": "web", "desired": 2, "wait_in_service": False}))
    assert run.record().status == "succeeded", run.record().error
    assert [c.operation for c in run.calls] == ["DescribeAutoScalingGroups", "UpdateAutoScalingGroup"]
    assert sizes(asg) == (1, 4, 2)


def test_undo_tolerates_a_deleted_group(asg):
    run = run_plan(one_step(ACTION, {"group": "web", "desired": 2}))
    assert run.record().status == "succeeded", run.record().error
    asg.delete_auto_scaling_group(AutoScalingGroupName="web", ForceDelete=True)
    assert run.runner.undo(["svc.s"], reason="test") == []


def test_skipped_in_drills(asg):
    run = run_plan(one_step(ACTION, {"group": "web", "desired": 3}), "drill")
    assert "svc.s" in run.prepared.skipped
    assert sizes(asg) == (1, 4, 1)


class _Stubbed(AwsAccess):
    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str, *, region: str | None = None, role_arn: str | None = None) -> Any:
        return self._client

    def region_of(self, region: str | None) -> str:
        return "us-east-1"


def _described(states: list[str]) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    instances = [
        {
            "InstanceId": f"i-{n:017x}",
            "AvailabilityZone": "us-east-1a",
            "LifecycleState": s,
            "HealthStatus": "Healthy",
            "ProtectedFromScaleIn": False,
        }
        for n, s in enumerate(states)
    ]
    g = {
        "AutoScalingGroupName": "web",
        "MinSize": 1,
        "MaxSize": 4,
        "DesiredCapacity": 3,
        "DefaultCooldown": 300,
        "AvailabilityZones": ["us-east-1a"],
        "HealthCheckType": "EC2",
        "CreatedTime": now,
        "Instances": instances,
    }
    return {"AutoScalingGroups": [g]}


def test_poll_waits_for_in_service_instances_and_says_why_launches_fail():
    """Stubber: moto has instances InService at once and records no scaling activities."""
    client = boto3.client("autoscaling", region_name="us-east-1")
    ctx = step_context(one_step(ACTION, {"group": "web", "desired": 3}), aws=_Stubbed(client))
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    handle = {
        "group": "web",
        "target": {"MinSize": 1, "MaxSize": 4, "DesiredCapacity": 3},
        "wait": True,
        "since": since.isoformat(),
    }
    activity = {
        "ActivityId": "a1",
        "AutoScalingGroupName": "web",
        "Cause": "scale out",
        "StartTime": datetime.now(timezone.utc),
        "StatusCode": "Failed",
        "StatusMessage": "The image id 'ami-gone' does not exist",
    }
    action = registry()[ACTION]
    with Stubber(client) as stub:
        stub.add_response(
            "describe_auto_scaling_groups",
            _described(["InService", "Pending"]),
            {"AutoScalingGroupNames": ["web"]},
        )
        stub.add_response(
            "describe_scaling_activities",
            {"Activities": [activity]},
            {"AutoScalingGroupName": "web", "MaxRecords": 5},
        )
        stub.add_response(
            "describe_auto_scaling_groups", _described(["InService"] * 3), {"AutoScalingGroupNames": ["web"]}
        )
        first = action.poll(ctx, handle)
        assert (first.done, first.note) == (
            False,
            "1 of 3 instances InService; last scaling activity failed: "
            "The image id 'ami-gone' does not exist",
        )
        assert action.poll(ctx, handle).done is True
        stub.assert_no_pending_responses()


def test_preflight_is_read_only_and_compares_current_and_target(asg):
    session = AwsSession(region="us-east-1", read_only=True)
    calls: list[Any] = []
    session.on_call = calls.append
    action = registry()[ACTION]

    [ok] = action.preflight(
        step_context(one_step(ACTION, {"group": "web", "desired": 3, "max": 6}), aws=session)
    )
    assert ok.status == "ok"
    assert ok.facts["current"] == {"MinSize": 1, "MaxSize": 4, "DesiredCapacity": 1}
    assert ok.facts["target"] == {"MinSize": 1, "MaxSize": 6, "DesiredCapacity": 3}
    assert ok.message == "group web is at desired 1 (min 1, max 4); would set desired 3 (min 1, max 6)"

    [bad] = action.preflight(step_context(one_step(ACTION, {"group": "web", "desired": 9}), aws=session))
    assert bad.status == "error" and "above the max size 4" in bad.message

    [missing] = action.preflight(step_context(one_step(ACTION, {"group": "nope", "desired": 1}), aws=session))
    assert (missing.status, missing.message) == ("error", "Auto Scaling group nope does not exist")

    [ref] = action.preflight(
        step_context(one_step(ACTION, {"group": "web", "desired": "${app.size.count}"}), aws=session)
    )
    assert ref.status == "ok" and ref.facts["target"] == {"DesiredCapacity": "${app.size.count}"}
    assert {c.operation for c in calls} == {"DescribeAutoScalingGroups"}


def test_seed_creates_an_empty_group_that_the_step_scales(asg):
    data = one_step(ACTION, {"group": "shop-web", "desired": 6, "min": 3, "max": 12})
    seed(step_context(data))
    seed(step_context(data))  # idempotent
    assert sizes(asg, "shop-web") == (0, 12, 0)

    run = run_plan(data)
    assert run.record().status == "succeeded", run.record().error
    assert sizes(asg, "shop-web") == (3, 12, 6)
    assert in_service(asg, "shop-web") == 6
