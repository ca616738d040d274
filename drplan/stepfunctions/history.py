"""An execution's history, read as a drplan run.

The exporter marks the states that matter with a ``Comment`` (:func:`~drplan.stepfunctions.builder.role`):
where a step starts (``drplan:step KEY``, the Parallel that races its attempts against its timeout),
each attempt, where its record is written (``drplan:record KEY``), where a manual step waits for
its approval (``drplan:approval KEY``), and a drill's cleanup of it (``drplan:undo KEY``,
``drplan:undone KEY``). :func:`read_machine` finds them in the definition the
execution ran (``DescribeStateMachineForExecution``), so following needs no state names: they are
shortened to 80 characters and numbered when they repeat.

:class:`Projection` turns history events into drplan's own run events (``step.started``,
``step.succeeded``, ``undo.succeeded``, ...) on an :class:`~drplan.engine.events.EventBus`, stamped
with the history's own times, and keeps the step records the evidence is built from. Live progress,
the journal and ``--events`` are the bus's subscribers, exactly as in a local run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from drplan.actions.base import set_recovery_point
from drplan.engine.events import EventBus
from drplan.engine.prepare import Prepared
from drplan.engine.records import RunOutcome, StepRecord
from drplan.errors import UsageError
from drplan.model import Mode
from drplan.stepfunctions.approval import REJECTED
from drplan.stepfunctions.asl import TIMEOUT
from drplan.stepfunctions.builder import ROLE_PREFIX
from drplan.stepfunctions.tasks import POINT_IN_TIME, STEP_FAILED
from drplan.stepfunctions.translations import TRANSLATIONS

#: How an execution can end, and what drplan calls it.
ENDINGS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}

_SHA = re.compile(r"plan sha256 ([0-9a-f]{64})")
_REPEAT = re.compile(r" #\d+$")


class NotDrplanMachine(UsageError):
    """The execution's state machine was not exported by this drplan (no ``drplan:`` comments)."""


@dataclass(frozen=True)
class StateRole:
    kind: str  # step, attempt, record, undo, undone, kept, cleanup-stopped, point, approval
    key: str | None
    slot: tuple[str, ...] = ()  # where the state writes its record: ("s", sid) or ("u", sid)
    field: str | None = None  # point: the chosen item's field that identifies the recovery point


@dataclass(frozen=True)
class Machine:
    """What an exported definition says about itself."""

    mode: Mode
    plan: str
    sha256: str | None
    roles: Mapping[str, StateRole]
    owner: Mapping[str, str]  # state name -> the step whose attempts it is part of (progress notes)


def read_machine(definition: str | Mapping[str, Any]) -> Machine:
    doc = json.loads(definition) if isinstance(definition, str) else definition
    states = doc.get("States", {})
    first = states.get(doc.get("StartAt", ""), {})
    run = first.get("Parameters", {}).get("run", {}) if isinstance(first, Mapping) else {}
    roles: dict[str, StateRole] = {}
    owner: dict[str, str] = {}
    _walk(states, None, roles, owner)
    # A plan split into parts: its steps' states are in the parts' machines (:func:`with_parts`).
    if run.get("mode") not in ("recover", "drill") or not any(
        r.kind in ("step", "part") for r in roles.values()
    ):
        raise NotDrplanMachine(
            "this state machine was not exported by drplan export stepfunctions (or by an older drplan: "
            "its states carry no drplan: comments)",
            hint="export the plan again and deploy it (drplan deploy)",
        )
    sha = _SHA.search(str(doc.get("Comment", "")))
    return Machine(run["mode"], str(run.get("plan")), sha[1] if sha else None, roles, owner)


def with_parts(machine: Machine, definitions: Mapping[str, str | Mapping[str, Any]]) -> Machine:
    """``machine`` (the main state machine's) with the states of its parts' machines (the
    definitions, by any name: a part's, or the child execution's that ran it), when the plan runs
    as child executions (:mod:`drplan.stepfunctions.parts`): a step's states are in its part's
    machine, under the same comments."""
    roles = dict(machine.roles)
    owner = dict(machine.owner)
    for definition in definitions.values():
        doc = json.loads(definition) if isinstance(definition, str) else definition
        _walk(doc.get("States", {}), None, roles, owner)
    return Machine(machine.mode, machine.plan, machine.sha256, roles, owner)


def part_names(machine: Machine) -> list[str]:
    """The parts the main state machine starts (``part-1`` ...), when the plan runs as child
    executions: the states marked ``drplan:part part-N PHASE``."""
    return sorted(
        {str(r.key) for r in machine.roles.values() if r.kind == "part" and r.key}, key=_part_number
    )


def _part_number(name: str) -> int:
    return int(name.rpartition("-")[2])


