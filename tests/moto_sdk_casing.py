"""moto 5.2.1's Step Functions interpreter, given what Step Functions does with the parameters and
answers of an ``aws-sdk`` integration for a service whose API is not PascalCase (ECS, EKS ...).

Step Functions takes an ``aws-sdk:`` task's parameters in PascalCase (``Cluster``, ``DesiredCount``)
and hands back the answer in PascalCase (``Services``, ``RunningCount``), whatever the service's own
API casing. moto passes the parameters to boto3 unchanged (which knows ``cluster`` and
``desiredCount`` only) and hands boto3's answer back as it is: no definition could run both on AWS
and in moto. Here both are mapped through the service's model, as moto does for its optimised
integrations; for a PascalCase API (DynamoDB, RDS, Route 53) the mapping changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest


@contextlib.contextmanager
def moto_maps_sdk_casing() -> Iterator[None]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    session = botocore.session.get_session()

    def operation(task: Any) -> Any:
        model = session.get_service_model(task._get_boto_service_name())
        by_action = {name.lower(): name for name in model.operation_names}
        return model.operation_model(by_action[task._get_boto_service_action().replace("_", "")])

    def parameters(self: Any, params: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        self._to_boto_request(params, operation(self).input_shape)

    def response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        self._from_boto_response(response, operation(self).output_shape)

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(StateTaskServiceAwsSdk, "_normalise_parameters", parameters)
        patch.setattr(StateTaskServiceAwsSdk, "_normalise_response", response)
        yield
    finally:
        patch.undo()
