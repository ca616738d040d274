"""aws.autoscaling.set_capacity exported to Step Functions and executed by moto's interpreter: the
same group afterwards as drplan's own recover, the same outputs and refusals, and a rollback that
puts the capacity back as the local rollback does. moto starts every desired instance at once,
InService and Healthy."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.export import ExportRefused
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    RUN_ID,
    SFN,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    lint_template,
    records,
)

REGION = "us-east-1"


def scale(desired: Any = 3, **extra: Any) -> dict[str, Any]:
    step: dict[str, Any] = {
        "id": "scale",
        "uses": "aws.autoscaling.set_capacity",
        "with": {"group": "web-asg", "desired": desired, **extra},
    }
    return plan_data({"web": {"steps": [step]}}, name="asg")


def failing_after(data: dict[str, Any]) -> dict[str, Any]:
    data["services"]["db"] = {
        "depends_on": ["web"],
        "steps": [
            {
                "id": "restore",
                "uses": "aws.dynamodb.restore_backup",
                "with": {"source_table": "missing", "target": "orders-restored"},
            }
        ],
    }
    return data


def seed_group() -> None:
    asg = boto3.client("autoscaling", region_name=REGION)
    asg.create_launch_configuration(
        LaunchConfigurationName="web", ImageId="ami-12c6146b", InstanceType="t3.micro"
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName="web-asg",
        LaunchConfigurationName="web",
        MinSize=1,
        MaxSize=4,
        DesiredCapacity=1,
        AvailabilityZones=["us-east-1a"],
    )


def group() -> dict[str, Any]:
    (g,) = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups(
        AutoScalingGroupNames=["web-asg"]
    )["AutoScalingGroups"]
    ready = [i for i in g["Instances"] if i["LifecycleState"] == "InService"]
    return {"min": g["MinSize"], "max": g["MaxSize"], "desired": g["DesiredCapacity"], "ready": len(ready)}


def test_the_export_lints() -> None:
    for extra in ({}, {"min": 2, "max": 6}, {"wait_in_service": False}):
        exported = export_plan(build_plan(scale(**extra)), "recover", rollback_on_failure=True)
        assert lint_definition(exported.definition) == []
    assert lint_template(exported.template) == []


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, {"max": 6}], ids=["desired", "desired and max"])
def test_a_recovery_scales_the_group_as_the_local_recover_does(extra: dict[str, Any]) -> None:
    data = scale(4 if not extra else 6, **extra)
    with mock_aws():
        seed_group()
        local = run_plan(data, run_id=RUN_ID)
        expected = group()
    (rec,) = local.outcome.records.values()
    assert rec.status == "succeeded", rec.error
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        seed_group()
        described = execute(exported.definition, table=None)
        after = group()
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == expected
    (sid,) = exported.sids.values()
    assert records(described)["steps"][sid]["out"] == rec.outputs


@pytest.mark.slow
def test_a_target_outside_the_bounds_fails_with_the_local_message() -> None:
    data = scale(7)  # max 4, not given
    with mock_aws():
        seed_group()
        local = run_plan(data, run_id=RUN_ID)
    (rec,) = local.outcome.records.values()
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        seed_group()
        described = execute(exported.definition, table=None)
        after = group()
    (sid,) = exported.sids.values()
    step = records(described)["steps"][sid]
    assert step["status"] == "failed" and rec.error is not None
    assert step["cause"] in rec.error  # the local message
    assert step["cause"] == (
        "group web-asg: desired capacity 7 is above the max size 4 (give `max` to raise it); "
        "the group was left unchanged"
    )
    assert after["desired"] == 1


@pytest.mark.slow
def test_a_rollback_puts_the_capacity_back_as_the_local_rollback_does() -> None:
    data = failing_after(scale(3, min=2, max=5))
    with mock_aws():
        seed_group()
        local = run_plan(data, run_id=RUN_ID)
        assert local.outcome.records["web.scale"].status == "succeeded"
        assert local.runner.rollback() == []
        expected = group()
    assert (expected["min"], expected["max"], expected["desired"]) == (1, 4, 1)
    exported = export_plan(
        build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE, rollback_on_failure=True
    )
    with mock_aws(config=SFN):
        seed_group()
        described = execute(exported.definition, table=None)
        after = group()
    assert described["status"] == "FAILED" and described["error"] == "drplan.StepFailed", described.get(
        "cause"
    )
    assert {k: after[k] for k in ("min", "max", "desired")} == {
        k: expected[k] for k in ("min", "max", "desired")
    }
    doc = records(described)
    assert doc["steps"][exported.sids["web.scale"]]["prev"] == {
        "MinSize": 1,
        "MaxSize": 4,
        "DesiredCapacity": 1,
    }
    assert doc["cleanup"][exported.sids["web.scale"]] == {"status": "removed"}


def test_sizes_must_be_known_whole_numbers() -> None:
    with pytest.raises(ExportRefused, match="`desired` must be a whole number"):
        export_plan(build_plan(scale("three")), "recover")
    with pytest.raises(ExportRefused, match="`group` must be known when the plan is exported"):
        export_plan(build_plan(scale(group="${db.restore.group}")), "recover")
