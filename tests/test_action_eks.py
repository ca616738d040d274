"""aws.eks.scale_nodegroup against moto: the node group's sizes set, ACTIVE awaited, and put back by
undo.

moto applies a new scaling configuration at once and has no DescribeUpdate, so the wait through
UPDATING (and a failed update) is tested with botocore's Stubber, which validates the parameters
against the real EKS model.
"""

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
from tests.runs import FAST, one_step, run_plan, seed

ACTION = "aws.eks.scale_nodegroup"
ROLE = "arn:aws:iam::123456789012:role/eks"


@pytest.fixture
def eks():
    with mock_aws():
        client = boto3.client("eks", region_name="us-east-1")
        client.create_cluster(name="prod", roleArn=ROLE, resourcesVpcConfig={"subnetIds": ["subnet-1"]})
        client.create_nodegroup(
            clusterName="prod",
            nodegroupName="workers",
            nodeRole=ROLE,
            subnets=["subnet-1"],
            scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 2},
        )
        yield client


def sizes(client: Any, name: str = "workers", cluster: str = "prod") -> tuple[int, int, int]:
    config = client.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]["scalingConfig"]
    return config["minSize"], config["maxSize"], config["desiredSize"]


def step_context(data: dict[str, Any], *, aws: AwsAccess | None = None):
    prepared = prepare(build_plan(data), "recover", registry(), run_id="t35t1d")
    runner = Runner(prepared, aws or AwsSession(region="us-east-1"), EventBus("t35t1d"), RunOptions(**FAST))
    step = prepared.steps["svc.s"]
    return runner.context(step, step.params)


def test_sets_the_sizes_and_undo_restores_them(eks):
    run = run_plan(
        one_step(ACTION, {"cluster": "prod", "nodegroup": "workers", "desired": 8, "min": 3, "max": 10})
    )
    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert sizes(eks) == (3, 10, 8)
    assert rec.outputs == {"cluster": "prod", "nodegroup": "workers", "desired": 8}
    assert rec.handle["previous"] == {"minSize": 1, "maxSize": 4, "desiredSize": 2}
    assert rec.handle["update_id"]
    assert rec.resources == []
    assert run.runner.undo(["svc.s"], reason="test") == []
    assert sizes(eks) == (1, 4, 2)


def test_min_and_max_stay_unless_given(eks):
    run = run_plan(one_step(ACTION, {"cluster": "prod", "nodegroup": "workers", "desired": 4}))
    assert run.record().status == "succeeded", run.record().error
    assert sizes(eks) == (1, 4, 4)


def test_sizes_eks_would_refuse_leave_the_node_group_unchanged(eks):
    over = run_plan(one_step(ACTION, {"cluster": "prod", "nodegroup": "workers", "desired": 9}))
    assert over.record().error == (
        "node group workers: desired size 9 is above the max size 4 (give `max` to raise it); "
        "the node group was left unchanged"
    )
    under = run_plan(one_step(ACTION, {"cluster": "prod", "nodegroup": "workers", "desired": 0}))
    assert "desired size 0 is below the min size 1 (give `min` to lower it)" in under.record().error
    for run in (over, under):
        assert "UpdateNodegroupConfig" not in [c.operation for c in run.calls]
    assert sizes(eks) == (1, 4, 2)


def test_a_missing_node_group_or_cluster_fails_clearly(eks):
    run = run_plan(one_step(ACTION, {"cluster": "prod", "nodegroup": "gpu", "desired": 1}))
    assert run.record().error == "EKS node group gpu does not exist in cluster prod"
    run = run_plan(one_step(ACTION, {"cluster": "staging", "nodegroup": "workers", "desired": 1}))
    assert run.record().error == "EKS node group workers does not exist in cluster staging"


def test_skipped_in_drills_unless_drill_with_names_a_drill_node_group(eks):
    eks.create_nodegroup(
        clusterName="prod",
        nodegroupName="workers-drill",
        nodeRole=ROLE,
        subnets=["subnet-1"],
        scalingConfig={"minSize": 0, "maxSize": 4, "desiredSize": 0},
    )
    params = {"cluster": "prod", "nodegroup": "workers", "desired": 3}
    assert "svc.s" in run_plan(one_step(ACTION, params), "drill").prepared.skipped
    drill = run_plan(one_step(ACTION, params, drill_with={"nodegroup": "workers-drill"}), "drill")
    assert drill.record().status == "succeeded", drill.record().error
    assert sizes(eks, "workers-drill") == (0, 4, 3)
    assert sizes(eks) == (1, 4, 2)
    assert drill.runner.undo(["svc.s"], reason="drill cleanup") == []
    assert sizes(eks, "workers-drill") == (0, 4, 0)


def test_preflight_is_read_only_and_compares_current_and_target(eks):
    session = AwsSession(region="us-east-1", read_only=True)
    calls: list[Any] = []
    session.on_call = calls.append
    action = registry()[ACTION]
    [ok] = action.preflight(
        step_context(
            one_step(ACTION, {"cluster": "prod", "nodegroup": "workers", "desired": 6, "max": 6}), aws=session
        )
    )
    assert (ok.status, ok.message) == (
        "ok",
        "node group workers is at desired 2 (min 1, max 4); would set desired 6 (min 1, max 6)",
    )
    [bad] = action.preflight(
        step_context(one_step(ACTION, {"cluster": "prod", "nodegroup": "workers", "desired": 6}), aws=session)
    )
    assert bad.status == "error" and "above the max size 4" in bad.message
    assert {c.operation for c in calls} == {"DescribeNodegroup"}


