"""The run journal: every event of a run, appended and fsync'ed to ``<state>/runs/<id>/journal.jsonl``.

The journal is the run's memory. It holds what each step is *about to* create (intents: kind,
deterministic name, tags — written before the create call), the AWS job ids, client tokens and
handles, and every resource a step created, as they happen, so that ``drplan cleanup RUN_ID``,
``drplan resume RUN_ID`` and run history work from it without re-running anything.

Each line is one event with a sequence number and a CRC-32 of its content. Reading verifies both:
a line cut short by a crash, a corrupt line or a missing stretch is *reported* (``damage``), never
silently skipped, so cleanup knows it must not trust the journal alone and looks for resources by
their names and tags too.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drplan.engine.events import Event
from drplan.errors import UsageError
from drplan.resources import Resource

DEFAULT_STATE_DIR = ".drplan"
JOURNAL = "journal.jsonl"


def run_dir(state_dir: str | Path, run_id: str) -> Path:
    return Path(state_dir) / "runs" / run_id


def _checksum(record: dict[str, Any]) -> str:
    text = json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))
    return f"{zlib.crc32(text.encode('utf-8')):08x}"


def encode(event: Event, seq: int) -> str:
    """One journal line (without the newline): the event, its sequence number and checksum."""
    record = {**event.to_json(), "seq": seq}
    record["sum"] = _checksum(record)
    return json.dumps(record, sort_keys=True, default=str)


class Journal:
    """An event subscriber that appends to the journal file. Essential: if it cannot write, the
    run stops (see :class:`drplan.engine.events.EventBus`)."""

    name = "journal"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.seq = last_seq(path)
        self._file = path.open("a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        self.seq += 1
        self._file.write(encode(event, self.seq) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        with contextlib.suppress(OSError):  # fsync'ed line by line: a failing close loses nothing
            self._file.close()


def last_seq(path: Path) -> int:
    if not path.is_file():
        return 0
    last = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            last = max(last, int(json.loads(line).get("seq", 0)))
        except (ValueError, AttributeError):
            continue
    return last


@dataclass
class JournalRead:
    events: list[Event]
    damage: list[str]  # what is wrong with the file, line by line; empty when it is intact


def read_journal(path: Path) -> JournalRead:
    """Every intact event, and a description of every damaged or missing line."""
    events: list[Event] = []
    damage: list[str] = []
    expected = 1
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        damage.append(f"line {len(lines)}: cut short (no end of line): the process died while writing it")
    for number, data in enumerate(lines, start=1):
        try:
            record = json.loads(data.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError):
            if not (number == len(lines) and damage):
                damage.append(f"line {number}: not a journal record (corrupt or cut short)")
            continue
        seq, stored = record.pop("seq", None), record.pop("sum", None)
        if seq is not None or stored is not None:  # journals before checksums have neither
            if stored != _checksum({**record, "seq": seq}):
                damage.append(f"line {number}: checksum mismatch (the line was altered or corrupted)")
                continue
            if isinstance(seq, int):
                if seq > expected:
                    damage.append(f"before line {number}: records {expected}-{seq - 1} are missing")
                expected = max(expected, seq + 1)
        try:
            events.append(Event.from_json(record))
        except (KeyError, ValueError, TypeError):
            damage.append(f"line {number}: not a journal record")
    return JournalRead(events, damage)


def read_events(path: Path) -> list[Event]:
    return read_journal(path).events


@dataclass
class JournalState:
    """What a journal says about a run: its header, steps, what it created and what is left."""

    run_id: str
    path: Path | None = None
    header: dict[str, Any] = field(default_factory=dict)
    handles: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # step -> last status: started, succeeded, ...
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)  # step -> seconds, as measured
    intents: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (step, target) in order
    memos: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> what it remembered
    created: list[tuple[str, Resource]] = field(default_factory=list)  # (step, resource), creation order
    removed: set[tuple[str, str]] = field(default_factory=set)  # (kind, id) verified gone
    undone: set[str] = field(default_factory=set)  # steps whose undo was verified
    finished: dict[str, Any] | None = None
    damage: list[str] = field(default_factory=list)
    cleanup_begun: bool = False  # a drill's cleanup had started (resume finishes it, runs nothing)

    def remaining(self) -> list[tuple[str, Resource]]:
        """Resources created and not verified deleted, newest first (reverse creation order)."""
        return [(s, r) for s, r in reversed(self.created) if (r.kind, r.id) not in self.removed]

    def unmatched_intents(self) -> list[tuple[str, dict[str, Any]]]:
        """Intents of steps that recorded no resource for them: the create call may or may not have
        happened (the process died around it). Cleanup looks these up by name."""
        seen = {(step, r.kind) for step, r in self.created}
        names = {(r.kind, str(r.extra.get("name", r.id))) for _, r in self.created}
        return [
            (step, t)
            for step, t in self.intents
            if (t["kind"], t["name"]) not in names and (step, t["kind"]) not in seen
        ]

    @property
    def mode(self) -> str | None:
        mode = self.header.get("mode")
        return str(mode) if mode is not None else None

    @property
    def intact(self) -> bool:
        return not self.damage and bool(self.header)


def load_journal(state_dir: str | Path, run_id: str) -> JournalState:
    path = run_dir(state_dir, run_id) / JOURNAL
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
    return journal_state(run_id, path)


def journal_state(run_id: str, path: Path) -> JournalState:
    read = read_journal(path)
    state = JournalState(run_id, path, damage=read.damage)
    for event in read.events:
        _apply(state, event)
    if not state.header:
        state.damage.append("the run.started record is missing: the run's plan and mode are unknown")
    return state


def _apply(state: JournalState, event: Event) -> None:
    step, data = event.step, event.data
    if event.kind == "run.started":
        state.header = dict(data)
    elif event.kind == "run.resumed":
        state.header = state.header or dict(data)
        state.finished = None
    elif event.kind == "step.memo" and step and isinstance(data.get("name"), str):
        state.memos.setdefault(step, {})[data["name"]] = data.get("value")
    elif event.kind == "step.intent" and step:
        for target in data.get("targets", []):
            state.intents.append((step, dict(target)))
    elif event.kind in ("step.started", "step.handle") and step:
        state.handles[step] = dict(data.get("handle", {}))
        if event.kind == "step.started":
            state.status[step] = "started"
            state.attempts[step] = int(data.get("attempt", 1))
    elif event.kind == "step.succeeded" and step:
        state.status[step] = "succeeded"
        state.outputs[step] = dict(data.get("outputs", {}))
        if isinstance(data.get("duration"), (int, float)):
            state.durations[step] = float(data["duration"])
    elif event.kind in ("step.failed", "step.skipped", "step.unverified") and step:
        state.status[step] = event.kind.split(".", 1)[1]
    elif event.kind == "step.resource" and step:
        resource = Resource.from_json(data["resource"])
        same = [i for i, (_, seen) in enumerate(state.created) if seen.key == resource.key]
        if same:
            state.created[same[0]] = (step, resource)  # the same resource, better described
        else:
            state.created.append((step, resource))
    elif event.kind == "undo.started" and data.get("reason") == "drill cleanup":
        state.cleanup_begun = True
    elif event.kind == "undo.succeeded":
        for res in data.get("resources", []):
            state.removed.add((res["kind"], res["id"]))
        if step:
            state.undone.add(step)
    elif event.kind == "run.finished":
        state.finished = dict(data)