def read_run_machine(sfn: Any, definition: str, state_machine_arn: str) -> Machine:
    """The machine of an execution of ``state_machine_arn`` (``definition``, its own), with its
    parts' machines (``<state machine ARN>-part-N``, described) when it has any."""
    machine = read_machine(definition)
    parts = part_names(machine)
    if not parts:
        return machine
    return with_parts(
        machine,
        {
            p: sfn.describe_state_machine(stateMachineArn=f"{state_machine_arn}-{p}")["definition"]
            for p in parts
        },
    )


def child_executions(events: list[Mapping[str, Any]]) -> list[str]:
    """The executions the main execution started (``startExecution.sync:2`` tasks), in the order it
    started them: their ARNs, from the ``TaskSubmitted`` events."""
    found: list[str] = []
    for event in events:
        details = event.get("taskSubmittedEventDetails")
        if not isinstance(details, Mapping) or not str(details.get("resource", "")).startswith(
            "startExecution"
        ):
            continue
        arn = _json(details.get("output"))
        arn = arn.get("ExecutionArn") if isinstance(arn, Mapping) else None
        if isinstance(arn, str) and arn not in found:
            found.append(arn)
    return found


def most_at_once(
    definition: str | Mapping[str, Any], history: list[dict[str, Any]], keys: set[str] | None = None
) -> int:
    """The most steps (of ``keys``, default all) running at once in an execution's history, read as
    the follower reads a step's life: from where its ``drplan:step`` state is entered to where its
    record is written (``drplan:record``). What the semaphores' tests and benchmark measure."""
    roles = read_machine(definition).roles
    running: set[str] = set()
    most = 0
    for event in sorted(history, key=lambda e: int(e["id"])):
        entered = event.get("stateEnteredEventDetails")
        role = roles.get(entered["name"]) if entered else None
        if role is None or role.key is None or (keys is not None and role.key not in keys):
            continue
        if role.kind == "step":
            running.add(role.key)
        elif role.kind == "record":
            running.discard(role.key)
        most = max(most, len(running))
    return most


def _walk(
    states: Mapping[str, Any], step: str | None, roles: dict[str, StateRole], owner: dict[str, str]
) -> None:
    for name, state in states.items():
        comment = str(state.get("Comment", ""))
        role = None
        if comment.startswith(ROLE_PREFIX):
            kind, _, rest = comment[len(ROLE_PREFIX) :].partition(" ")
            key, _, extra = rest.partition(" ")
            path = state.get("ResultPath")
            slot = tuple(path[2:].split(".")) if isinstance(path, str) and path.startswith("$.") else ()
            role = roles[name] = StateRole(kind, key or None, slot, extra or None)
        if step is not None:
            owner[name] = step
        branches = state.get("Branches", [])
        for i, branch in enumerate(branches):
            # Only the attempts (the first branch) are the step's work; the second is its timer.
            inner = role.key if role is not None and role.kind == "step" and i == 0 else step
            if role is not None and role.kind == "undo":
                inner = None
            _walk(branch.get("States", {}), inner, roles, owner)


