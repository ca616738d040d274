"""Steps with their own ``region`` or ``role_arn``, exported to Step Functions.

A step in another Region makes each AWS call through the calls function (its code,
drplan/stepfunctions/calls_handler.py, inline in the template), which runs here in-process in
moto's Lambda (tests/moto_lambda_runs.py): the exported machine, run in us-east-1, restores in
us-west-2 what drplan's own run restores there, fails with the same message, and a drill's cleanup
deletes it there. A step with only its own ``role_arn`` calls with the Tasks' ``Credentials``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.calls import calls_function_source
from drplan.stepfunctions.calls_handler import error_name, handler, to_request, to_response
from tests.moto_lambda_runs import deploy_inline_function, moto_runs_lambda_code
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    TABLE,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    lint_template,
    records,
    statuses,
)

WEST = "us-west-2"
AWS = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
ROLE = "arn:aws:iam::123456789012:role/drplan-dr"


def west_plan() -> dict[str, Any]:
    """Two point-in-time restores in us-west-2 while the plan's Region is us-east-1: one of a
    table that is there, one of a table that is not (it fails, and skips its dependent)."""
    return plan_data(
        {
            "carts": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_point_in_time",
                        "with": {"source_table": "carts", "target": "carts-restored"},
                        "region": WEST,
                    }
                ]
            },
            "ledger": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_point_in_time",
                        "with": {"source_table": "ledger", "target": "ledger-restored"},
                        "region": WEST,
                    }
                ]
            },
            "reports": {
                "depends_on": ["ledger"],
                "steps": [{"id": "settle", "uses": "wait", "with": {"duration": "PT1S"}}],
            },
        },
        name="west",
    )


def seed() -> None:
    ddb = boto3.client("dynamodb", region_name=WEST)
    ddb.create_table(TableName="carts", **TABLE)
    ddb.put_item(TableName="carts", Item={"pk": {"S": "cart-1"}})
    ddb.update_continuous_backups(
        TableName="carts", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )


def tables(region: str) -> list[str]:
    return sorted(boto3.client("dynamodb", region_name=region).list_tables()["TableNames"])


def deploy_calls_function(template: dict[str, Any]) -> None:
    deploy_inline_function(template, "CallsFunction")


@pytest.fixture
def moto_lambda() -> Iterator[list[Any]]:
    with mock_aws(config=AWS), moto_runs_lambda_code() as invoked:
        yield invoked


def test_a_recovery_in_another_region_matches_the_local_one() -> None:
    data = west_plan()
    with mock_aws():
        seed()
        local = run_plan(data, run_id=RUN_ID)
        local_tables = {REGION: tables(REGION), WEST: tables(WEST)}
    expected = {k: r.status for k, r in local.outcome.records.items()}
    assert expected == {"carts.restore": "succeeded", "ledger.restore": "failed", "reports.settle": "skipped"}
    assert local_tables == {REGION: [], WEST: ["carts", "carts-restored"]}

    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    assert lint_template(exported.template) == []
    assert exported.calls_function == "drplan-west-recover-calls"
    with mock_aws(config=AWS), moto_runs_lambda_code() as invoked:
        seed()
        deploy_calls_function(exported.template)
        described = execute(exported.definition, table=exported.coordination_table)
        assert {REGION: tables(REGION), WEST: tables(WEST)} == local_tables
        item = boto3.client("dynamodb", region_name=WEST).scan(TableName="carts-restored")["Items"]
    assert item == [{"pk": {"S": "cart-1"}}]
    doc = records(described)
    assert statuses(doc, exported.sids) == expected
    steps = {key: doc["steps"][sid] for key, sid in exported.sids.items()}
    assert steps["carts.restore"]["out"] == local.outcome.records["carts.restore"].outputs
    # The missing table: DynamoDb.TableNotFoundException from the function, caught as from the
    # aws-sdk task, the local message.
    assert steps["ledger.restore"]["cause"] == local.outcome.records["ledger.restore"].error
    assert steps["ledger.restore"]["cause"] == "source table ledger does not exist"
    # Every call went through the function, to us-west-2, in Step Functions' spelling.
    assert {e["region"] for e in invoked} == {WEST}
    assert {e["action"] for e in invoked} >= {"describeContinuousBackups", "restoreTableToPointInTime"}
    restore = next(e for e in invoked if e["action"] == "restoreTableToPointInTime")
    assert restore["service"] == "dynamodb" and restore["role"] is None
    assert restore["parameters"]["SourceTableName"] == "carts"
    assert restore["parameters"]["TargetTableName"] == "carts-restored"


def test_a_drill_in_another_region_cleans_up_there() -> None:
    data = west_plan()
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    assert lint_template(exported.template) == []
    with mock_aws(config=AWS), moto_runs_lambda_code() as invoked:
        seed()
        deploy_calls_function(exported.template)
        described = execute(exported.definition, table=exported.coordination_table)
        left = {REGION: tables(REGION), WEST: tables(WEST)}
    doc = records(described)
    assert statuses(doc, exported.sids) == {
        "carts.restore": "succeeded",
        "ledger.restore": "failed",
        "reports.settle": "skipped",
    }
    carts = exported.sids["carts.restore"]
    assert doc["steps"][carts]["out"]["table_name"] == f"carts-restored-drill-{RUN_ID}"
    assert doc["cleanup"][carts]["status"] == "removed"
    assert left == {REGION: [], WEST: ["carts"]}  # the copy was made, and deleted, in us-west-2
    deleted = [e for e in invoked if e["action"] == "deleteTable"]
    assert [e["region"] for e in deleted] == [WEST]


def test_the_tasks_invoke_the_function_and_the_roles_are_scoped() -> None:
    exported = export_plan(build_plan(west_plan()), "recover", options=FAST, history_budget=ONE_MACHINE)
    text = json.dumps(exported.definition)
    assert "arn:aws:states:::aws-sdk:" not in text  # every call of both steps goes through the function
    # The state machine may invoke the function, nothing else of the steps'.
    assert exported.policy["Statement"] == [
        {
            "Sid": "CallsFunction",
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": "arn:aws:lambda:us-east-1:*:function:drplan-west-recover-calls",
        }
    ]
    resources = exported.template["Resources"]
    policy = json.dumps(resources["CallsRole"]["Properties"]["Policies"])
    assert "dynamodb:RestoreTableToPointInTime" in policy
    assert "arn:aws:dynamodb:us-west-2:${AWS::AccountId}:table/carts-restored" in policy
    assert "us-east-1" not in policy and "${AWS::Region}" not in policy
    function = resources["CallsFunction"]["Properties"]
    assert function["FunctionName"] == "drplan-west-recover-calls"
    assert "StateMachine" in resources and "CallsFunction" in resources["StateMachine"]["DependsOn"]
    # Lambda's transient errors are retried besides the service's own.
    task = _first_task(exported.definition, "describeContinuousBackups")
    retried = [e for r in task["Retry"] for e in r["ErrorEquals"]]
    assert "Lambda.TooManyRequestsException" in retried and "DynamoDb.ThrottlingException" in retried


def test_a_plan_without_such_steps_has_no_calls_function() -> None:
    data = west_plan()
    for service in data["services"].values():
        for step in service["steps"]:
            step.pop("region", None)
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert "CallsFunction" not in exported.template["Resources"]
    assert "arn:aws:states:::lambda:invoke" not in json.dumps(exported.definition)


def test_a_step_in_the_machines_own_region_is_not_relocated() -> None:
    data = west_plan()
    data["services"]["carts"]["steps"][0]["region"] = REGION
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert _first_task(exported.definition, "describeContinuousBackups", "carts")["Resource"].endswith(
        "aws-sdk:dynamodb:describeContinuousBackups"
    )


def _first_task(definition: dict[str, Any], action: str, key: str = "") -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def walk(node: Any, name: str = "") -> None:
        if isinstance(node, dict):
            payload = node.get("Parameters", {}).get("Payload", {}) if node.get("Type") == "Task" else {}
            calls = str(node.get("Resource", "")).endswith(action) or payload.get("action") == action
            if node.get("Type") == "Task" and key in name and calls:
                found.append(node)
            for k, v in node.items():
                walk(v, k if isinstance(v, dict) and "Type" in v else name)
        elif isinstance(node, list):
            for v in node:
                walk(v, name)

    walk(definition)
    assert found, action
    return found[0]


# --- role_arn only: Credentials ---------------------------------------------------------------------


def role_plan() -> dict[str, Any]:
    data = west_plan()
    del data["services"]["ledger"], data["services"]["reports"]
    step = data["services"]["carts"]["steps"][0]
    del step["region"]
    step["role_arn"] = ROLE
    return data


def test_a_step_with_its_own_role_calls_with_credentials() -> None:
    exported = export_plan(build_plan(role_plan()), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    assert lint_template(exported.template) == []
    assert exported.calls_function is None and "CallsFunction" not in exported.template["Resources"]
    sdk = _sdk_tasks(exported.definition)
    assert sdk and all(t["Credentials"] == {"RoleArn": ROLE} for t in sdk)
    assumed = [s for s in exported.policy["Statement"] if "sts:AssumeRole" in s["Action"]]
    assert [s["Resource"] for s in assumed] == [ROLE]
    role_policy = json.dumps(exported.template["Resources"]["Role"]["Properties"]["Policies"])
    assert "sts:AssumeRole" in role_policy and ROLE in role_policy


def test_moto_runs_a_step_with_credentials_and_is_asked_for_the_role() -> None:
    """moto's interpreter evaluates ``Credentials`` and hands the role to its client factory (it
    then calls with its own credentials: one account); the restore happens as locally."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    data = role_plan()
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    roles: list[str] = []
    original = aws_sdk.boto_client_for

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        roles.append(state_credentials.role_arn if state_credentials else None)
        return original(region=region, service=service, state_credentials=state_credentials)

    patch = pytest.MonkeyPatch()
    patch.setattr(aws_sdk, "boto_client_for", client_for)
    try:
        with mock_aws(config=AWS):
            boto3.client("dynamodb", region_name=REGION).create_table(TableName="carts", **TABLE)
            boto3.client("dynamodb", region_name=REGION).update_continuous_backups(
                TableName="carts", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
            described = execute(exported.definition, table=exported.coordination_table)
    finally:
        patch.undo()
    assert statuses(records(described), exported.sids) == {"carts.restore": "succeeded"}
    assert roles and set(roles) == {ROLE}


def test_a_role_that_wants_an_external_id_goes_through_the_function() -> None:
    data = role_plan()
    data["services"]["carts"]["steps"][0]["external_id"] = "dr-4f7c"
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    assert _sdk_tasks(exported.definition) == []
    task = _first_task(exported.definition, "describeContinuousBackups")
    assert task["Parameters"]["Payload"]["role"] == ROLE
    assert task["Parameters"]["Payload"]["external_id"] == "dr-4f7c"
    assert task["Parameters"]["Payload"]["region"] is None  # the machine's own
    policy = json.dumps(exported.template["Resources"]["CallsRole"]["Properties"]["Policies"])
    assert "sts:AssumeRole" in policy and ROLE in policy


def _sdk_tasks(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        own = [node] if str(node.get("Resource", "")).startswith("arn:aws:states:::aws-sdk:") else []
        return own + [t for v in node.values() for t in _sdk_tasks(v)]
    if isinstance(node, list):
        return [t for v in node for t in _sdk_tasks(v)]
    return []


def test_the_failover_plans_ledger_restore_is_no_longer_refused_for_its_region() -> None:
    from drplan.pipeline import load_plan
    from tests.conftest import PLANS

    plan, _ = load_plan(PLANS / "failover.json")
    assert plan.services["ledger"].steps[0].region == plan.aws.region == "us-west-2"
    for mode in ("recover", "drill"):
        exported = export_plan(plan, mode)
        # Its Region is the plan's; its role wants an external ID: through the calls function.
        assert exported.routes["ledger.restore"].through_function, mode


def test_a_lambda_invocation_in_another_region_is_refused() -> None:
    from drplan.stepfunctions import ExportRefused

    data = plan_data(
        {
            "smoke": {
                "steps": [
                    {"id": "test", "uses": "aws.lambda.invoke", "with": {"function": "f"}, "region": WEST}
                ]
            }
        }
    )
    with pytest.raises(ExportRefused) as refused:
        export_plan(build_plan(data), "recover")
    ((key, _, why),) = refused.value.problems
    assert key == "smoke.test" and "lambda:invoke task cannot run in another Region or account" in why


# --- the function's own code ------------------------------------------------------------------------


def test_the_function_speaks_step_functions_spelling() -> None:
    model = botocore.session.get_session().get_service_model("rds")
    restore = model.operation_model("RestoreDBInstanceFromDBSnapshot")
    assert to_request(
        {"DbInstanceIdentifier": "a", "DbSnapshotIdentifier": "b", "Tags": [{"Key": "k", "Value": "v"}]},
        restore.input_shape,
    ) == {"DBInstanceIdentifier": "a", "DBSnapshotIdentifier": "b", "Tags": [{"Key": "k", "Value": "v"}]}
    import datetime as dt

    described = model.operation_model("DescribeDBSnapshots").output_shape
    answer = {
        "DBSnapshots": [
            {
                "DBSnapshotIdentifier": "b",
                "SnapshotCreateTime": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
                "TagList": [{"Key": "k", "Value": "v"}],
            }
        ]
    }
    assert to_response(answer, described) == {
        "DbSnapshots": [
            {
                "DbSnapshotIdentifier": "b",
                "SnapshotCreateTime": "2026-01-02T03:04:05Z",
                "TagList": [{"Key": "k", "Value": "v"}],
            }
        ]
    }
    route53 = botocore.session.get_session().get_service_model("route53")
    change = route53.operation_model("ChangeResourceRecordSets").input_shape
    batch = {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {"Name": "a", "Type": "A", "Ttl": 60}}]}
    assert (
        to_request({"HostedZoneId": "Z", "ChangeBatch": batch}, change)["ChangeBatch"]["Changes"][0][
            "ResourceRecordSet"
        ]["TTL"]
        == 60
    )


