"""Live progress on the terminal, and the summary table at the end of a run.

On a terminal a rich live table shows every step and what it is doing; elsewhere (CI logs, pipes)
each event becomes one plain, greppable line. Both are event subscribers.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import IO, Any

from drplan.durations import humanize
from drplan.engine.events import Event

_SYMBOL = {
    "step.started": "▶",
    "step.succeeded": "✔",
    "step.failed": "✘",
    "step.skipped": "-",
    "step.retrying": "↻",
    "step.throttled": "…",
    "step.progress": "·",
    "step.resource": "+",
    "undo.started": "⟲",
    "undo.succeeded": "✔",
    "undo.failed": "✘",
    "run.started": "■",
    "run.resumed": "■",
    "run.finished": "■",
    "run.interrupted": "!",
    "preflight.result": "?",
    "step.unverified": "~",
    "step.intent": " ",
    "run.problem": "!",
}


def event_line(event: Event) -> str:
    """One line for one event, e.g. ``07:12:03 ✔ orders-db.restore succeeded in 25m 3s``."""
    when = datetime.fromtimestamp(event.time).strftime("%H:%M:%S")
    d = event.data
    step = event.step or ""
    text = {
        "run.started": lambda: (
            f"{d.get('mode')} of plan {d.get('plan')} started (run {event.run_id}, "
            f"account {d.get('account')}, region {d.get('region')})"
        ),
        "run.finished": lambda: f"run {event.run_id} {d.get('status')} (exit {d.get('exit_code')})",
        "run.resumed": lambda: (
            f"{d.get('mode')} of plan {d.get('plan')} (run {event.run_id}, started {d.get('started')}) "
            f"resumed by {d.get('resumed_by')}"
        ),
        "run.interrupted": lambda: (
            f"{d.get('signal')}: "
            + (
                "stopping: no new steps, running steps stop now, then cleanup (again to stop waiting for it)"
                if d.get("stage") == "soft"
                else "no more waiting for deletions; what remains is listed (drplan cleanup RUN_ID)"
            )
        ),
        "run.problem": lambda: f"problem: {d.get('problem')}",
        "preflight.result": lambda: f"{step} preflight {d.get('status')}: {d.get('message')}",
        "step.unverified": lambda: f"{step} NOT VERIFIABLE here: {d.get('reason')}",
        "step.intent": lambda: (
            f"{step} about to create " + ", ".join(f"{t['kind']} {t['name']}" for t in d.get("targets", []))
        ),
        "step.started": lambda: (
            f"{step} started" + (f" (attempt {d['attempt']})" if d.get("attempt", 1) > 1 else "")
        ),
        "step.succeeded": lambda: f"{step} succeeded in {humanize(d.get('duration') or 0)}",
        "step.failed": lambda: f"{step} FAILED: {d.get('error')}",
        "step.skipped": lambda: f"{step} skipped: {d.get('reason')}",
        "step.retrying": lambda: f"{step} retrying (attempt {d.get('attempt')}) after: {d.get('error')}",
        "step.throttled": lambda: f"{step} throttled by AWS, waiting {d.get('wait')}s ({d.get('error')})",
        "step.progress": lambda: f"{step} {d.get('note')}",
        "step.resource": lambda: f"{step} created {d['resource']['kind']} {d['resource']['id']}",
        "undo.started": lambda: f"{step} undo ({d.get('reason')})",
        "undo.succeeded": lambda: f"{step} undone" + _resources(d.get("resources")),
        "undo.failed": lambda: f"{step} UNDO FAILED: {d.get('error')}" + _resources(d.get("resources")),
    }.get(event.kind, lambda: f"{event.kind} {step} {d}")()
    return f"{when} {_SYMBOL.get(event.kind, ' ')} {text}"


def _resources(resources: Any) -> str:
    if not resources:
        return ""
    return ": " + ", ".join(f"{r['kind']} {r['id']}" for r in resources)


class PlainProgress:
    """One line per event on a stream (stderr by default)."""

    def __init__(self, stream: IO[str] | None = None, *, quiet_progress: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet_progress = quiet_progress

    def __call__(self, event: Event) -> None:
        if (
            event.kind in ("step.handle", "step.intent", "step.memo")
            or (event.kind == "preflight.result" and event.data.get("status") == "ok")
            or (self.quiet_progress and event.kind in ("step.progress", "step.throttled"))
        ):
            return
        self.stream.write(event_line(event) + "\n")
        self.stream.flush()


class LiveProgress:
    """A rich live table of steps on a terminal; the last events scroll above it."""

    def __init__(self, steps: list[str], stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream or sys.stderr)
        self.rows: dict[str, list[str]] = {key: ["pending", "", ""] for key in steps}
        self.started: dict[str, float] = {}
        self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
        self.lock = threading.Lock()
        self.live.start()

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("step")
        table.add_column("status")
        table.add_column("time", justify="right")
        table.add_column("")
        colors = {
            "succeeded": "green",
            "failed": "red",
            "running": "cyan",
            "skipped": "dim",
            "undone": "magenta",
        }
        for key, (status, _, note) in self.rows.items():
            elapsed = (
                humanize(time.time() - self.started[key])
                if key in self.started and status == "running"
                else self.rows[key][1]
            )
            table.add_row(key, f"[{colors.get(status, 'white')}]{status}[/]", elapsed, note[:80])
        return table

    def __call__(self, event: Event) -> None:
        with self.lock:
            key = event.step
            if key is not None and key not in self.rows:
                self.rows[key] = ["pending", "", ""]
            if event.kind == "step.started" and key:
                self.started.setdefault(key, event.time)
                self.rows[key][0] = "running"
            elif event.kind == "step.progress" and key:
                self.rows[key][2] = str(event.data.get("note", ""))
            elif event.kind in ("step.succeeded", "step.failed", "step.skipped", "step.unverified") and key:
                self.rows[key][0] = event.kind.split(".")[1]
                duration = event.data.get("duration")
                self.rows[key][1] = humanize(duration) if duration else ""
                self.rows[key][2] = str(event.data.get("error") or event.data.get("reason") or "")
            elif event.kind == "undo.succeeded" and key:
                self.rows[key][0] = "undone"
            elif event.kind in (
                "run.started",
                "run.interrupted",
                "run.problem",
                "undo.failed",
                "step.throttled",
            ):
                self.live.console.print(event_line(event))
            self.live.update(self._table())
            if event.kind == "run.finished":
                self.live.stop()

    def pause(self) -> None:
        self.live.stop()

    def close(self) -> None:
        """Stop redrawing (the run is over, or the terminal went away)."""
        with contextlib.suppress(Exception):  # a closed terminal: nothing left to draw on
            self.live.stop()

    def resume(self) -> None:
        self.live.start()


def summary_table(records: Mapping[str, Any], services: Mapping[str, Any], *, started: float) -> str:
    """Per-step and per-service times, as fixed-width text."""
    lines = [f"{'step':40} {'status':12} {'attempts':>8} {'time':>10}"]
    for key, rec in records.items():
        took = humanize(rec.duration) if rec.duration is not None else ""
        lines.append(f"{key:40} {rec.status:12} {rec.attempts:>8} {took:>10}")
    if services:
        lines += ["", f"{'service':40} {'status':12} {'back after':>19}"]
        for sid, info in services.items():
            back = humanize(info["back_after"]) if info.get("back_after") is not None else "-"
            lines.append(f"{sid:40} {info['status']:12} {back:>19}")
    return "\n".join(lines) + "\n"
