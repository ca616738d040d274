"""aws.eks.scale_nodegroup exported to Step Functions and executed by moto's interpreter: the same
node group afterwards as drplan's own recover, the same outputs, the same failures and refusals.

moto applies a new scaling configuration at once (the node group stays ACTIVE) and has no
DescribeUpdate, so :class:`FakeEks` (tests only) stands between boto3 and moto for EKS, for the
local run and the state machine alike: it answers DescribeUpdate from the updates it saw, and makes
EKS refuse an update, report another update in progress, or leave the node group in a given status
with its update failed. moto names an ``aws-sdk`` error ``eks.<code>`` where Step Functions names it
``Eks.<code>``: the module adds EKS to the names tests/moto_error_names.py knows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from moto import mock_aws

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.export import ExportRefused
from tests import moto_error_names
from tests.moto_error_names import moto_names_errors_as_step_functions
from tests.moto_jsonata import moto_evaluates_jsonata
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    RUN_ID,
    SFN,
    _called,
    _grants,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    lint_template,
    records,
)

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/eks"


@dataclass
class FakeEks:
    """What moto's EKS lacks, for every boto3 client (drplan's own and the interpreter's)."""

    #: Errors the next UpdateNodegroupConfig calls raise, in order (None: moto answers).
    refuse: list[tuple[str, str] | None] = field(default_factory=list)
    #: After a successful update: the node group's status, and the update's status and errors.
    status_after: str | None = None
    update_status: str = "Successful"
    update_errors: list[dict[str, Any]] = field(default_factory=list)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def answer(self, original: Any, client: Any, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name != "eks":
            return original(client, operation, params)
        self.calls.append(operation)
        if operation == "DescribeUpdate":
            if params["updateId"] not in self.updates:
                raise _error("ResourceNotFoundException", "No update found", 404)
            return {"update": dict(self.updates[params["updateId"]])}
        if operation == "UpdateNodegroupConfig" and self.refuse:
            fault = self.refuse.pop(0)
            if fault is not None:
                raise _error(*fault)
        result = original(client, operation, params)
        if operation == "UpdateNodegroupConfig":
            update = {
                "id": result["update"]["id"],
                "status": self.update_status,
                "type": "ConfigUpdate",
                "errors": list(self.update_errors),
            }
            self.updates[update["id"]] = update
            if self.status_after is not None:
                nodegroup(params["clusterName"], params["nodegroupName"]).status = self.status_after
        return result


def _error(code: str, message: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "r-1"},
        },
        "UpdateNodegroupConfig",
    )


def nodegroup(cluster: str = "prod", name: str = "workers") -> Any:
    """moto's own node group object (its status can be set)."""
    from moto.eks.models import eks_backends

    return eks_backends["123456789012"][REGION].clusters[cluster].nodegroups[name]


@pytest.fixture(autouse=True)
def fake() -> Iterator[FakeEks]:
    fake = FakeEks()
    original = BaseClient._make_api_call
    patch = pytest.MonkeyPatch()
    patch.setattr(
        BaseClient,
        "_make_api_call",
        lambda client, operation, params: fake.answer(original, client, operation, params),
    )
    patch.setitem(moto_error_names.SERVICES, "eks", "Eks")
    try:
        with moto_names_errors_as_step_functions(), moto_evaluates_jsonata():
            yield fake
    finally:
        patch.undo()


def scale(desired: Any = 3, **extra: Any) -> dict[str, Any]:
    step = {
        "id": "scale",
        "uses": "aws.eks.scale_nodegroup",
        "with": {"cluster": "prod", "nodegroup": "workers", "desired": desired},
    }
    step["with"].update(extra)
    return plan_data({"web": {"steps": [step]}}, name="eks")


def seed(*names: str) -> None:
    client = boto3.client("eks", region_name=REGION)
    client.create_cluster(name="prod", roleArn=ROLE, resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    for name in names or ("workers",):
        client.create_nodegroup(
            clusterName="prod",
            nodegroupName=name,
            nodeRole=ROLE,
            subnets=["subnet-1"],
            scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 2},
        )


def sizes(name: str = "workers") -> dict[str, Any]:
    found = boto3.client("eks", region_name=REGION).describe_nodegroup(clusterName="prod", nodegroupName=name)
    return {"status": found["nodegroup"]["status"], **found["nodegroup"]["scalingConfig"]}