def _seconds(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _moment(value: Any) -> datetime | None:
    """A timestamp as Step Functions passes it on (ISO 8601), or seconds since the epoch."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, timezone.utc)
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _dig(document: Any, slot: tuple[str, ...]) -> Any:
    for part in slot:
        if not isinstance(document, Mapping):
            return None
        document = document.get(part)
    return document


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def step_error(error: Any, cause: Any) -> str:
    """The failure as the local engine words it: drplan's own errors carry the message in the cause
    (``table x has no available backups``, ``timed out after 20m``); AWS's keep their name."""
    if error in (STEP_FAILED, TIMEOUT, REJECTED) and cause:
        return str(cause)
    return f"{error}: {cause}" if cause else str(error or "failed")


@dataclass
class Ending:
    status: str  # SUCCEEDED, FAILED, ABORTED, TIMED_OUT
    time: float
    error: str | None = None
    cause: str | None = None


class HistoryClock:
    """The bus's clock: the time of the history event being projected, not the follower's."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Projection:
    """History events -> drplan run events and step records. Feed events in id order; an event
    already seen (id not above :attr:`last_id`) is ignored."""

    machine: Machine
    prepared: Prepared
    bus: EventBus
    clock: HistoryClock
    header: Mapping[str, Any]
    region: str | None = None
    records: dict[str, StepRecord] = field(default_factory=dict)
    started: float | None = None
    ending: Ending | None = None
    last_id: int = 0
    cleanup_failed: list[str] = field(default_factory=list)
    cleanup_kept: bool = False
    cleanup_stopped: str | None = None
    #: The last event read of each child execution (a plan split into parts), by execution ARN.
    child_last: dict[str, int] = field(default_factory=dict)
    #: The tries of each check in its current attempt (``try N: ...`` notes, as locally).
    tries: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.records = {key: StepRecord(key) for key in self.prepared.steps}

    def feed(self, event: Mapping[str, Any], child: str | None = None) -> None:
        """Project one event of the main execution's history, or (``child``: its ARN) of a child
        execution's: a child's start and end are not the run's."""
        number = int(event["id"])
        if child is not None:
            if number <= self.child_last.get(child, 0):
                return
            self.child_last[child] = number
        elif number <= self.last_id:
            return
        else:
            self.last_id = number
        when = _seconds(event["timestamp"])
        self.clock.now = when
        kind = str(event["type"])
        if child is not None and kind.startswith("Execution"):
            return
        if kind == "ExecutionStarted":
            self._started(when)
        elif kind in ENDINGS:
            details: Mapping[str, Any] = next(
                (v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, Mapping)), {}
            )
            self.ending = Ending(ENDINGS[kind], when, details.get("error"), details.get("cause"))
        elif kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails", {})
            self._entered(kind, str(details.get("name", "")), details.get("input"))
        elif kind.endswith("StateExited"):
            details = event.get("stateExitedEventDetails", {})
            self._exited(str(details.get("name", "")), details.get("output"))

    def end(self, status: str, when: Any, error: str | None = None, cause: str | None = None) -> None:
        """The execution ended without its ending event in the history (its status says so)."""
        self.ending = Ending(status, _seconds(when), error, cause)
        self.clock.now = self.ending.time

    def _started(self, when: float) -> None:
        self.started = when
        self.bus.emit("run.started", **self.header)
        for key, reason in self.prepared.skipped.items():
            self.bus.emit("step.skipped", key, reason=reason)

    def _entered(self, kind: str, name: str, text: Any) -> None:
        role = self.machine.roles.get(name)
        if role is None:
            owner = self.machine.owner.get(name)
            rec = self.records.get(owner) if owner else None
            if (
                rec is not None
                and rec.status == "running"
                and kind in ("TaskStateEntered", "WaitStateEntered")
            ):
                assert owner is not None
                note = _REPEAT.sub("", name).removeprefix(f"{owner} ")
                if note not in rec.notes:  # a polling loop says what it does once, not at every poll
                    rec.notes.append(note)
                    self.bus.emit("step.progress", owner, note=note)
            return
        rec = self.records.get(role.key) if role.key else None
        if role.kind == "step" and rec is not None:
            rec.status = "running"
            rec.started = rec.started or self.clock.now
            self.bus.emit("step.started", role.key, attempt=1, uses=self.prepared.steps[rec.key].step.uses)
        elif role.kind == "attempt" and rec is not None:
            rec.attempts += 1
            self.tries[rec.key] = 0
            if rec.attempts > 1:
                last = _dig(_json(text), ("w", "err")) or {}
                rec.error = step_error(last.get("Error"), last.get("Cause"))
                self.bus.emit("step.retrying", role.key, attempt=rec.attempts, error=rec.error)
        elif role.kind == "undo" and rec is not None:
            why = "drill cleanup" if self.machine.mode == "drill" else "rollback"
            self.bus.emit("undo.started", role.key, reason=why)
        elif role.kind == "approval" and rec is not None:
            # The approval's task waits for its token: say who must do what, and how.
            note = f"waiting for approval: drplan approve {self.bus.run_id} {role.key}"
            rec.notes.append(note)
            self.bus.emit("step.progress", role.key, note=note)
        elif role.kind == "try" and rec is not None:
            self._tried(rec, _dig(_json(text), ("w", "chk", "r")))
        elif role.kind == "point" and rec is not None and role.field:
            self._point(rec, _dig(_json(text), ("w", "best")), role.field)
        elif role.kind == "kept":
            self.cleanup_kept = True

    def _tried(self, rec: StepRecord, answer: Any) -> None:
        """A check's try, as the checks function answered it: a failed one is a note, ``try N:
        what it saw``, as the local check says it."""
        if not isinstance(answer, Mapping) or answer.get("ok") or answer.get("refused"):
            return
        self.tries[rec.key] = self.tries.get(rec.key, 0) + 1
        self.bus.emit("step.progress", rec.key, note=f"try {self.tries[rec.key]}: {answer.get('seen')}")

    def _point(self, rec: StepRecord, best: Any, field: str) -> None:
        """The recovery point the step chose (a backup or snapshot, newest or named, or a point in
        time): its id and creation time, where the local action records them (what the evidence's
        RPO is measured from). A DB snapshot described by name carries its own times: a copy's
        original time first, as the local action judges it."""
        if not isinstance(best, Mapping) or not isinstance(best.get("v"), Mapping):
            return
        item = best["v"]
        created = _moment(best.get("t"))
        for name in ("OriginalSnapshotCreateTime", "SnapshotCreateTime"):
            if created is None:
                created = _moment(item.get(name))
        if field == POINT_IN_TIME:  # named as the local action names it: SOURCE@ISO-TIME
            identifier = (
                f"{item.get('source')}@{created.isoformat()}" if created and item.get("source") else None
            )
        else:
            identifier = item.get(field)
        if created is not None and identifier:
            set_recovery_point(rec.handle, str(identifier), created)
            self.bus.emit(
                "step.progress", rec.key, note=f"recovery point {identifier} of {created.isoformat()}"
            )

    def _exited(self, name: str, text: Any) -> None:
        role = self.machine.roles.get(name)
        if role is not None and role.kind == "approval" and role.key in self.records:
            answer = _dig(_json(text), ("w", "answer"))
            who = answer.get("approved_by") if isinstance(answer, Mapping) else None
            self.bus.emit("step.progress", role.key, note=f"approved by {who or 'an unnamed approver'}")
            return
        if role is None or role.key is None or role.key not in self.records:
            if role is not None and role.kind == "cleanup-stopped":
                why = _dig(_json(text), ("u", "incomplete")) or {}
                self.cleanup_stopped = str(why.get("Cause") or why.get("Error") or "cleanup stopped")
            return
        rec = self.records[role.key]
        value = _dig(_json(text), role.slot)
        if not isinstance(value, Mapping):
            return
        if role.kind == "record":
            self._record(rec, value)
        elif role.kind == "undone":
            self._undone(rec, value)

    def _record(self, rec: StepRecord, value: Mapping[str, Any]) -> None:
        key, status = rec.key, value.get("status")
        if status == "succeeded":
            rec.finished = self.clock.now
            rec.status = "succeeded"
            rec.error = None
            rec.outputs = dict(value.get("out") or {})
            step = self.prepared.steps[key]
            translation = TRANSLATIONS.get(step.step.uses)
            if translation is not None:
                # Where the local engine records them: the step's own Region and role, if it has
                # them (cleanup looks them up there), else the machine's.
                made = translation.created(
                    step.params, rec.outputs, self.machine.mode, step.step.region or self.region
                )
                role = step.step.role_arn
                rec.resources = [replace(r, role_arn=r.role_arn or role) for r in made] if role else made
            for resource in rec.resources:
                self.bus.emit("step.resource", key, resource=resource.to_json())
            self.bus.emit(
                "step.succeeded", key, duration=rec.duration, outputs=rec.outputs, attempts=rec.attempts
            )
        elif status == "failed":
            rec.finished = self.clock.now
            rec.status = "failed"
            rec.error = step_error(value.get("error"), value.get("cause"))
            self.bus.emit("step.failed", key, error=rec.error, attempts=rec.attempts, duration=rec.duration)
        elif status == "skipped":
            rec.status = "skipped"
            rec.reason = str(value.get("reason") or "a step it waits for did not succeed")
            self.bus.emit("step.skipped", key, reason=rec.reason)

    def _undone(self, rec: StepRecord, value: Mapping[str, Any]) -> None:
        status = value.get("status")
        if status == "removed":
            rec.undone, rec.undone_at = True, self.clock.now
            self.bus.emit("undo.succeeded", rec.key, resources=[r.to_json() for r in rec.resources] or None)
        elif status == "failed":
            self.cleanup_failed.append(rec.key)
            error = step_error(value.get("error"), value.get("cause"))
            self.bus.emit("undo.failed", rec.key, error=error)

    def outcome(self) -> RunOutcome:
        """The run's outcome once the execution ended: steps it never reached did not start (or, when
        it was stopped, were interrupted)."""
        assert self.ending is not None, "the execution has not ended"
        stopped = self.ending.status in ("ABORTED", "TIMED_OUT")
        why = {
            "ABORTED": "the execution was stopped (StopExecution)",
            "TIMED_OUT": "the execution timed out",
        }.get(self.ending.status)
        for rec in self.records.values():
            if rec.status == "running":
                rec.status = "skipped" if stopped else "failed"
                rec.finished = self.ending.time
                rec.reason = why if stopped else None
                rec.error = None if stopped else step_error(self.ending.error, self.ending.cause)
            elif rec.status == "pending":
                rec.status = "not_started"
                rec.reason = why or f"the execution ended ({self.ending.error or self.ending.status})"
        started = self.started if self.started is not None else self.ending.time
        return RunOutcome(self.records, started, self.ending.time, interrupted=stopped, stop_reason=why)
