"""Steps that run in another Region or account: a step's own ``region`` and ``role_arn``.

Step Functions' ``aws-sdk:`` integrations call the state machine's own Region only, but may call
as another role: a Task's ``Credentials`` (``{"RoleArn": ...}``) makes the call with that role's
credentials (cross-account). So, after a translation has built a step's states (its work, its
undo, what it remembers), :func:`relocate` rewrites that step's ``aws-sdk`` Tasks:

- a step with its own ``role_arn`` only, in the machine's Region: each Task gets the
  ``Credentials`` (the state machine's role must be allowed to assume the role);
- a step in another Region, or whose role wants an ``external_id`` (Step Functions'
  ``Credentials`` cannot pass one): each Task invokes the **calls function** instead, a Lambda the
  template deploys with the machine (its code: :mod:`drplan.stepfunctions.calls_handler`), which
  makes the same call with boto3 in that Region, as that role, and answers as the Task would have:
  the same spelling of fields, the same error names and causes. The Task keeps its ``Parameters``
  (the function's payload), ``ResultSelector``, ``ResultPath``, ``Retry`` and ``Catch`` in meaning;
  only Lambda's own transient errors are retried besides.

A Task that is not an ``aws-sdk`` call (a Lambda invocation, an approval's SNS message) has no such
rewriting: a step with one is refused (:func:`unrelocatable`).
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from drplan.model import Mode, Plan, Step
from drplan.stepfunctions.builder import Scope, State
from drplan.stepfunctions.tasks import SDK, THROTTLE_RETRY

INVOKE = "arn:aws:states:::lambda:invoke"
#: Lambda's errors that mean the call was not made (the function did not run, or not to its end),
#: retried as the checks function's are (drplan.stepfunctions.checks): throttling with the local
#: engine's backoff, a function waking up for minutes, service errors a few times only.
LAMBDA_RETRY: list[dict[str, Any]] = [
    {"ErrorEquals": ["Lambda.TooManyRequestsException"], **THROTTLE_RETRY},
    {
        "ErrorEquals": [
            "Lambda.ResourceNotReadyException",
            "Lambda.ResourceConflictException",
            "Lambda.ENINotReadyException",
            "Lambda.EC2ThrottledException",
        ],
        "IntervalSeconds": 10,
        "BackoffRate": 2.0,
        "MaxDelaySeconds": 120,
        "MaxAttempts": 8,
    },
    {
        "ErrorEquals": ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"],
        "IntervalSeconds": 2,
        "BackoffRate": 2.0,
        "MaxAttempts": 4,
        "JitterStrategy": "FULL",
    },
]
#: The function's timeout (seconds): one API call, which the SDK bounds well below it.
FUNCTION_TIMEOUT = 120
#: How a function error's cause begins: the Python runtime's JSON, ``{"errorMessage": ...}``.
_FUNCTION_ERROR = '{"errorMessage"*'
#: A JSONPath's root, not the context object's (``$$``) nor a ``$`` inside a word.
_ROOT = re.compile(r"(?<![$\w])\$(?![$\w])")


@dataclass(frozen=True)
class Route:
    """Where a step's AWS calls go, when not to the machine's own Region as its role.

    ``region``: another Region (None: the machine's); ``role_arn``: the role the calls are made as;
    ``external_id``: what that role's trust policy requires; ``function``: the calls function;
    ``endpoints``: (Region, URL) of the only endpoints the service answers at, tried in turn (Route
    53 ARC's cluster endpoints: :mod:`drplan.stepfunctions.arc`)."""

    region: str | None
    role_arn: str | None
    external_id: str | None
    function: str
    endpoints: tuple[tuple[str, str], ...] = ()

    @property
    def through_function(self) -> bool:
        """Calls go through the calls function: another Region, an external ID to pass, or
        endpoints of its own to address."""
        return self.region is not None or self.external_id is not None or bool(self.endpoints)


def route_of(step: Step, machine_region: str | None, function: str) -> Route | None:
    """The step's route, or None when its calls are the machine's own (no ``region`` other than
    the machine's, no ``role_arn``). ``machine_region``: the Region the machine is exported for."""
    region = step.region if step.region and step.region != machine_region else None
    role_arn = step.role_arn or None
    if region is None and role_arn is None:
        return None
    return Route(region, role_arn, step.external_id if role_arn else None, function)


def calls_function_name(plan: Plan, mode: Mode) -> str:
    """``drplan-PLAN-MODE-calls``, shortened with a hash when over Lambda's 64 characters."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", f"drplan-{plan.name}-{mode}-calls")
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: 64 - 15]}-{digest}-calls"


def calls_function_source() -> str:
    """The function's code: :mod:`drplan.stepfunctions.calls_handler` as it is."""
    from drplan.stepfunctions import calls_handler

    return inspect.getsource(calls_handler)


def _tasks(states: Mapping[str, State]) -> Iterable[State]:
    """Every Task among ``states`` and in the branches of their Parallel and Map states."""
    for state in states.values():
        if state.get("Type") == "Task":
            yield state
        for branch in _branches(state):
            yield from _tasks(branch["States"])


def _branches(state: State) -> list[dict[str, Any]]:
    if state.get("Type") == "Parallel":
        return list(state.get("Branches", []))
    if state.get("Type") == "Map":
        processor = state.get("ItemProcessor") or state.get("Iterator")
        return [processor] if processor else []
    return []


def unrelocatable(states: Mapping[str, State]) -> str | None:
    """Why a step with these states cannot run in another Region or account, or None: a Task that
    is not an ``aws-sdk`` call has neither ``Credentials`` rewriting nor a calls-function twin."""
    for state in _tasks(states):
        resource = str(state.get("Resource", ""))
        if not resource.startswith(SDK + ":"):
            return f"its {resource.removeprefix('arn:aws:states:::')} task cannot run in another Region or account yet"
    return None


def relocate(scope: Scope, names: Iterable[str], route: Route, label: str) -> None:
    """Rewrite the ``aws-sdk`` Tasks among ``scope``'s states ``names`` (those a translation just
    built for the step, with the Parallel and Map branches inside them) for ``route``. New states
    (see :func:`_through_function`) go beside the Task they serve; ``label`` begins their names."""
    errors: dict[tuple[str, str], str] = {}  # the error states of this scope, shared by its Tasks
    for name in list(names):
        state = scope.states[name]
        if state.get("Type") == "Task" and str(state.get("Resource", "")).startswith(SDK + ":"):
            if route.through_function:
                _through_function(scope, name, route, label, errors)
            else:
                state["Credentials"] = {"RoleArn": route.role_arn}
        for branch in _branches(state):
            inner = Scope(scope.names, branch["States"])
            relocate(inner, list(inner.states), route, label)


def _under(path: str, field: str) -> str:
    return f"{path}.{field}"


def _payload_paths(value: Any) -> Any:
    """A ``ResultSelector`` reading the Lambda integration's result: the SDK's answer is its
    ``Payload``, so every path's root ``$`` becomes ``$.Payload`` (context paths stay)."""
    if isinstance(value, dict):
        return {
            k: (_ROOT.sub("$.Payload", v) if k.endswith(".$") and isinstance(v, str) else _payload_paths(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_payload_paths(v) for v in value]
    return value


def _through_function(
    scope: Scope, name: str, route: Route, label: str, errors: dict[tuple[str, str], str]
) -> None:
    """The Task ``name`` becomes an invocation of the calls function with the same meaning:

    - ``Parameters`` are the payload's ``parameters`` (their paths still read the state's input);
    - the answer is the integration's ``Payload``: a ``ResultSelector``'s paths read under it; a
      Task without one whose result is kept gets a Pass after it that takes the ``Payload`` out;
    - ``Retry`` gains Lambda's transient errors (the function names the service's errors as Step
      Functions does, so the Task's own retriers and catchers still match);
    - a function error's cause is the runtime's JSON (``{"errorMessage": ...}``): each ``Catch``
      goes through states that put the message back as the cause, and an error no catcher takes
      is raised again with its message as cause, so a failure reads as the ``aws-sdk`` one would.
    """
    task = scope.states[name]
    service, action = str(task["Resource"]).removeprefix(SDK + ":").split(":", 1)
    payload: dict[str, Any] = {
        "service": service,
        "action": action,
        "region": route.region,
        "role": route.role_arn,
        "parameters": task.pop("Parameters", {}),
    }
    if route.external_id:
        payload["external_id"] = route.external_id
    if route.endpoints:
        payload["endpoints"] = [{"region": region, "endpoint": url} for region, url in route.endpoints]
    task["Resource"] = INVOKE
    task["Parameters"] = {"FunctionName": route.function, "Payload": payload}
    result = task.get("ResultPath", "$")
    if "ResultSelector" in task:
        task["ResultSelector"] = _payload_paths(task["ResultSelector"])
    elif result is not None:
        task["ResultSelector"] = {"v.$": "$.Payload"}
        unwrap: State = {"Type": "Pass", "InputPath": _under(result, "v"), "ResultPath": result}
        for moved in ("OutputPath", "Next", "End"):
            if moved in task:
                unwrap[moved] = task.pop(moved)
        # A follower reads a chosen recovery point from the output of the state marked ``point``:
        # the answer is whole only after the Pass.
        if str(task.get("Comment", "")).startswith("drplan:point"):
            unwrap = {"Comment": task.pop("Comment"), **unwrap}
        task["Next"] = scope.add(f"{label} answer", unwrap)
    retry = list(task.get("Retry", []))
    # A retrier of States.ALL must stay last (ASL): Lambda's go before it.
    last = next((i for i, r in enumerate(retry) if "States.ALL" in r["ErrorEquals"]), len(retry))
    task["Retry"] = retry[:last] + [dict(r) for r in LAMBDA_RETRY] + retry[last:]
    catchers = []
    for catcher in task.get("Catch", []):
        where = catcher.get("ResultPath", "$")
        if where is None:  # the error is dropped: nothing to put back
            catchers.append(catcher)
            continue
        catchers.append({**catcher, "Next": _message_as_cause(scope, where, catcher["Next"], label, errors)})
    if not any("States.ALL" in c["ErrorEquals"] for c in catchers):
        if ("$.w.callerr", "") not in errors:
            errors["$.w.callerr", ""] = scope.add(
                f"{label} error",
                {"Type": "Fail", "ErrorPath": "$.w.callerr.Error", "CausePath": "$.w.callerr.Cause"},
            )
        rethrow = errors["$.w.callerr", ""]
        catchers.append(
            {
                "ErrorEquals": ["States.ALL"],
                "ResultPath": "$.w.callerr",
                "Next": _message_as_cause(scope, "$.w.callerr", rethrow, label, errors),
            }
        )
    task["Catch"] = catchers


def _message_as_cause(
    scope: Scope, where: str, then: str, label: str, errors: dict[tuple[str, str], str]
) -> str:
    """States that turn the error at ``where`` (``Error``, ``Cause``) from a function error's
    JSON cause into its message, then go to ``then``; other errors (Lambda's own) pass as they are.
    Built once per (``where``, ``then``) in a scope (``errors``): Tasks that catch alike share them."""
    if (where, then) in errors:
        return errors[where, then]
    message = scope.add(
        f"{label} error message",
        {
            "Type": "Pass",
            "Parameters": {"Error.$": _under(where, "Error"), "Cause.$": _under(where, "Cause.errorMessage")},
            "ResultPath": where,
            "Next": then,
        },
    )
    parsed = scope.add(
        f"{label} error cause",
        {
            "Type": "Pass",
            "Parameters": {
                "Error.$": _under(where, "Error"),
                "Cause.$": f"States.StringToJson({_under(where, 'Cause')})",
            },
            "ResultPath": where,
            "Next": message,
        },
    )
    errors[where, then] = scope.add(
        f"{label} function error?",
        {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": _under(where, "Cause"), "IsPresent": True},
                        {"Variable": _under(where, "Cause"), "StringMatches": _FUNCTION_ERROR},
                    ],
                    "Next": parsed,
                }
            ],
            "Default": then,
        },
    )
    return errors[where, then]