def both(
    data: dict[str, Any], fake: FakeEks, **export: Any
) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
    """The local recover of ``data`` and its exported machine's execution, each against a node group
    seeded alike and faked alike: (local run, node group after it, execution, node group after it)."""
    faults = list(fake.refuse)
    with mock_aws():
        seed()
        local = run_plan(data, run_id=RUN_ID)
        if export.get("rollback_on_failure"):
            assert local.runner.rollback() == []
        expected = sizes()
    fake.refuse = faults
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE, **export)
    with mock_aws(config=SFN):
        seed()
        described = execute(exported.definition, table=None)
        after = sizes()
    described["sids"] = exported.sids
    return local, expected, described, after


def test_the_export_lints_and_the_role_may_call_everything_it_calls() -> None:
    for mode in ("recover", "drill"):
        for wait in (True, False):
            data = scale(3, max=6, wait=wait)
            data["services"]["web"]["steps"][0]["drill_with"] = {"nodegroup": "workers-drill"}
            exported = export_plan(build_plan(data), mode, rollback_on_failure=mode == "recover")
            assert lint_definition(exported.definition) == []
            if wait:  # cfn-lint is slow: once per mode
                assert lint_template(exported.template) == []
            assert len(exported.sids) == 1
            actions = {a for s in exported.policy["Statement"] for a in s["Action"]}
            called = _called(exported.definition)
            # DescribeUpdate even when the step does not wait: its undo waits (as locally).
            assert {"eks:DescribeNodegroup", "eks:UpdateNodegroupConfig", "eks:DescribeUpdate"} <= called
            assert not {c for c in called if not any(_grants(a, c) for a in actions)}, (mode, called)


@pytest.mark.slow
@pytest.mark.parametrize(
    "given",
    [{"desired": 3}, {"desired": 8, "min": 3, "max": 10}, {"desired": "4", "wait": False}],
    ids=["desired", "all-sizes", "not-waiting"],
)
def test_a_recovery_scales_the_node_group_as_the_local_recover_does(
    fake: FakeEks, given: dict[str, Any]
) -> None:
    local, expected, described, after = both(scale(**given), fake)
    (rec,) = local.outcome.records.values()
    assert rec.status == "succeeded", rec.error
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == expected and expected["desiredSize"] == int(given["desired"])
    assert expected["minSize"] == given.get("min", 1) and expected["maxSize"] == given.get("max", 4)
    (sid,) = described["sids"].values()
    out = records(described)["steps"][sid]["out"]
    assert out == rec.outputs == {"cluster": "prod", "nodegroup": "workers", "desired": int(given["desired"])}
    assert records(described)["steps"][sid]["prev"] == {"MinSize": 1, "MaxSize": 4, "DesiredSize": 2}


def failed_alike(local: Any, described: dict[str, Any]) -> str:
    """The step failed in both, with the same message: the message."""
    (rec,) = local.outcome.records.values()
    (sid,) = described["sids"].values()
    step = records(described)["steps"][sid]
    assert described["status"] == "FAILED" and step["status"] == "failed", described.get("cause")
    assert rec.status == "failed" and step["cause"] == rec.error, (step, rec.error)
    return str(rec.error)


