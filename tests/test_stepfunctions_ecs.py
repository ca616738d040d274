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


def test_what_cannot_be_exported_is_refused() -> None:
    with pytest.raises(ExportRefused, match="`desired` must be a whole number"):
        export_plan(build_plan(scale("three")), "recover")
    with pytest.raises(ExportRefused, match="`cluster` must be known when the plan is exported"):
        export_plan(build_plan(scale(cluster="${db.restore.cluster}")), "recover")


def failing_after(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with a restore after the scaling that fails (its source table is missing)."""
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


@pytest.mark.slow
def test_a_rollback_puts_the_count_back_as_the_local_rollback_does() -> None:
    """The count from before the step is read before its first attempt and kept in its record."""
    data = failing_after(scale(4))
    with mock_aws():
        seed_service()
        local = run_plan(data, run_id=RUN_ID)
        assert local.outcome.records["web.scale"].status == "succeeded"
        assert local.runner.rollback() == []
        expected = service()
    assert expected["desired"] == 1
    exported = export_plan(
        build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE, rollback_on_failure=True
    )
    with mock_aws(config=SFN):
        seed_service()
        described = execute(exported.definition, table=None)
        after = service()
    assert described["status"] == "FAILED" and described["error"] == "drplan.StepFailed", described.get(
        "cause"
    )
    assert after == expected
    doc = records(described)
    assert doc["steps"][exported.sids["web.scale"]]["prev"] == {"count": 1}
    assert doc["cleanup"][exported.sids["web.scale"]] == {"status": "removed"}


@pytest.mark.slow
def test_a_drill_that_scales_a_drill_service_puts_its_count_back() -> None:
    data = scale(5)
    data["services"]["web"]["steps"][0]["drill_with"] = {"service": "web-drill"}
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        seed_service()
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.create_service(cluster="prod", serviceName="web-drill", taskDefinition="web", desiredCount=1)
        described = execute(exported.definition, table=None)
        (drill_service,) = ecs.describe_services(cluster="prod", services=["web-drill"])["services"]
    assert described["status"] == "SUCCEEDED", described.get("cause")
    (sid,) = exported.sids.values()
    doc = records(described)
    assert doc["steps"][sid]["out"]["desired"] == 5 and doc["steps"][sid]["out"]["service"] == "web-drill"
    assert doc["cleanup"][sid] == {"status": "removed"}
    assert drill_service["desiredCount"] == 1
