"""aws.ecs.set_capacity exported to Step Functions and executed by moto's interpreter: the same
service afterwards as drplan's own recover, the same outputs, the same refusals.

moto runs every desired task at once, so the service is steady at the first look; the polling
states are the local action's (tests/test_action_ecs.py tests the local wait with Stubber).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.export import ExportRefused
from tests.moto_sdk_casing import moto_maps_sdk_casing
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


@pytest.fixture(autouse=True)
def _sdk_casing() -> Iterator[None]:
    with moto_maps_sdk_casing():
        yield


def scale(desired: Any = 3, **extra: Any) -> dict[str, Any]:
    step = {
        "id": "scale",
        "uses": "aws.ecs.set_capacity",
        "with": {"cluster": "prod", "service": "web", "desired": desired},
    }
    step["with"].update(extra)
    return plan_data({"web": {"steps": [step]}}, name="ecs")


def seed_service() -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "web", "image": "nginx", "memory": 128}]
    )
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=1)


def service() -> dict[str, Any]:
    found = boto3.client("ecs", region_name=REGION).describe_services(cluster="prod", services=["web"])
    (svc,) = found["services"]
    return {"desired": svc["desiredCount"], "running": svc["runningCount"], "status": svc["status"]}


def test_the_export_lints_and_the_role_may_scale_the_service() -> None:
    for wait in (True, False):
        exported = export_plan(build_plan(scale(wait_steady=wait)), "recover")
        assert lint_definition(exported.definition) == []
        assert lint_template(exported.template) == []
    actions = {a for s in exported.policy["Statement"] for a in s["Action"]}
    assert {"ecs:DescribeServices", "ecs:UpdateService"} <= actions


@pytest.mark.slow
def test_a_recovery_scales_the_service_as_the_local_recover_does() -> None:
    data = scale(3)
    with mock_aws():
        seed_service()
        local = run_plan(data, run_id=RUN_ID)
        expected = service()
    (rec,) = local.outcome.records.values()
    assert rec.status == "succeeded" and expected["desired"] == 3
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        seed_service()
        described = execute(exported.definition, table=None)
        after = service()
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == expected
    (sid,) = exported.sids.values()
    assert (
        records(described)["steps"][sid]["out"]
        == rec.outputs
        == {
            "cluster": "prod",
            "service": "web",
            "desired": 3,
            "running": 3,
        }
    )


@pytest.mark.slow
def test_a_missing_service_fails_the_step_with_the_local_message() -> None:
    data = scale(2)
    with mock_aws():
        boto3.client("ecs", region_name=REGION).create_cluster(clusterName="prod")
        local = run_plan(data, run_id=RUN_ID)
    (rec,) = local.outcome.records.values()
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        boto3.client("ecs", region_name=REGION).create_cluster(clusterName="prod")
        described = execute(exported.definition, table=None)
    (sid,) = exported.sids.values()
    step = records(described)["steps"][sid]
    assert described["status"] == "FAILED" and step["status"] == "failed"
    assert rec.error is not None and step["cause"] in rec.error
    assert step["cause"] == "ECS service web does not exist in cluster prod"


def test_what_needs_the_previous_count_is_refused() -> None:
    with pytest.raises(ExportRefused, match="retries put the previous count back"):
        export_plan(build_plan(_with_retries(scale())), "recover")
    with pytest.raises(ExportRefused, match="rollback puts the previous count back"):
        export_plan(build_plan(scale()), "recover", rollback_on_failure=True)
    drill = scale()
    drill["services"]["web"]["steps"][0]["drill_with"] = {"service": "web-drill"}
    with pytest.raises(ExportRefused, match="a drill that scales a drill service"):
        export_plan(build_plan(drill), "drill")
    with pytest.raises(ExportRefused, match="`desired` must be a whole number"):
        export_plan(build_plan(scale("three")), "recover")


def _with_retries(data: dict[str, Any]) -> dict[str, Any]:
    data["services"]["web"]["steps"][0]["retries"] = 1
    return data