@pytest.mark.slow
def test_a_missing_node_group_or_cluster_fails_with_the_local_message(fake: FakeEks) -> None:
    local, _, described, _ = both(scale(nodegroup="gpu"), fake)
    assert failed_alike(local, described) == "EKS node group gpu does not exist in cluster prod"
    local, _, described, _ = both(scale(cluster="staging"), fake)
    assert failed_alike(local, described) == "EKS node group workers does not exist in cluster staging"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"desired": 9},
            "node group workers: desired size 9 is above the max size 4 (give `max` to raise it); "
            "the node group was left unchanged",
        ),
        (
            {"desired": 9, "max": 8},
            "node group workers: desired size 9 is above the max size 8; the node group",
        ),
        (
            {"desired": 0},
            "node group workers: desired size 0 is below the min size 1 (give `min` to lower it);",
        ),
        ({"desired": 2, "min": 3}, "node group workers: desired size 2 is below the min size 3; the node"),
        ({"desired": 2, "min": 5, "max": 4}, "node group workers: min size 5 is above max size 4; the node"),
        ({"desired": 0, "min": 0, "max": 0}, "node group workers: the max size must be at least 1; the node"),
    ],
)
def test_sizes_eks_would_refuse_fail_with_the_local_message_and_change_nothing(
    fake: FakeEks, given: dict[str, Any], message: str
) -> None:
    local, expected, described, after = both(scale(**given), fake)
    assert failed_alike(local, described).startswith(message)
    assert after == expected == {"status": "ACTIVE", "minSize": 1, "maxSize": 4, "desiredSize": 2}
    assert "UpdateNodegroupConfig" not in fake.calls


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            ("ResourceInUseException", "Nodegroup is already being updated"),
            "node group workers is ACTIVE with another update in progress; try again later",
        ),
        (
            ("InvalidParameterException", "Minimum capacity 1 can't be greater than desired size 0 (really)"),
            "EKS refused to resize workers: Minimum capacity 1 can't be greater than desired size 0 (really)",
        ),
        (
            ("InvalidRequestException", "Nodegroup is not in an updatable state"),
            "EKS refused to resize workers: Nodegroup is not in an updatable state",
        ),
    ],
    ids=["in-use", "invalid-parameter", "invalid-request"],
)
def test_an_update_eks_refuses_fails_with_the_local_message(
    fake: FakeEks, fault: tuple[str, str], message: str
) -> None:
    fake.refuse = [fault]
    local, expected, described, after = both(scale(3), fake)
    assert failed_alike(local, described) == message
    assert after == expected


@pytest.mark.slow
@pytest.mark.parametrize("status", ["CREATE_FAILED", "DELETING", "DELETE_FAILED"])
def test_a_broken_node_group_fails_the_wait_with_the_local_message(fake: FakeEks, status: str) -> None:
    fake.status_after = status
    local, _, described, _ = both(scale(3), fake)
    assert failed_alike(local, described) == f"EKS node group workers is {status}"
    assert "DescribeUpdate" not in fake.calls


@pytest.mark.slow
@pytest.mark.parametrize(
    ("status", "errors", "message"),
    [
        (
            "Failed",
            [
                {
                    "errorCode": "AsgInstanceLaunchFailures",
                    "errorMessage": "Could not launch On-Demand Instances.",
                },
                {"errorCode": "NodeCreationFailure"},
            ],
            "the update of node group workers failed: AsgInstanceLaunchFailures: Could not launch On-Demand "
            "Instances.; NodeCreationFailure: ",
        ),
        ("Failed", [], "the update of node group workers failed"),
        (
            "Cancelled",
            [{"errorCode": "Ec2SubnetInvalidConfiguration", "errorMessage": "no IP addresses left"}],
            "the update of node group workers cancelled: Ec2SubnetInvalidConfiguration: no IP addresses left",
        ),
    ],
    ids=["failed", "failed-without-errors", "cancelled"],
)
def test_a_failed_update_fails_the_wait_with_the_local_message(
    fake: FakeEks, status: str, errors: list[dict[str, Any]], message: str
) -> None:
    fake.status_after, fake.update_status, fake.update_errors = "UPDATING", status, errors
    local, _, described, _ = both(scale(3), fake)
    assert failed_alike(local, described) == message
    assert "DescribeUpdate" in fake.calls