@pytest.mark.parametrize(
    ("service", "code", "name"),
    [
        ("rds", "DBInstanceNotFound", "Rds.DbInstanceNotFoundException"),
        ("rds", "InvalidDBInstanceState", "Rds.InvalidDbInstanceStateException"),
        ("dynamodb", "ResourceNotFoundException", "DynamoDb.ResourceNotFoundException"),
        ("s3", "NoSuchBucket", "S3.NoSuchBucketException"),
        ("ec2", "InvalidVolume.NotFound", "Ec2.Ec2Exception"),  # EC2 models no errors
    ],
)
def test_the_function_names_errors_as_step_functions(service: str, code: str, name: str) -> None:
    assert error_name(botocore.session.get_session().get_service_model(service), code) == name


def test_the_function_raises_real_errors_under_those_names() -> None:
    with mock_aws():
        with pytest.raises(Exception) as raised:
            handler(
                {
                    "service": "rds",
                    "action": "describeDBInstances",
                    "region": WEST,
                    "role": None,
                    "parameters": {"DbInstanceIdentifier": "nothing"},
                },
                None,
            )
        assert type(raised.value).__name__ == "Rds.DbInstanceNotFoundException"
        assert "(Service: Rds, Status Code: 404" in str(raised.value)
        with pytest.raises(Exception) as missing:
            handler(
                {
                    "service": "dynamodb",
                    "action": "describeTable",
                    "region": WEST,
                    "role": None,
                    "parameters": {"TableName": "nothing"},
                },
                None,
            )
        assert type(missing.value).__name__ == "DynamoDb.ResourceNotFoundException"
        boto3.client("dynamodb", region_name=WEST).create_table(TableName="t", **TABLE)
        answer = handler(
            {
                "service": "dynamodb",
                "action": "describeTable",
                "region": WEST,
                "role": ROLE,
                "parameters": {"TableName": "t"},
            },
            None,
        )
    assert answer["Table"]["TableName"] == "t" and answer["Table"]["TableStatus"] == "ACTIVE"
    assert isinstance(answer["Table"]["CreationDateTime"], str)
    json.dumps(answer)  # JSON through and through
    assert ClientError  # botocore's errors never leave the function as themselves


