"""What a run knows about each step while it runs, and how the run went: shared by the scheduler
loop, the step workers and undo."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from drplan.actions.base import DIRECT, Approvals, Handle, Network, handle_resources
from drplan.engine.events import EventBus
from drplan.model import Fault
from drplan.resources import Resource

Status = Literal[
    "pending", "running", "succeeded", "unverified", "failed", "skipped", "interrupted", "not_started"
]
#: Statuses after which a step counts as done for the steps that wait on it.
DONE: frozenset[Status] = frozenset({"succeeded", "unverified"})


@dataclass(frozen=True)
class RunOptions:
    """How a run behaves; every field has the default a real run uses."""

    fail_fast: bool = False
    poll_initial: float = 5.0  # seconds before the first poll
    poll_factor: float = 1.5
    poll_max: float = 60.0  # never wait longer than this between polls
    backoff_base: float = 1.0  # throttling: first wait; doubles each time, with full jitter
    backoff_max: float = 30.0
    retry_delay: float = 10.0  # before a step's own retry (also doubled, jittered)
    #: How long undo, rollback and drill cleanup wait for deletions to be verified, in all.
    undo_timeout: float = 1800.0
    approvals: Approvals = field(default_factory=Approvals)
    allow_commands: bool = False
    plan_dir: Path = Path(".")
    network: Network = DIRECT
    max_wait: float | None = None  # cap on `wait` steps (an emulated AWS has nothing to wait for)
    faults: Mapping[str, Fault] = field(default_factory=dict)  # drills only: step -> fault to inject
    resumed: bool = False  # carrying on a run whose process died (a `crash` fault is not repeated)


@dataclass
class StepRecord:
    key: str
    status: Status = "pending"
    started: float | None = None  # wall clock (time.time())
    finished: float | None = None
    attempts: int = 0
    handle: Handle = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    resources: list[Resource] = field(default_factory=list)
    error: str | None = None
    reason: str | None = None  # why skipped / not started / not verified
    notes: list[str] = field(default_factory=list)
    undone: bool = False
    undone_at: float | None = None  # when the undo was verified (evidence's cleanup proof)
    resumed: bool = False  # carried over from an earlier process of the same run (drplan resume)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


@dataclass
class RunOutcome:
    records: dict[str, StepRecord]
    started: float
    finished: float
    interrupted: bool = False
    stop_reason: str | None = None  # the signal, or the failure, that stopped the run

    @property
    def failed(self) -> list[str]:
        return [k for k, r in self.records.items() if r.status == "failed"]

    @property
    def unverified(self) -> list[str]:
        return [k for k, r in self.records.items() if r.status == "unverified"]

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.status in DONE for r in self.records.values())


class Records:
    """The step records of one run, shared between threads: one lock guards changes that span
    several records (outputs for references) and resource bookkeeping."""

    def __init__(self, keys: list[str], bus: EventBus, roles: Mapping[str, str] | None = None) -> None:
        self.by_key: dict[str, StepRecord] = {k: StepRecord(k) for k in keys}
        self.bus = bus
        #: step -> the role it runs with (its ``role_arn``): what it creates is journaled with it.
        self.roles: Mapping[str, str] = roles or {}
        self._lock = threading.Lock()
        self._outputs: dict[str, dict[str, Any]] = {}  # of succeeded steps, kept as they succeed

    def __getitem__(self, key: str) -> StepRecord:
        return self.by_key[key]

    def outputs(self) -> Mapping[str, Mapping[str, Any]]:
        """Outputs of every step that succeeded, for resolving references. A live view (references
        are looked up one by one; a step's entry appears whole when it succeeds): copying every
        output for every step that starts cost a third of the CPU of a 1,000-service run."""
        return self._outputs

    def succeeded(self, key: str, outputs: Mapping[str, Any]) -> None:
        """Record a step's success and its outputs (what later references resolve to)."""
        rec = self.by_key[key]
        rec.outputs = dict(outputs)
        rec.status = "succeeded"
        self._outputs[key] = dict(outputs)

    def note_resources(self, key: str, handle: Handle) -> None:
        """Journal resources the handle lists that are new, or known but now better described
        (an ARN learnt when the job completed). Also what actions record through ``ctx.record``
        the moment a create call returns."""
        for resource in handle_resources(handle):
            self.note_resource(key, resource)

    def note_resource(self, key: str, resource: Resource) -> None:
        rec = self.by_key[key]
        if resource.role_arn is None and key in self.roles:
            resource = replace(resource, role_arn=self.roles[key])
        with self._lock:
            index = next((i for i, r in enumerate(rec.resources) if r.key == resource.key), None)
            if index is None:
                rec.resources.append(resource)
            elif rec.resources[index] != resource:
                rec.resources[index] = resource
            else:
                return
        self.bus.emit("step.resource", key, resource=resource.to_json())


Clock = Callable[[], float]


def plain(value: Any) -> Any:
    """Handles must be JSON-able for the journal; datetimes become ISO strings."""
    from datetime import datetime

    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