def test_what_cannot_be_exported_is_refused() -> None:
    for given, reason in (
        ({"desired": "three"}, "`desired` must be a whole number"),
        (
            {"desired": "${db.restore.count}"},
            "`desired` must be a whole number known when the plan is exported",
        ),
        ({"max": "${db.restore.count}"}, "`max` must be a whole number known when the plan is exported"),
        ({"cluster": "${db.restore.cluster}"}, "`cluster` must be known when the plan is exported"),
        ({"nodegroup": "${db.restore.nodegroup}"}, "`nodegroup` must be known when the plan is exported"),
    ):
        data = scale(**{"desired": 3, **given})
        data["services"]["db"] = {"steps": [{"id": "restore", "uses": "wait", "with": {"duration": "PT1S"}}]}
        with pytest.raises(ExportRefused, match=reason):
            export_plan(build_plan(data), "recover")


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
@pytest.mark.parametrize(
    ("given", "busy", "updates"),
    [({"desired": 6, "min": 2, "max": 8}, False, 2), ({"desired": 3}, True, 3), ({"desired": 2}, False, 1)],
    ids=["at-once", "after-another-update", "nothing-to-put-back"],
)
def test_a_rollback_puts_the_sizes_back_as_the_local_rollback_does(
    fake: FakeEks, given: dict[str, Any], busy: bool, updates: int
) -> None:
    """The sizes from before the step are read before its first attempt and kept in its record; an
    undo EKS turns away (another update in progress) asks again at the next look; an undo that
    finds the node group at them asks nothing (``updates``: UpdateNodegroupConfig calls of a run)."""
    fake.refuse = [None, ("ResourceInUseException", "Nodegroup is already being updated")] if busy else []
    data = failing_after(scale(**given))
    local, expected, described, after = both(data, fake, rollback_on_failure=True)
    assert local.outcome.records["web.scale"].status == "succeeded"
    assert expected == {"status": "ACTIVE", "minSize": 1, "maxSize": 4, "desiredSize": 2}
    assert described["status"] == "FAILED" and described["error"] == "drplan.StepFailed", described.get(
        "cause"
    )
    assert after == expected
    doc = records(described)
    sid = described["sids"]["web.scale"]
    assert doc["steps"][sid]["prev"] == {"MinSize": 1, "MaxSize": 4, "DesiredSize": 2}
    assert doc["cleanup"][sid] == {"status": "removed"}
    assert fake.refuse == [] and fake.calls.count("UpdateNodegroupConfig") == 2 * updates


@pytest.mark.slow
def test_an_undo_of_a_node_group_that_breaks_fails_with_the_local_message(fake: FakeEks) -> None:
    data = failing_after(scale(6, max=8))
    exported = export_plan(
        build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE, rollback_on_failure=True
    )
    with mock_aws(config=SFN):
        seed()
        fake.status_after = None
        fake.refuse = []
        # The step's own update leaves it ACTIVE; the undo's breaks it.
        original = fake.answer

        def answer(orig: Any, client: Any, operation: str, params: dict[str, Any]) -> Any:
            result = original(orig, client, operation, params)
            if operation == "UpdateNodegroupConfig" and params["scalingConfig"]["desiredSize"] == 2:
                nodegroup().status = "DELETE_FAILED"
            return result

        fake.answer = answer  # type: ignore[method-assign]
        described = execute(exported.definition, table=None)
    cleanup = records(described)["cleanup"][exported.sids["web.scale"]]
    assert cleanup["status"] == "failed" and "EKS node group workers is DELETE_FAILED" in str(cleanup), (
        cleanup
    )


@pytest.mark.slow
def test_a_drill_skips_the_step_unless_drill_with_names_a_drill_node_group(fake: FakeEks) -> None:
    exported = export_plan(build_plan(scale(3)), "drill", options=FAST, history_budget=ONE_MACHINE)
    assert "eks:UpdateNodegroupConfig" not in _called(exported.definition)
    data = scale(3)
    data["services"]["web"]["steps"][0]["drill_with"] = {"nodegroup": "workers-drill"}
    with mock_aws():
        seed("workers", "workers-drill")
        local = run_plan(data, "drill", run_id=RUN_ID)
        (rec,) = local.outcome.records.values()
        assert rec.status == "succeeded", rec.error
        assert sizes("workers-drill")["desiredSize"] == 3
        assert local.runner.undo(["web.scale"], reason="drill cleanup") == []
        expected = sizes("workers-drill")
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        seed("workers", "workers-drill")
        described = execute(exported.definition, table=None)
        drilled, production = sizes("workers-drill"), sizes()
    assert described["status"] == "SUCCEEDED", described.get("cause")
    (sid,) = exported.sids.values()
    doc = records(described)
    assert (
        doc["steps"][sid]["out"]
        == rec.outputs
        == {"cluster": "prod", "nodegroup": "workers-drill", "desired": 3}
    )
    assert doc["cleanup"][sid] == {"status": "removed"}
    assert drilled == expected == {"status": "ACTIVE", "minSize": 1, "maxSize": 4, "desiredSize": 2}
    assert production == {"status": "ACTIVE", "minSize": 1, "maxSize": 4, "desiredSize": 2}
