"""The seeder of ``aws.lambda.invoke``: the function (and the undo function), echoing its event.

The sandbox runs Lambda without Docker (:data:`drplan.sandbox.MOTO_CONFIG`): every function answers
the payload it was given, whatever its code. The seeded code does the same, so the function means
the same thing on a real Lambda. A step that declares ``outputs`` therefore gets them in the sandbox
only when its payload holds them (a ``drill_with`` payload can).
"""

from __future__ import annotations

import io
import json
import re
import zipfile

from drplan.actions._aws import unresolved
from drplan.actions.awslambda.invoke import describe_function
from drplan.aws import is_not_found
from drplan.sandbox.seeders.context import SeedContext

#: The role seeded functions run as.
ROLE = "drplan-sandbox-lambda"
#: A function that returns its event.
ECHO = "def handler(event, context):\n    return event\n"
_NAME = re.compile(r"(?:^|:function:)(?P<name>[A-Za-z0-9_-]+)(?::(?P<qualifier>[^:]+))?$")


def seed_function(ctx: SeedContext) -> None:
    """``function`` (with its alias or version, when the plan names one) and ``undo_function``."""
    seed_echo(ctx, ctx.params.get("function"), ctx.params.get("qualifier"))
    seed_echo(ctx, ctx.params.get("undo_function"), None)


def seed_echo(ctx: SeedContext, function: object, qualifier: object) -> None:
    if not function or unresolved(function) or unresolved(qualifier):
        return
    found = _NAME.search(str(function))
    if found is None:
        return
    name = found.group("name")
    qualifier = qualifier or found.group("qualifier")
    client = ctx.client("lambda")
    if describe_function(ctx, name) is None:
        client.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role_arn(ctx),
            Handler="index.handler",
            Code={"ZipFile": _zipped(ECHO)},
            Description="drplan sandbox: returns its event",
            Tags={"drplan:seed": ctx.step.key},
        )
    if qualifier and qualifier != "$LATEST" and describe_function(ctx, name, str(qualifier)) is None:
        version = client.publish_version(FunctionName=name)["Version"]
        if not str(qualifier).isdigit():
            client.create_alias(FunctionName=name, Name=str(qualifier), FunctionVersion=version)


def role_arn(ctx: SeedContext) -> str:
    """The role seeded functions run as (Lambda insists that it exists)."""
    iam = ctx.client("iam")
    try:
        return str(iam.get_role(RoleName=ROLE)["Role"]["Arn"])
    except Exception as exc:
        if not is_not_found(exc):
            raise
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    return str(iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def _zipped(code: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", code)
    return buffer.getvalue()
