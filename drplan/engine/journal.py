"""The run journal: every event of a run, appended and flushed to ``<state>/runs/<id>/journal.jsonl``.

The journal is the run's memory. It holds the AWS job ids, client tokens and every resource a step
created, as they happen, so that ``drplan cleanup RUN_ID``, run history and a later crash-resume
can work from it without re-running anything. Each line is fsync'ed: a process killed mid-run
loses at most the line being written, and a torn last line is ignored when reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drplan.engine.events import Event
from drplan.errors import UsageError
from drplan.resources import Resource

DEFAULT_STATE_DIR = ".drplan"


def run_dir(state_dir: str | Path, run_id: str) -> Path:
    return Path(state_dir) / "runs" / run_id


class Journal:
    """An event subscriber that appends to the journal file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        self._file.write(json.dumps(event.to_json(), sort_keys=True, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_events(path: Path) -> Iterator[Event]:
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            try:
                yield Event.from_json(json.loads(line))
            except (json.JSONDecodeError, KeyError, ValueError):
                continue  # a torn last line after a crash


@dataclass
class JournalState:
    """What a journal says about a run: its header, step handles and what is left to clean up."""

    run_id: str
    header: dict[str, Any] = field(default_factory=dict)
    handles: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: list[tuple[str, Resource]] = field(default_factory=list)  # (step, resource), in creation order
    removed: set[tuple[str, str]] = field(default_factory=set)  # (kind, id) verified gone
    finished: dict[str, Any] | None = None

    def remaining(self) -> list[tuple[str, Resource]]:
        """Resources created and not verified deleted, newest first (reverse creation order)."""
        return [(s, r) for s, r in reversed(self.created) if (r.kind, r.id) not in self.removed]


def load_journal(state_dir: str | Path, run_id: str) -> JournalState:
    path = run_dir(state_dir, run_id) / "journal.jsonl"
    if not path.is_file():
        runs = sorted(
            (p for p in (Path(state_dir) / "runs").glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime
        )
        hint = (
            f"latest runs: {', '.join(p.name for p in runs[-5:])}"
            if runs
            else f"no runs under {state_dir}/runs"
        )
        raise UsageError(f"no journal for run {run_id!r} ({path})", hint=hint)
    state = JournalState(run_id)
    for event in read_events(path):
        if event.kind == "run.started":
            state.header = dict(event.data)
        elif event.kind in ("step.started", "step.handle") and event.step:
            state.handles[event.step] = dict(event.data.get("handle", {}))
        elif event.kind == "step.resource" and event.step:
            resource = Resource.from_json(event.data["resource"])
            same = [
                index
                for index, (_, seen) in enumerate(state.created)
                if (seen.kind, seen.id) == (resource.kind, resource.id)
            ]
            if same:
                state.created[same[0]] = (event.step, resource)  # the same resource, better described
            else:
                state.created.append((event.step, resource))
        elif event.kind == "undo.succeeded":
            for res in event.data.get("resources", []):
                state.removed.add((res["kind"], res["id"]))
        elif event.kind == "run.finished":
            state.finished = dict(event.data)
    return state
