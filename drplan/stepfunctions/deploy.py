"""``drplan deploy``: the exported CloudFormation template (role, coordination table, state machine)
as a stack, created or updated, and waited for: what ``aws cloudformation deploy`` does, without
writing the files first.

CloudFormation takes a template of up to 51,200 bytes in the request; a larger one (a plan of more
than a few steps) goes through S3 (``--s3-bucket``), as with ``aws cloudformation deploy``. A plan
split into child executions (:mod:`drplan.stepfunctions.parts`) deploys every definition from S3
too: they are uploaded to the same bucket and the stack's parameters name them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from drplan.errors import DrplanError, UsageError
from drplan.stepfunctions.export import Exported

#: CloudFormation's limit on a template passed in the request (``TemplateBody``).
TEMPLATE_BODY_LIMIT = 51_200  # bytes

#: Stack states from which no update can start: the stack must be deleted first.
_DEAD = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"}


class DeployFailed(DrplanError):
    """CloudFormation could not create or update the stack (the reasons it gave are in the message)."""


@dataclass(frozen=True)
class Deployed:
    stack_name: str
    action: Literal["created", "updated", "unchanged"]
    state_machine_arn: str
    role_arn: str | None
    approvals_topic_arn: str | None = None  # where manual steps ask for approval (subscribe to it)


def deploy_stack(
    cfn: Any,
    exported: Exported,
    stack_name: str,
    *,
    state_machine_name: str | None = None,
    s3: Any = None,
    bucket: str | None = None,
    region: str | None = None,
    delay: int = 5,
    checks_network: tuple[list[str], list[str]] | None = None,
) -> Deployed:
    """Create the stack, or update it to this export; wait until CloudFormation is done.
    ``checks_network``: the subnets and security groups the checks function runs in (a VPC)."""
    from botocore.exceptions import ClientError, WaiterError

    body = json.dumps(exported.template, separators=(",", ":"))
    template = _template_argument(body, stack_name, s3, bucket, region, split=bool(exported.parts))
    parameters: list[dict[str, Any]] = (
        [{"ParameterKey": "StateMachineName", "ParameterValue": state_machine_name}]
        if state_machine_name
        else []
    )
    status = stack_status(cfn, stack_name)
    if checks_network is not None:
        subnets, groups = checks_network
        parameters += [
            {"ParameterKey": "ChecksSubnetIds", "ParameterValue": ",".join(subnets)},
            {"ParameterKey": "ChecksSecurityGroupIds", "ParameterValue": ",".join(groups)},
        ]
    elif exported.checks_function and status is not None:
        # An update without the options keeps the network the checks function was deployed in:
        # falling back to the template's default would take it out of the VPC, silently.
        previous = {p["ParameterKey"]: p.get("ParameterValue") for p in _stack_parameters(cfn, stack_name)}
        if previous.get("ChecksSubnetIds"):  # in a VPC now (outside, the default says so already)
            parameters += [
                {"ParameterKey": key, "UsePreviousValue": True}
                for key in ("ChecksSubnetIds", "ChecksSecurityGroupIds")
            ]
    if exported.parts:
        assert s3 is not None and bucket  # _template_argument asked for them: the template is large
        parameters += _upload_definitions(exported, stack_name, s3, bucket)
    common: dict[str, Any] = {
        "StackName": stack_name,
        **template,
        "Parameters": parameters,
        "Capabilities": ["CAPABILITY_IAM"],
        "Tags": [
            {"Key": "drplan:plan", "Value": exported.plan.name},
            {"Key": "drplan:mode", "Value": exported.mode},
        ],
    }
    if status in _DEAD:
        raise DeployFailed(
            f"stack {stack_name} is {status}: CloudFormation cannot update it",
            hint=f"delete it (aws cloudformation delete-stack --stack-name {stack_name}) and deploy again",
        )
    action: Literal["created", "updated", "unchanged"]
    try:
        if status is None:
            cfn.create_stack(**common)
            action, waiter = "created", "stack_create_complete"
        else:
            cfn.update_stack(**common)
            action, waiter = "updated", "stack_update_complete"
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", exc))
        if "No updates are to be performed" not in message:
            raise DeployFailed(f"CloudFormation refused stack {stack_name}: {message}") from exc
        action, waiter = "unchanged", ""
    if waiter:
        try:
            cfn.get_waiter(waiter).wait(
                StackName=stack_name, WaiterConfig={"Delay": delay, "MaxAttempts": 720}
            )
        except WaiterError as exc:
            reasons = failure_reasons(cfn, stack_name)
            raise DeployFailed(
                f"stack {stack_name} was not {action}: {stack_status(cfn, stack_name) or exc}"
                + ("".join(f"\n  {r}" for r in reasons))
            ) from exc
    outputs = stack_outputs(cfn, stack_name)
    if "StateMachineArn" not in outputs:
        raise DeployFailed(f"stack {stack_name} has no StateMachineArn output: it was not made by drplan")
    return Deployed(
        stack_name,
        action,
        outputs["StateMachineArn"],
        outputs.get("RoleArn"),
        outputs.get("ApprovalsTopicArn"),
    )


def _upload_definitions(exported: Exported, stack_name: str, s3: Any, bucket: str) -> list[dict[str, str]]:
    """A split plan's definitions (the template reads them from S3), under a prefix named after
    their content, so an update deploys exactly these and a rollback finds the old ones."""
    files = [(name, text) for name, text in exported.files() if name.endswith(".asl.json")]
    digest = hashlib.sha256("".join(text for _, text in files).encode("utf-8")).hexdigest()[:16]
    prefix = f"drplan/{stack_name}/definitions-{digest}/"
    for name, text in files:
        s3.put_object(
            Bucket=bucket, Key=prefix + name, Body=text.encode("utf-8"), ContentType="application/json"
        )
    return [
        {"ParameterKey": "DefinitionsBucket", "ParameterValue": bucket},
        {"ParameterKey": "DefinitionsPrefix", "ParameterValue": prefix},
    ]


def _template_argument(
    body: str, stack_name: str, s3: Any, bucket: str | None, region: str | None, *, split: bool = False
) -> dict[str, str]:
    size = len(body.encode("utf-8"))
    if split and (s3 is None or not bucket):
        raise UsageError(
            "the plan runs as child executions: the state machines' definitions are deployed from S3",
            hint="pass --s3-bucket BUCKET (a bucket in the stack's region, as for aws cloudformation deploy)",
        )
    if size <= TEMPLATE_BODY_LIMIT:
        return {"TemplateBody": body}
    if s3 is None or not bucket:
        raise UsageError(
            f"the template is {size} bytes, over the {TEMPLATE_BODY_LIMIT} bytes CloudFormation takes in a "
            "request: it must go through S3",
            hint="pass --s3-bucket BUCKET (a bucket in the stack's region, as for aws cloudformation deploy)",
        )
    key = f"drplan/{stack_name}/template-{hashlib.sha256(body.encode('utf-8')).hexdigest()[:16]}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"), ContentType="application/json")
    host = f"s3.{region}.amazonaws.com" if region else "s3.amazonaws.com"
    return {"TemplateURL": f"https://{bucket}.{host}/{key}"}


def stack_status(cfn: Any, stack_name: str) -> str | None:
    """The stack's status, or None when there is no such stack."""
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return str(stacks[0]["StackStatus"]) if stacks else None


def _stack_parameters(cfn: Any, stack_name: str) -> list[dict[str, Any]]:
    stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    return list(stacks[0].get("Parameters", [])) if stacks else []


def stack_outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs") or [])} if stacks else {}


def state_machine_of(cfn: Any, stack_name: str) -> str:
    """The ARN of the state machine a drplan stack deployed."""
    status = stack_status(cfn, stack_name)
    if status is None:
        raise UsageError(
            f"no stack {stack_name}", hint="deploy it first: drplan deploy PLAN --stack-name NAME"
        )
    arn = stack_outputs(cfn, stack_name).get("StateMachineArn")
    if not arn:
        raise UsageError(f"stack {stack_name} ({status}) has no StateMachineArn output")
    return arn


def failure_reasons(cfn: Any, stack_name: str, limit: int = 5) -> list[str]:
    """What CloudFormation said about the resources that failed, newest first."""
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except Exception:  # the reasons are a courtesy: the failure itself is reported anyway
        return []
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("FAILED")]
    return [
        f"{e.get('LogicalResourceId')} {e.get('ResourceStatus')}: {e.get('ResourceStatusReason', '')}"
        for e in failed[:limit]
    ]
