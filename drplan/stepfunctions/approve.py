"""``drplan approve``: answer a manual step that waits for approval in an execution.

The step waits for its task token (:mod:`drplan.stepfunctions.approval`). The token is found in the
execution's history: the ``TaskScheduled`` event of the step's approval task holds the resolved
parameters, among them the message attribute ``drplan.task_token``. Approving calls
``SendTaskSuccess`` with the approver's identity (``user@host (caller ARN)``, as a local run
records who approved), which the step records as its ``approved_by`` output; rejecting calls
``SendTaskFailure`` (``drplan.Rejected``, with who rejected and why), which fails the step and skips
its dependents like any failure.

Which execution: ``--execution-arn``; or the state machine (``--state-machine``, ``--stack-name``)
and the run id, since ``drplan start`` names executions after their run ids; or the local run
index, where ``drplan start`` recorded the execution of the run it follows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drplan.errors import DrplanError, UsageError
from drplan.stepfunctions.approval import REJECTED, ROLE, STEP_ATTRIBUTE, TOKEN_ATTRIBUTE
from drplan.stepfunctions.history import child_executions, read_run_machine

#: History events that end a task: after one of them its token answers nothing any more.
_TASK_ENDED = {
    "TaskSucceeded",
    "TaskFailed",
    "TaskTimedOut",
    "TaskAborted",
    "TaskStartFailed",
    "TaskSubmitFailed",
}

#: What Step Functions answers for a token that no longer waits.
_GONE = {"InvalidToken", "TaskDoesNotExist", "TaskTimedOut"}


class NotWaiting(DrplanError):
    """The step is not waiting for approval: nothing was answered (exit 1)."""


@dataclass(frozen=True)
class Waiting:
    """A manual step's approval task in an execution's history."""

    key: str
    token: str
    scheduled: Any  # when the approval was asked for (the TaskScheduled event's timestamp)
    answered: bool  # the task ended (answered, timed out, or stopped with its step)


@dataclass(frozen=True)
class Answer:
    key: str
    execution_arn: str
    verdict: Literal["approved", "rejected"]
    by: str


def execution_of(state_machine_arn: str, run_id: str) -> str:
    """The execution ``drplan start`` started for ``run_id`` (it names executions after run ids)."""
    parts = state_machine_arn.split(":")
    if len(parts) < 7 or parts[5] != "stateMachine":
        raise UsageError(f"{state_machine_arn!r} is not a state machine ARN")
    return ":".join([*parts[:5], "execution", parts[6], run_id])


def execution_in_index(state_dir: str | Path, run_id: str) -> str:
    """The execution a run in the local index was following (``drplan start`` recorded it)."""
    from drplan.engine.journal import load_journal

    try:
        header = load_journal(state_dir, run_id).header
    except UsageError as exc:
        raise UsageError(
            f"run {run_id} is not in {state_dir}: which execution is it?",
            hint="pass --execution-arn (the approval message has it), or --stack-name / --state-machine",
        ) from exc
    arn = header.get("execution_arn")
    if not arn:
        raise UsageError(
            f"run {run_id} in {state_dir} is a local run, not one on Step Functions: approve its manual "
            "steps where it runs (--approve STEP, or at its terminal)"
        )
    return str(arn)


def _history(sfn: Any, execution_arn: str) -> dict[int, dict[str, Any]]:
    """The execution's whole history by event id. (Read whole: moto ignores ``reverseOrder``, and
    an approval is answered once, not polled.)"""
    events: dict[int, dict[str, Any]] = {}
    ask: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**ask)
        events.update({int(e["id"]): e for e in page.get("events", [])})
        token = page.get("nextToken")
        if not token:
            return events
        ask["nextToken"] = token


def _approval_of(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(step, token) when ``event`` schedules a drplan approval."""
    if event.get("type") != "TaskScheduled":
        return None
    details = event.get("taskScheduledEventDetails") or {}
    if details.get("resourceType") != "sns" or not str(details.get("resource", "")).endswith(
        "waitForTaskToken"
    ):
        return None
    try:
        attributes = json.loads(details.get("parameters") or "{}").get("MessageAttributes") or {}
        step = attributes[STEP_ATTRIBUTE]["StringValue"]
        token = attributes[TOKEN_ATTRIBUTE]["StringValue"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return str(step), str(token)


def _ended(events: Mapping[int, Mapping[str, Any]], scheduled: int) -> bool:
    """Whether a task-ending event follows the TaskScheduled event ``scheduled`` (through the
    ``previousEventId`` links of its own branch)."""
    for event in events.values():
        if event.get("type") not in _TASK_ENDED:
            continue
        at: Any = event.get("previousEventId")
        for _ in range(8):  # TaskScheduled <- TaskStarted <- TaskSubmitted <- TaskSucceeded
            if at == scheduled:
                return True
            previous = events.get(int(at)) if isinstance(at, int) else None
            if previous is None:
                break
            at = previous.get("previousEventId")
    return False


def approvals(sfn: Any, execution_arn: str) -> tuple[list[str], dict[str, Waiting]]:
    """The manual steps of the execution's state machine, and the latest approval each asked for."""
    definition = sfn.describe_state_machine_for_execution(executionArn=execution_arn)["definition"]
    machine_arn = str(sfn.describe_execution(executionArn=execution_arn)["stateMachineArn"])
    machine = read_run_machine(sfn, definition, machine_arn)
    manual = sorted({str(r.key) for r in machine.roles.values() if r.kind == ROLE and r.key})
    main = _history(sfn, execution_arn)
    # A plan split into parts asks in the child execution that runs the step.
    histories = [main, *(_history(sfn, arn) for arn in child_executions([main[k] for k in sorted(main)]))]
    found: dict[str, Waiting] = {}
    for events in histories:
        for number in sorted(events, reverse=True):  # the newest first: a retried step's latest ask
            approval = _approval_of(events[number])
            if approval is None or approval[0] in found:
                continue
            key, token = approval
            found[key] = Waiting(key, token, events[number].get("timestamp"), _ended(events, number))
    return manual, found


def answer(
    sfn: Any,
    execution_arn: str,
    key: str,
    *,
    by: str,
    reject: bool = False,
    reason: str | None = None,
) -> Answer:
    """Approve (or reject) ``key``'s waiting approval in the execution, as ``by``."""
    from botocore.exceptions import ClientError

    described = sfn.describe_execution(executionArn=execution_arn)
    status = str(described.get("status"))
    if status != "RUNNING":
        raise NotWaiting(f"execution {execution_arn} is {status}: nothing waits for approval any more")
    manual, found = approvals(sfn, execution_arn)
    if key not in manual:
        listed = ", ".join(manual) if manual else "none"
        raise UsageError(
            f"{key} is not a manual step of this state machine (its manual steps: {listed})",
            hint="STEP is the step's key, service.step",
        )
    waiting = found.get(key)
    if waiting is None or waiting.answered:
        others = [k for k, w in sorted(found.items()) if not w.answered]
        why = (
            "has not asked for approval yet"
            if waiting is None
            else "is not waiting for approval any more (answered, timed out, or its step ended)"
        )
        raise NotWaiting(f"{key} {why}" + (f"; waiting now: {', '.join(others)}" if others else ""))
    try:
        if reject:
            cause = f"rejected by {by} with drplan approve" + (f": {reason}" if reason else "")
            sfn.send_task_failure(taskToken=waiting.token, error=REJECTED, cause=cause)
        else:
            output = {"approved_by": by, "approved_with": "drplan approve"}
            sfn.send_task_success(taskToken=waiting.token, output=json.dumps(output))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _GONE:
            raise NotWaiting(f"{key} is not waiting any more ({code}): it was answered or timed out") from exc
        raise
    return Answer(key, execution_arn, "rejected" if reject else "approved", by)
