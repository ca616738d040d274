"""Events: every state change of a run, in one stream.

The runner publishes; subscribers turn events into terminal progress, the run journal, an
``--events`` JSON-lines file and, at the end, the evidence. An event is a flat, JSON-able record,
so each consumer needs nothing but this module.

Subscribers are isolated from the run and from each other: a subscriber that raises (a closed
stderr pipe, a full disk under the ``--events`` file) is switched off and reported once, and the
run goes on. Only a subscriber marked *essential* (the journal, without which a crashed run could
not be cleaned up or resumed) changes the run: its failure is recorded in :attr:`EventBus.failure`,
which the runner treats like an interrupt (stop starting steps, clean up, exit 3).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any, Literal

EventKind = Literal[
    "run.started",
    "run.resumed",  # drplan resume carried the run on (data: the original header, who resumed)
    "run.finished",
    "run.interrupted",
    "run.problem",  # something went wrong outside a step (a subscriber, the journal, evidence)
    "preflight.result",
    "step.intent",  # about to create resources with these names (write-ahead, before the call)
    "step.started",
    "step.progress",
    "step.throttled",
    "step.retrying",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "step.unverified",  # a check that could not be verified here (the sandbox cannot vouch for it)
    "step.resource",  # a step created something (what cleanup will delete)
    "step.handle",  # a poll changed the step's handle (written version ids, attachments): journaled again
    "step.memo",  # a step journals what it must not forget before a change (a DNS record's old value)
    "undo.started",
    "undo.succeeded",
    "undo.failed",
]

#: The kinds of events, for consumers and docs (docs/cli.md lists them).
KINDS: tuple[EventKind, ...] = EventKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Event:
    kind: str  # an EventKind; str so that journals written by other versions still read
    run_id: str
    time: float  # seconds since the epoch
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "run_id": self.run_id,
            "time": datetime.fromtimestamp(self.time, timezone.utc).isoformat(timespec="milliseconds"),
        }
        if self.step is not None:
            out["step"] = self.step
        if self.data:
            out["data"] = self.data
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        when = datetime.fromisoformat(data["time"]).timestamp()
        return cls(data["kind"], data["run_id"], when, data.get("step"), data.get("data", {}))


Subscriber = Callable[[Event], None]


@dataclass
class _Subscription:
    subscriber: Subscriber
    name: str
    essential: bool
    failed: str | None = None


class EventBus:
    """Publish events to subscribers, one event at a time (subscribers need no locking of their own).

    ``emit`` never raises because of a subscriber. The lock is re-entrant so that a subscriber that
    itself emits (or code on the same thread that emits while emitting) cannot deadlock.
    """

    def __init__(self, run_id: str, clock: Callable[[], float] = time.time) -> None:
        self.run_id = run_id
        self.clock = clock
        self._subscriptions: list[_Subscription] = []
        self._lock = threading.RLock()
        #: Set when an essential subscriber failed: "journal: [Errno 28] No space left on device".
        self.failure: str | None = None
        self.on_failure: Callable[[str], None] | None = None  # the runner's stop, told at once
        #: Applied to every event's data before any subscriber sees it: secrets never leave the bus.
        self.mask: Callable[[Any], Any] = lambda data: data

    def subscribe(self, subscriber: Subscriber, *, name: str | None = None, essential: bool = False) -> None:
        label = name or getattr(subscriber, "name", None) or type(subscriber).__name__
        self._subscriptions.append(_Subscription(subscriber, str(label), essential))

    def emit(self, kind: EventKind, step: str | None = None, /, **data: Any) -> Event:
        plain = {k: v for k, v in data.items() if v is not None}
        event = Event(kind, self.run_id, self.clock(), step, self.mask(plain))
        problems: list[str] = []
        with self._lock:
            for sub in self._subscriptions:
                if sub.failed is not None:
                    continue
                try:
                    sub.subscriber(event)
                except Exception as exc:  # isolated: a broken subscriber never stops the run
                    sub.failed = f"{type(exc).__name__}: {exc}"
                    problems.append(self._failed(sub))
            for problem in problems:  # tell the subscribers still working (the journal keeps it)
                self._tell(Event("run.problem", self.run_id, self.clock(), None, {"problem": problem}))
        return event

    def _failed(self, sub: _Subscription) -> str:
        problem = f"{sub.name} stopped working: {sub.failed}"
        if sub.essential:
            problem += "; stopping the run"
            if self.failure is None:
                self.failure = problem
                if self.on_failure is not None:
                    self.on_failure(problem)
        return problem

    def _tell(self, event: Event) -> None:
        for sub in self._subscriptions:
            if sub.failed is None:
                try:
                    sub.subscriber(event)
                except Exception as exc:
                    sub.failed = f"{type(exc).__name__}: {exc}"
                    self._failed(sub)

    def failures(self) -> list[str]:
        """Every subscriber that stopped working, with why."""
        return [f"{s.name}: {s.failed}" for s in self._subscriptions if s.failed is not None]


class JsonLinesWriter:
    """``--events FILE``: one JSON object per line, flushed as it happens."""

    name = "--events file"

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.stream.write(json.dumps(event.to_json(), sort_keys=True, default=str) + "\n")
        self.stream.flush()
