"""Run history: what ran, when, by whom, and how it went, read back from the runs' journals and
evidence (``drplan runs``, ``drplan show``), and estimates proposed from measured durations
(``drplan calibrate``).

Nothing here is stored twice: a run's summary is derived from its journal (header, steps,
``run.finished``) and, for drills, its ``report.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from drplan.engine.journal import JOURNAL, JournalState, journal_state


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    plan: str | None
    mode: str | None
    started: str | None
    user: str | None
    plan_sha256: str | None
    git_commit: str | None
    status: str  # succeeded, failed, interrupted, unfinished (no run.finished: the process died)
    passed: bool | None
    exit_code: int | None
    sandbox: bool
    rto_seconds: float | None  # measured, plan level (drills)
    rpo_seconds: float | None
    damaged: bool
    report: Path | None
    step_durations: dict[str, float] = field(default_factory=dict)  # steps that succeeded

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "step_durations"}
        out["report"] = str(self.report) if self.report else None
        return out


def summarize(state: JournalState, directory: Path) -> RunSummary:
    header, finished = state.header, state.finished
    report_path = _report_of(directory)
    report: dict[str, Any] = {}
    if report_path is not None:
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = {}
    plan_objectives = report.get("objectives", {}).get("plan", {})
    durations = {}
    for event_step, seconds in _succeeded(state):
        durations[event_step] = seconds
    return RunSummary(
        run_id=state.run_id,
        plan=header.get("plan"),
        mode=header.get("mode"),
        started=header.get("started"),
        user=header.get("user"),
        plan_sha256=header.get("plan_sha256"),
        git_commit=header.get("git_commit"),
        status=str(finished.get("status")) if finished else "unfinished",
        passed=finished.get("passed") if finished else None,
        exit_code=finished.get("exit_code") if finished else None,
        sandbox=bool(header.get("sandbox")),
        rto_seconds=plan_objectives.get("rto", {}).get("measured_seconds"),
        rpo_seconds=plan_objectives.get("rpo", {}).get("measured_seconds"),
        damaged=bool(state.damage),
        report=report_path,
        step_durations=durations,
    )


def _report_of(directory: Path) -> Path | None:
    default = directory / "report" / "report.json"
    return default if default.is_file() else None


def _succeeded(state: JournalState) -> Iterable[tuple[str, float]]:
    return ((k, v) for k, v in state.durations.items() if state.status.get(k) == "succeeded")


def list_runs(state_dir: str | Path, *, plan: str | None = None) -> list[RunSummary]:
    """Every run under ``state_dir``, oldest first (optionally of one plan)."""
    out = []
    for journal in (Path(state_dir) / "runs").glob(f"*/{JOURNAL}"):
        try:
            state = journal_state(journal.parent.name, journal)
        except OSError:
            continue
        summary = summarize(state, journal.parent)
        if plan is None or summary.plan == plan:
            out.append(summary)
    return sorted(out, key=lambda s: (s.started or "", s.run_id))


def recent_service_rtos(
    runs: list[RunSummary], *, sandbox: bool, limit: int = 5
) -> dict[str, list[dict[str, Any]]]:
    """Each service's measured RTO in the last ``limit`` drills (of the same kind: sandbox drills
    next to sandbox drills), oldest first, read from their reports."""
    out: dict[str, list[dict[str, Any]]] = {}
    drills = [r for r in runs if r.mode == "drill" and r.sandbox == sandbox and r.report is not None]
    for run in drills[-limit:]:
        assert run.report is not None
        try:
            report = json.loads(run.report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for service in report.get("objectives", {}).get("services", []):
            measured = service.get("rto", {}).get("measured_seconds")
            if measured is not None:
                out.setdefault(service["id"], []).append(
                    {"run_id": run.run_id, "started": run.started, "rto_seconds": measured}
                )
    return out


# --- calibration ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    step: str
    samples: int
    current: timedelta | None  # the plan's estimate (None: the action's default)
    proposed: timedelta  # the chosen percentile of the measured durations, rounded up


def calibrate(
    runs: Iterable[RunSummary], steps: Iterable[tuple[str, timedelta | None]], *, percentile: float = 90
) -> list[Proposal]:
    """Estimates for ``steps`` from their durations measured in real drills and recoveries (sandbox
    runs measure the emulator, not AWS, and are left out): the ``percentile`` of the samples,
    rounded up to the minute (to the second under two minutes)."""
    samples: dict[str, list[float]] = {}
    for run in runs:
        if run.sandbox:
            continue
        for key, seconds in run.step_durations.items():
            samples.setdefault(key, []).append(seconds)
    out = []
    for key, current in steps:
        measured = sorted(samples.get(key, []))
        if not measured:
            continue
        rank = max(0, math.ceil(percentile / 100 * len(measured)) - 1)
        value = measured[rank]
        rounded = math.ceil(value) if value < 120 else 60 * math.ceil(value / 60)
        out.append(Proposal(key, len(measured), current, timedelta(seconds=rounded)))
    return out
