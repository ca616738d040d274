"""Events: every state change of a run, in one stream.

The runner publishes; subscribers turn events into terminal progress, the run journal, an
``--events`` JSON-lines file and, at the end, the evidence. An event is a flat, JSON-able record,
so each consumer needs nothing but this module.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

#: The kinds of events, for consumers and docs (docs/cli.md lists them).
KINDS = (
    "run.started",
    "run.finished",
    "run.interrupted",
    "preflight.result",
    "step.started",
    "step.progress",
    "step.throttled",
    "step.retrying",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "step.resource",  # a step created something (what cleanup will delete)
    "step.handle",  # a poll changed the step's handle (written version ids, attachments): journaled again
    "undo.started",
    "undo.succeeded",
    "undo.failed",
)


@dataclass(frozen=True)
class Event:
    kind: str
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


class EventBus:
    """Publish events to subscribers, one at a time (subscribers need no locking of their own)."""

    def __init__(self, run_id: str, clock: Callable[[], float] = time.time) -> None:
        self.run_id = run_id
        self.clock = clock
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, kind: str, step: str | None = None, /, **data: Any) -> Event:
        event = Event(kind, self.run_id, self.clock(), step, {k: v for k, v in data.items() if v is not None})
        with self._lock:
            for subscriber in self._subscribers:
                subscriber(event)
        return event


class JsonLinesWriter:
    """``--events FILE``: one JSON object per line, flushed as it happens."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.stream.write(json.dumps(event.to_json(), sort_keys=True, default=str) + "\n")
        self.stream.flush()
