"""moto 5.2.1's Step Functions interpreter, naming an ``aws-sdk`` task's errors as Step Functions does.

Step Functions names an AWS SDK integration's error ``Service.ErrorName``: the service in its
PascalCase form (``S3``, ``Ec2``, ``DynamoDb``) and the error as the AWS SDK raises it, with the
``Exception`` suffix added when it lacks one (``S3.NoSuchBucketException``); an error the service's
model does not declare is the SDK's generic one (``S3.S3Exception``, ``Ec2.Ec2Exception``), its code
only in the cause. moto knows the PascalCase name of two services only and, with boto3's in-process
clients, sees every error as a plain ``ClientError``: every S3 error is ``s3.s3Exception``. Here the
name is worked out from botocore's model of the service, as the SDK would raise it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest

#: Step Functions' spelling of the services drplan's translations call.
SERVICES = {
    "s3": "S3",
    "ec2": "Ec2",
    "dynamodb": "DynamoDb",
    "rds": "Rds",
    "route53": "Route53",
    "autoscaling": "AutoScaling",
    "ecs": "Ecs",
    "sfn": "Sfn",
    "sns": "Sns",
}


@contextlib.contextmanager
def moto_names_errors_as_step_functions() -> Iterator[None]:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    session = botocore.session.get_session()
    original = StateTaskServiceAwsSdk._from_error

    errors: dict[str, set[str]] = {}

    def modeled(service: str, code: str) -> bool:
        if service not in errors:
            model = session.get_service_model(service)
            errors[service] = {n for n in model.shape_names if model.shape_for(n).metadata.get("exception")}
        return code in errors[service]

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        event = original(self, env, ex)
        if isinstance(ex, ClientError):
            service = self.resource.api_name
            pascal = SERVICES.get(service, service)
            code = str(ex.response["Error"].get("Code", ""))
            name = code if modeled(service, code) else pascal
            error = f"{pascal}.{name}" + ("" if name.endswith("Exception") else "Exception")
            event.error_name.error_name = error
            event.event_details["taskFailedEventDetails"]["error"] = error
        return event

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(StateTaskServiceAwsSdk, "_from_error", from_error)
        yield
    finally:
        patch.undo()