def _describe_missing(catch: bool) -> dict[str, Any]:
    """One ``describeTable`` of a table that does not exist: caught (the error is the output) or not."""
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:dynamodb:describeTable",
        "Parameters": {"TableName": "nothing"},
        "ResultPath": "$.w.desc",
        "Next": "done",
    }
    if catch:
        task["Catch"] = [
            {"ErrorEquals": ["DynamoDb.ResourceNotFoundException"], "ResultPath": "$.w.error", "Next": "done"}
        ]
    return {
        "StartAt": "describe",
        "States": {"describe": task, "done": {"Type": "Pass", "InputPath": "$.w", "End": True}},
    }


def _relocated(definition: dict[str, Any]) -> dict[str, Any]:
    from drplan.stepfunctions.builder import Names, Scope
    from drplan.stepfunctions.calls import Route, relocate

    scope = Scope(Names(), definition["States"])
    relocate(scope, ["describe"], Route(WEST, None, None, "drplan-test-calls"), "describe")
    return definition


def _without_request_id(text: str) -> str:
    import re

    return re.sub(r"Request ID: [^)]*\)", "Request ID: -)", text)


@pytest.mark.parametrize("catch", [True, False], ids=["caught", "uncaught"])
def test_a_relocated_task_fails_as_the_aws_sdk_task_does(catch: bool) -> None:
    """The same error name and cause (but its request id) whether the call is the machine's own
    aws-sdk task or goes through the calls function: caught, the cause its Catch keeps; not
    caught, the execution's failure."""
    from tests.moto_error_names import moto_names_errors_as_step_functions

    with mock_aws(config=AWS), moto_names_errors_as_step_functions():
        plain = execute(_describe_missing(catch), table=None, fresh=True)
    function = {"FunctionName": "drplan-test-calls", "Runtime": "python3.12", "Handler": "index.handler"}
    code = {"ZipFile": calls_function_source()}
    template = {"Resources": {"CallsFunction": {"Properties": {**function, "Timeout": 60, "Code": code}}}}
    with mock_aws(config=AWS), moto_runs_lambda_code():
        deploy_calls_function(template)
        relocated = execute(_relocated(_describe_missing(catch)), table=None, fresh=True)
    assert lint_definition(_relocated(_describe_missing(catch))) == []
    if catch:
        assert plain["status"] == relocated["status"] == "SUCCEEDED"
        mine, theirs = json.loads(relocated["output"])["error"], json.loads(plain["output"])["error"]
    else:
        assert plain["status"] == relocated["status"] == "FAILED"
        mine = {"Error": relocated["error"], "Cause": relocated["cause"]}
        theirs = {"Error": plain["error"], "Cause": plain["cause"]}
    assert mine["Error"] == theirs["Error"] == "DynamoDb.ResourceNotFoundException"
    assert _without_request_id(mine["Cause"]) == _without_request_id(theirs["Cause"])
    assert "(Service: DynamoDb, Status Code: 400" in mine["Cause"]