class _Stubbed(AwsAccess):
    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str, *, region: str | None = None, role_arn: str | None = None) -> Any:
        return self._client

    def region_of(self, region: str | None) -> str:
        return "us-east-1"


def _nodegroup(status: str, desired: int, issues: Any = ()) -> dict[str, Any]:
    return {
        "nodegroup": {
            "nodegroupName": "workers",
            "clusterName": "prod",
            "status": status,
            "scalingConfig": {"minSize": 1, "maxSize": 10, "desiredSize": desired},
            "health": {"issues": list(issues)},
        }
    }


def _update(status: str, errors: Any = ()) -> dict[str, Any]:
    return {
        "update": {
            "id": "u-1",
            "status": status,
            "type": "ConfigUpdate",
            "createdAt": datetime.now(timezone.utc),
            "errors": list(errors),
        }
    }


def test_poll_waits_through_updating_and_reports_a_failed_update():
    client = boto3.client("eks", region_name="us-east-1")
    params = {"cluster": "prod", "nodegroup": "workers", "desired": 6, "max": 10}
    ctx = step_context(one_step(ACTION, params), aws=_Stubbed(client))
    handle = {
        "cluster": "prod",
        "nodegroup": "workers",
        "previous": {"minSize": 1, "maxSize": 4, "desiredSize": 2},
        "target": {"minSize": 1, "maxSize": 10, "desiredSize": 6},
        "update_id": "u-1",
        "wait": True,
    }
    described = {"clusterName": "prod", "nodegroupName": "workers"}
    update = {"name": "prod", "updateId": "u-1", "nodegroupName": "workers"}
    action = registry()[ACTION]
    with Stubber(client) as stub:
        stub.add_response("describe_nodegroup", _nodegroup("UPDATING", 2), described)
        stub.add_response("describe_update", _update("InProgress"), update)
        stub.add_response("describe_nodegroup", _nodegroup("ACTIVE", 6), described)
        stub.add_response("describe_nodegroup", _nodegroup("UPDATING", 2), described)
        failed = [
            {
                "errorCode": "AsgInstanceLaunchFailures",
                "errorMessage": "Could not launch On-Demand Instances.",
            }
        ]
        stub.add_response("describe_update", _update("Failed", failed), update)
        polls = [action.poll(ctx, handle) for _ in range(3)]
        stub.assert_no_pending_responses()
    assert [(p.done, p.failed, p.note) for p in polls][:2] == [
        (
            False,
            None,
            "node group workers is UPDATING at desired 2 (min 1, max 10), wants desired 6 (min 1, max 10)",
        ),
        (True, None, "node group workers is ACTIVE at desired 6 (min 1, max 10)"),
    ]
    assert polls[2].failed == (
        "the update of node group workers failed: AsgInstanceLaunchFailures: Could not launch On-Demand Instances."
    )


def test_start_sends_the_sizes_with_the_steps_client_token():
    client = boto3.client("eks", region_name="us-east-1")
    ctx = step_context(
        one_step(ACTION, {"cluster": "prod", "nodegroup": "workers", "desired": 3}), aws=_Stubbed(client)
    )
    with Stubber(client) as stub:
        stub.add_response(
            "describe_nodegroup", _nodegroup("ACTIVE", 2), {"clusterName": "prod", "nodegroupName": "workers"}
        )
        stub.add_response(
            "update_nodegroup_config",
            _update("InProgress"),
            {
                "clusterName": "prod",
                "nodegroupName": "workers",
                "scalingConfig": {"minSize": 1, "maxSize": 10, "desiredSize": 3},
                "clientRequestToken": ctx.client_token,
            },
        )
        handle = registry()[ACTION].start(ctx)
    assert handle["update_id"] == "u-1" and handle["previous"]["desiredSize"] == 2


def test_seed_creates_the_cluster_and_an_empty_node_group_that_the_step_scales():
    with mock_aws():
        data = one_step(ACTION, {"cluster": "shop", "nodegroup": "web", "desired": 3, "max": 6})
        seed(step_context(data))
        seed(step_context(data))  # idempotent
        client = boto3.client("eks", region_name="us-east-1")
        assert sizes(client, "web", "shop") == (0, 6, 0)
        run = run_plan(data)
        assert run.record().status == "succeeded", run.record().error
        assert sizes(client, "web", "shop") == (0, 6, 3)


def test_node_group_names_aws_would_refuse_are_reported_by_validate():
    import json

    from drplan.document import read_document
    from drplan.pipeline import validate_document

    def findings(nodegroup: str) -> list[str]:
        data = one_step(ACTION, {"cluster": "prod", "nodegroup": nodegroup, "desired": 1})
        result = validate_document(read_document("p.json", data=json.dumps(data).encode()))
        return [d.message for d in result.diagnostics if d.code == "DR212"]

    assert findings("workers_2") == []
    assert findings("-workers") == [
        "step `s` of service `svc`: EKS node group name `-workers` must start with a letter or digit"
    ]
    assert findings("w" * 64) == [
        f"step `s` of service `svc`: EKS node group name `{'w' * 64}` is 64 characters long; EKS allows 1 to 63"
    ]
