"""moto 5.2.1's Step Functions interpreter, given what Step Functions does with the parameters and
answers of an ``aws-sdk`` integration for a service whose API is not PascalCase (ECS, EKS ...).

Step Functions takes an ``aws-sdk:`` task's parameters in PascalCase (``Cluster``, ``DesiredCount``)
and hands back the answer in PascalCase (``Services``, ``RunningCount``), whatever the service's own
API casing, and word by word: RDS's ``DBInstanceIdentifier`` is ``DbInstanceIdentifier``, Route 53's
``TTL`` is ``Ttl``. moto passes the parameters to boto3 unchanged (which knows ``cluster`` and
``desiredCount`` only) and hands boto3's answer back as it is: no definition could run both on AWS
and in moto. Here both are mapped through the service's model, as moto does for its optimised
integrations (with moto's own rule for Step Functions' spelling), and a parameter under any other
spelling fails the task, as Step Functions refuses such a definition. The tests of every exported
machine run with it (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest


class MisspelledField(ValueError):
    """A parameter Step Functions would refuse: its name is not the field's Step Functions spelling."""


def _spelled_as_step_functions(value: Any, shape: Any, where: str) -> None:
    """Step Functions accepts a parameter only under its own spelling of the field (``DbInstanceIdentifier``,
    ``Ttl``: the SDK's member name, PascalCased word by word), and refuses the definition otherwise;
    moto matches any casing. Here a parameter under another spelling fails the task, as AWS would
    refuse the definition."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    if shape is None:
        return
    if shape.type_name == "structure" and isinstance(value, dict):
        spelled = {StateTaskService._to_sfn_cased(name): member for name, member in shape.members.items()}
        for key, item in value.items():
            if key not in spelled:
                near = [k for k in spelled if k.lower() == key.lower()]
                raise MisspelledField(
                    f"{where}: Step Functions has no field {key!r}"
                    + (f" (it spells it {near[0]!r})" if near else "")
                )
            _spelled_as_step_functions(item, spelled[key], where)
    elif shape.type_name == "list" and isinstance(value, list):
        for item in value:
            _spelled_as_step_functions(item, shape.member, where)


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
        shape = operation(self).input_shape
        _spelled_as_step_functions(params, shape, self.resource.resource_arn)
        self._to_boto_request(params, shape)

    def response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        self._from_boto_response(response, operation(self).output_shape)

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(StateTaskServiceAwsSdk, "_normalise_parameters", parameters)
        patch.setattr(StateTaskServiceAwsSdk, "_normalise_response", response)
        yield
    finally:
        patch.undo()
