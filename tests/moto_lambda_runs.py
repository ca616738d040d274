"""moto's Lambda (simple mode, no Docker), running Python functions' own code in-process.

In its simple mode moto answers every invocation with the payload it was sent: a function that
checks something would always "pass". For the functions drplan deploys itself (the checks function
of an exported state machine, whose code is in the template), the tests need the code to run: here
an invocation unzips the function's ``index.py`` as moto stores it, calls its handler with the
event, and answers with its result, or with Lambda's ``Unhandled`` function error when it raises.
The code is the function's own; only the runtime is this process (Python 3.11+, as Lambda's 3.12).
"""

from __future__ import annotations

import contextlib
import io
import json
import types
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest


def _run(code: bytes, handler: str, event: Any) -> tuple[Any, bool]:
    module_name, function_name = handler.rsplit(".", 1)
    with zipfile.ZipFile(io.BytesIO(code)) as archive:
        source = archive.read(f"{module_name}.py").decode()
    module = types.ModuleType(module_name)
    exec(compile(source, f"{module_name}.py", "exec"), module.__dict__)
    try:
        return getattr(module, function_name)(event, None), False
    except Exception as exc:  # Lambda's runtime reports it as the function's error
        return {"errorMessage": str(exc), "errorType": type(exc).__name__}, True


@contextlib.contextmanager
def moto_runs_lambda_code() -> Iterator[list[Any]]:
    """Yields the events the functions were invoked with, in order."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    events: list[Any] = []

    def invoke(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        function = self.get_function(function_name, qualifier)
        event = json.loads(body or "null")
        events.append(event)
        result, failed = _run(function.code_bytes, function.handler, event)
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(result).encode()

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(LambdaSimpleBackend, "invoke", invoke)
        yield events
    finally:
        patch.undo()


def deploy_inline_function(template: dict[str, Any], resource: str, region: str = "us-east-1") -> None:
    """The template's function ``resource`` (``ChecksFunction``, ``CallsFunction``), created in moto
    with its inline code as CloudFormation would (call it inside ``mock_aws``)."""
    import boto3

    props = template["Resources"][resource]["Properties"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", props["Code"]["ZipFile"])
    role = boto3.client("iam", region_name=region).create_role(
        RoleName=resource.lower(), AssumeRolePolicyDocument="{}"
    )
    boto3.client("lambda", region_name=region).create_function(
        FunctionName=props["FunctionName"],
        Runtime=props["Runtime"],
        Role=role["Role"]["Arn"],
        Handler=props["Handler"],
        Code={"ZipFile": code.getvalue()},
        Timeout=props["Timeout"],
    )
