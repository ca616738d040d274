"""A CloudFormation template that deploys the exported state machine: its role (with the policy
of :mod:`drplan.stepfunctions.iam`, scoped to the stack's own account and region), the
coordination table when the graph needs one, the approvals topic when the plan has manual steps,
the checks function (and its role) when the plan has HTTP or TCP checks, the calls function (and
its role) when steps call AWS in another Region, and the Standard state machine itself.

``aws cloudformation deploy --template-file template.json --stack-name NAME
--capabilities CAPABILITY_IAM`` deploys it (docs/stepfunctions.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drplan.model import Mode, Plan

if TYPE_CHECKING:
    from drplan.stepfunctions.calls import Route

ACCOUNT = "${AWS::AccountId}"
REGION = "${AWS::Region}"


def build_template(
    plan: Plan,
    mode: Mode,
    definition: dict[str, Any],
    table: str | None,
    approvals_topic: str | None = None,
    *,
    counters: bool = False,
    parts: Mapping[str, dict[str, Any]] | None = None,
    checks: tuple[str, int] | None = None,
    routes: Mapping[str, Route] | None = None,
) -> dict[str, Any]:
    """``counters``: the definition takes slots of semaphores (updates counters in ``table``).
    ``parts``: the definitions of the parts the main machine starts as child executions, each
    deployed as ``<StateMachineName>-<part>`` with the same role; then every definition is read
    from S3 (parameters ``DefinitionsBucket`` and ``DefinitionsPrefix``), not the template.
    ``checks``: the checks function's name and timeout (seconds), when the plan has checks.
    ``routes``: the steps whose calls go elsewhere (:mod:`drplan.stepfunctions.calls`); when some
    go through the calls function, the template deploys it with its own role."""
    from drplan.stepfunctions.export import (
        DEFINITION_FILE,
        MACHINE_NAME_ROOM,
        default_machine_name,
        part_file,
    )
    from drplan.stepfunctions.iam import role_policy

    parts = parts or {}
    children = "${StateMachineName}" if parts else None
    policy = _substituted(
        role_policy(
            plan,
            mode,
            table,
            approvals_topic,
            account_id=ACCOUNT,
            region=REGION,
            counters=counters,
            children=children,
            checks_function=checks[0] if checks else None,
            routes=routes,
        )
    )
    resources: dict[str, Any] = {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"Runs the drplan {mode} of plan {plan.name} (drplan export stepfunctions)",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "states.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            # Only state machines of this account may use the role (confused deputy).
                            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                        }
                    ],
                },
                "Policies": [{"PolicyName": f"drplan-{plan.name}-{mode}", "PolicyDocument": policy}],
                "Tags": [{"Key": "drplan:plan", "Value": plan.name}],
            },
        },
        "StateMachine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": {"Ref": "StateMachineName"},
                "StateMachineType": "STANDARD",
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                **(_from_s3(DEFINITION_FILE) if parts else {"Definition": definition}),
                "Tags": [{"Key": "drplan:plan", "Value": plan.name}, {"Key": "drplan:mode", "Value": mode}],
            },
        },
    }
    for name in parts:
        logical = "StateMachine" + name.title().replace("-", "")  # part-1 -> StateMachinePart1
        resources[logical] = {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": {"Fn::Sub": f"${{StateMachineName}}-{name}"},
                "StateMachineType": "STANDARD",
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                **_from_s3(part_file(name)),
                "Tags": [
                    {"Key": "drplan:plan", "Value": plan.name},
                    {"Key": "drplan:mode", "Value": mode},
                    {"Key": "drplan:part", "Value": name},
                ],
            },
        }
        # The main machine finds its parts by name (its own ARN with -part-N after it).
        resources["StateMachine"].setdefault("DependsOn", []).append(logical)
    if table is not None:
        resources["CoordinationTable"] = {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "TableName": table,
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "Tags": [{"Key": "drplan:plan", "Value": plan.name}],
            },
        }
        resources["StateMachine"].setdefault("DependsOn", []).append("CoordinationTable")
    outputs: dict[str, Any] = {
        "StateMachineArn": {
            "Description": "Start executions of this state machine",
            "Value": {"Ref": "StateMachine"},
        },
        "RoleArn": {"Description": "The state machine's role", "Value": {"Fn::GetAtt": ["Role", "Arn"]}},
    }
    if approvals_topic is not None:
        # The execution works the topic's ARN out from its own (drplan/stepfunctions/approval.py):
        # the name must be this one, in the stack's account and region.
        resources["ApprovalsTopic"] = {
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "TopicName": approvals_topic,
                "DisplayName": "drplan approvals",
                "Tags": [{"Key": "drplan:plan", "Value": plan.name}],
            },
        }
        resources["StateMachine"]["DependsOn"] = [
            *resources["StateMachine"].get("DependsOn", []),
            "ApprovalsTopic",
        ]
        outputs["ApprovalsTopicArn"] = {
            "Description": "Manual steps ask for approval here: subscribe the approvers",
            "Value": {"Ref": "ApprovalsTopic"},
        }
    parameters: dict[str, Any] = {}
    conditions: dict[str, Any] = {}
    if checks is not None:
        resources.update(_checks_function(plan, mode, *checks))
        resources["StateMachine"].setdefault("DependsOn", []).append("ChecksFunction")
        parameters.update(CHECKS_PARAMETERS)
        conditions["ChecksInVpc"] = {
            "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "ChecksSubnetIds"}]}, ""]}]
        }
        outputs["ChecksFunctionArn"] = {
            "Description": "HTTP and TCP checks try with this function",
            "Value": {"Fn::GetAtt": ["ChecksFunction", "Arn"]},
        }
    relocated = [route for route in (routes or {}).values() if route.through_function]
    if relocated:
        resources.update(_calls_function(plan, mode, relocated[0].function, routes or {}))
        resources["StateMachine"].setdefault("DependsOn", []).append("CallsFunction")
        outputs["CallsFunctionArn"] = {
            "Description": "Steps in another Region make their AWS calls with this function",
            "Value": {"Fn::GetAtt": ["CallsFunction", "Arn"]},
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"drplan: the {mode} of plan {plan.name} as an AWS Step Functions state machine",
        "Parameters": {
            "StateMachineName": {
                "Type": "String",
                "Default": default_machine_name(plan, mode, parts=bool(parts)),
                "Description": "Name of the state machine"
                + (" (its parts' machines are named after it, with -part-N)" if parts else ""),
                **({"MaxLength": MACHINE_NAME_ROOM} if parts else {}),
            },
            **(
                {
                    "DefinitionsBucket": {
                        "Type": "String",
                        "Description": "The S3 bucket the definitions (*.asl.json) were uploaded to",
                    },
                    "DefinitionsPrefix": {
                        "Type": "String",
                        "Default": "",
                        "Description": "The key prefix of the definitions in the bucket (ending with /)",
                    },
                }
                if parts
                else {}
            ),
            **parameters,
        },
        **({"Conditions": conditions} if conditions else {}),
        "Resources": resources,
        "Outputs": outputs,
    }


CHECKS_PARAMETERS: dict[str, Any] = {
    "ChecksSubnetIds": {
        "Type": "CommaDelimitedList",
        "Default": "",
        "Description": "Subnets the checks function runs in, to reach restored services inside a VPC "
        "(empty: outside any VPC, public endpoints only)",
    },
    "ChecksSecurityGroupIds": {
        "Type": "CommaDelimitedList",
        "Default": "",
        "Description": "Security groups of the checks function, with ChecksSubnetIds",
    },
}


def _checks_function(plan: Plan, mode: Mode, name: str, timeout: int) -> dict[str, Any]:
    """The function HTTP and TCP checks try with (drplan.stepfunctions.checks): the code of
    drplan.actions.probes inline, and a role that may write its logs and, in a VPC, attach to it.
    The state machine names it, so its name is fixed."""
    from drplan.stepfunctions.checks import checks_function_source

    managed = "arn:${AWS::Partition}:iam::aws:policy/service-role/"
    tags = [{"Key": "drplan:plan", "Value": plan.name}, {"Key": "drplan:mode", "Value": mode}]
    return {
        "ChecksRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"The drplan checks function of plan {plan.name} ({mode})",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "ManagedPolicyArns": [
                    {
                        "Fn::If": [
                            "ChecksInVpc",
                            {"Fn::Sub": managed + "AWSLambdaVPCAccessExecutionRole"},
                            {"Fn::Sub": managed + "AWSLambdaBasicExecutionRole"},
                        ]
                    }
                ],
                "Tags": tags,
            },
        },
        "ChecksFunction": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": name,
                "Description": "drplan: one try of an HTTP or TCP check (drplan/actions/probes.py)",
                "Runtime": "python3.12",
                "Handler": "index.handler",
                "Code": {"ZipFile": checks_function_source()},
                "Role": {"Fn::GetAtt": ["ChecksRole", "Arn"]},
                "Timeout": timeout,
                "MemorySize": 128,
                "VpcConfig": {
                    "Fn::If": [
                        "ChecksInVpc",
                        {
                            "SubnetIds": {"Ref": "ChecksSubnetIds"},
                            "SecurityGroupIds": {"Ref": "ChecksSecurityGroupIds"},
                        },
                        {"Ref": "AWS::NoValue"},
                    ]
                },
                "Tags": tags,
            },
        },
    }


def _calls_function(plan: Plan, mode: Mode, name: str, routes: Mapping[str, Route]) -> dict[str, Any]:
    """The function steps in another Region make their calls with (drplan.stepfunctions.calls):
    the code of drplan.stepfunctions.calls_handler inline, and a role with those steps' statements
    (drplan.stepfunctions.iam.calls_policy) and its logs. The state machine names it: fixed name."""
    from drplan.stepfunctions.calls import FUNCTION_TIMEOUT, calls_function_source
    from drplan.stepfunctions.iam import calls_policy

    policy = _substituted(calls_policy(plan, mode, routes, account_id=ACCOUNT, region=REGION))
    tags = [{"Key": "drplan:plan", "Value": plan.name}, {"Key": "drplan:mode", "Value": mode}]
    return {
        "CallsRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"The drplan calls function of plan {plan.name} ({mode})",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "ManagedPolicyArns": [
                    {
                        "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
                    }
                ],
                "Policies": [{"PolicyName": f"drplan-{plan.name}-{mode}-calls", "PolicyDocument": policy}],
                "Tags": tags,
            },
        },
        "CallsFunction": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": name,
                "Description": "drplan: one AWS call in another Region (drplan/stepfunctions/calls_handler.py)",
                "Runtime": "python3.12",
                "Handler": "index.handler",
                "Code": {"ZipFile": calls_function_source()},
                "Role": {"Fn::GetAtt": ["CallsRole", "Arn"]},
                "Timeout": FUNCTION_TIMEOUT,
                "MemorySize": 256,  # boto3 loads the service's model: 128 MB starts it slowly
                "Tags": tags,
            },
        },
    }


def _from_s3(file_name: str) -> dict[str, Any]:
    """A split plan's definitions are deployed from S3: together they are over CloudFormation's
    template limit (1 MB) long before any one of them is over Step Functions' (1 MiB)."""
    return {
        "DefinitionS3Location": {
            "Bucket": {"Ref": "DefinitionsBucket"},
            "Key": {"Fn::Sub": f"${{DefinitionsPrefix}}{file_name}"},
        }
    }


def _substituted(value: Any) -> Any:
    """Strings naming the stack's account or region become ``Fn::Sub``, for CloudFormation to fill."""
    if isinstance(value, str):
        return {"Fn::Sub": value} if "${AWS::" in value else value
    if isinstance(value, dict):
        return {k: _substituted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_substituted(v) for v in value]
    return value
