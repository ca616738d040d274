"""moto 5.2.1's Step Functions interpreter, given what Step Functions does for
``states:startExecution.sync:2`` (a plan split into child executions, drplan/stepfunctions/parts.py).

Two bugs of moto stand between it and that integration:

- it passes the integration's parameters (``StateMachineArn``, ``Name``, ``Input``) to boto3
  unchanged, which knows only ``stateMachineArn``..., and reads the answer as ``ExecutionArn``
  where boto3 returns ``executionArn``: the parameters and answers are mapped through the service
  model, as its aws-sdk integrations do;
- starting an execution deep-copies the state machine, and with it its executions and the whole
  backend, every running execution and its threads' locks: the copy fails while the main execution
  runs, or once a machine has run. The copy keeps the backend and the executions.

Used by the tests (tests/test_stepfunctions_parts.py) and the benchmark (benchmarks/bench_stepfunctions.py).
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest


@contextlib.contextmanager
def moto_starts_child_executions() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    try:
        from moto.stepfunctions.models import StateMachineInstance
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
            StateTaskServiceSfn,
        )
        from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        model = botocore.session.get_session().get_service_model("stepfunctions")
        by_action = {name.lower(): name for name in model.operation_names}

        def operation(task: Any, action: str | None) -> Any:
            name = (action or task._get_boto_service_action()).replace("_", "")
            return model.operation_model(by_action[name])

        def parameters(
            self: Any, params: dict[str, Any], boto_service_name: Any = None, service_action_name: Any = None
        ) -> None:
            op = operation(self, service_action_name)
            if op.name == "StartExecution" and not isinstance(params.get("Input"), str):
                params["Input"] = to_json_str(params.get("Input") or {}, separators=(",", ":"))
            self._to_boto_request(params, op.input_shape)

        def response(
            self: Any, response: Any, boto_service_name: Any = None, service_action_name: Any = None
        ) -> None:
            self._from_boto_response(response, operation(self, service_action_name).output_shape)

        def shared(self: Any, memo: dict[int, Any]) -> Any:
            memo[id(self)] = self
            return self

        def machine_copy(self: Any, memo: dict[int, Any]) -> Any:
            clone = copy.copy(self)
            memo[id(self)] = clone
            for name, value in vars(self).items():
                if name not in ("executions", "backend"):
                    setattr(clone, name, copy.deepcopy(value, memo))
            return clone

        patch.setattr(StateTaskServiceSfn, "_normalise_parameters", parameters)
        patch.setattr(StateTaskServiceSfn, "_normalise_response", response)
        patch.setattr(StepFunctionsParserBackend, "__deepcopy__", shared, raising=False)
        patch.setattr(StateMachineInstance, "__deepcopy__", machine_copy, raising=False)
        yield
    finally:
        patch.undo()


def create_machines(
    sfn: Any, exported: Any, name: str, role: str = "arn:aws:iam::123456789012:role/sfn", **options: Any
) -> dict[str, Any]:
    """An export's state machines as its template names them, the parts first (``NAME-part-N``):
    moto's CloudFormation does not put state machines where its interpreter finds them. Returns
    CreateStateMachine's answer for the main machine (``options`` go to that call)."""
    for part, definition in exported.parts.items():
        sfn.create_state_machine(name=f"{name}-{part}", definition=json.dumps(definition), roleArn=role)
    answer: dict[str, Any] = sfn.create_state_machine(
        name=name, definition=json.dumps(exported.definition), roleArn=role, **options
    )
    return answer
