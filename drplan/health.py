"""Is a plan's disaster recovery still proven? A Nagios/Icinga plugin's answer, from the run history.

``drplan check PLAN --max-age 7d`` judges the last drill of the plan (real drills by default:
sandbox drills measure the emulator, not AWS) as the monitoring plugin API asks: one line of
output with performance data, and exit 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN).

- OK: the last drill passed, left nothing behind and is younger than ``max_age``.
- WARNING: it is older than ``warn_age``; or it passed but reported problems (evidence, journal,
  outputs), or its journal is damaged; or a later drill never finished (its process died).
- CRITICAL: it failed or was interrupted; its cleanup did not remove everything; there is no
  drill at all; or none younger than ``max_age``.
- UNKNOWN: the history cannot be read (the state folder is missing or unreadable).

Everything is read from what runs already write (journals and ``report.json``): nothing is
stored for monitoring's sake.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from drplan.durations import humanize
from drplan.history import RunSummary

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


@dataclass
class CheckResult:
    """The plugin's answer: its state (the exit code), the reasons and the performance data."""

    state: int = OK
    reasons: list[tuple[int, str]] = field(default_factory=list)  # (state, text), in the order found
    info: list[str] = field(default_factory=list)  # said after the reasons (an OK line's content)
    perfdata: list[str] = field(default_factory=list)
    plan: str = ""

    def add(self, state: int, text: str) -> None:
        if _rank(state) > _rank(self.state):
            self.state = state
        self.reasons.append((state, text))

    def line(self) -> str:
        """``DRPLAN OK - webshop: ... | age=...s;...`` (the plugin API's output)."""
        # The worst reasons first: a monitoring screen shows the line's beginning.
        ordered = [t for s, t in sorted(self.reasons, key=lambda r: -_rank(r[0]))]
        text = "; ".join([*ordered, *self.info])
        head = f"DRPLAN {STATES[self.state]} - {self.plan + ': ' if self.plan else ''}{text}"
        head = head.replace("|", "/")  # a '|' would start the performance data
        return head + (" | " + " ".join(self.perfdata) if self.perfdata else "")


def _rank(state: int) -> int:
    return {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}[state]


def unknown(plan: str, text: str) -> CheckResult:
    result = CheckResult(plan=plan)
    result.add(UNKNOWN, text)
    return result


@dataclass(frozen=True)
class DrillFacts:
    """What the check needs of one drill beyond :class:`RunSummary`: from its report and journal."""

    cleanup: str | None  # complete, incomplete, skipped, not applicable (None: unknown)
    cleanup_left: list[str]  # what remains (resource ids), when the cleanup was incomplete
    problems: list[str]  # run problems (evidence, journal, outputs)
    reasons: list[str]  # why the drill failed, in the report's words
    rto_objective: float | None
    rpo_objective: float | None


def drill_facts(run: RunSummary, finished: dict[str, Any] | None) -> DrillFacts:
    """Read the drill's report (when it wrote one) and the journal's ``run.finished`` data."""
    report: dict[str, Any] = {}
    if run.report is not None:
        try:
            report = json.loads(run.report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = {}
    finished = finished or {}
    cleanup = report.get("cleanup", {})
    status = cleanup.get("status")
    if status is None and finished:
        status = (
            "incomplete"
            if finished.get("cleanup_failed")
            else "skipped"
            if finished.get("cleanup_skipped")
            else None
        )
    left = [str(r.get("id")) for r in cleanup.get("resources", []) if not r.get("deleted")]
    problems = list(report.get("run", {}).get("problems") or finished.get("problems") or [])
    plan_objectives = report.get("objectives", {}).get("plan", {})
    return DrillFacts(
        cleanup=status,
        cleanup_left=left,
        problems=[str(p) for p in problems],
        reasons=[str(r) for r in report.get("verdict", {}).get("reasons", [])],
        rto_objective=plan_objectives.get("rto", {}).get("objective_seconds"),
        rpo_objective=plan_objectives.get("rpo", {}).get("objective_seconds"),
    )


def evaluate(
    plan: str,
    runs: list[RunSummary],
    *,
    max_age: timedelta,
    warn_age: timedelta | None = None,
    now: datetime | None = None,
    sandbox: bool = False,
    in_progress: Collection[str] = (),
    finished: dict[str, dict[str, Any] | None] | None = None,
    where: str = "",
) -> CheckResult:
    """Judge ``plan`` from its run history (``runs``: oldest first, as :func:`list_runs` returns).

    ``in_progress`` names runs a live lock holds (an unfinished run that is still going);
    ``finished`` maps run ids to their journal's ``run.finished`` data (cleanup and problems)."""
    now = now or datetime.now(timezone.utc)
    kind = "sandbox drill" if sandbox else "drill"
    result = CheckResult(plan=plan)
    drills = [r for r in runs if r.mode == "drill" and r.sandbox == sandbox and r.plan == plan]
    if not drills:
        other = "" if sandbox else " (sandbox drills do not count)"
        result.add(CRITICAL, f"no {kind} of this plan{' in ' + where if where else ''}{other}")
        return result
    done = [r for r in drills if r.status != "unfinished"]
    latest = drills[-1]
    if latest.status == "unfinished":
        if latest.run_id in in_progress:
            result.info.append(f"{kind} {latest.run_id} in progress")
        else:
            result.add(
                WARNING,
                f"{kind} {latest.run_id} never finished (its process died): "
                f"drplan resume {latest.run_id}, or drplan cleanup {latest.run_id}",
            )
    if not done:
        result.add(CRITICAL, f"no finished {kind} yet")
        return result
    last = done[-1]
    facts = drill_facts(last, (finished or {}).get(last.run_id))
    started = _parse(last.started)
    age = (now - started).total_seconds() if started is not None else None
    passed = bool(last.passed) and last.status == "succeeded"
    when = f"{humanize(max(age, 0))} ago" if age is not None else "at an unknown time"

    if not passed:
        why = facts.reasons[0] if facts.reasons else f"the drill {last.status}"
        more = f" (+{len(facts.reasons) - 1} more)" if len(facts.reasons) > 1 else ""
        result.add(CRITICAL, f"last {kind} {last.run_id} FAILED {when}: {why}{more}")
    if facts.cleanup == "incomplete":
        left = ", ".join(facts.cleanup_left[:3]) + (" ..." if len(facts.cleanup_left) > 3 else "")
        result.add(
            CRITICAL,
            f"cleanup of {last.run_id} incomplete{': ' + left + ' remain' if left else ''}: "
            f"drplan cleanup {last.run_id}",
        )
    last_pass = next((r for r in reversed(done) if r.passed and r.status == "succeeded"), None)
    pass_started = _parse(last_pass.started) if last_pass is not None else None
    pass_age = (now - pass_started).total_seconds() if pass_started is not None else None
    what = f"last {kind} {last.run_id} {'passed' if passed else 'ran'} {when}"
    if age is None:
        result.add(CRITICAL, f"{kind} {last.run_id} has no start time (damaged journal)")
    elif age > max_age.total_seconds():
        result.add(CRITICAL, f"{what}, over the maximum age {humanize(max_age)}")
    elif warn_age is not None and age > warn_age.total_seconds():
        result.add(WARNING, f"{what}, over the warning age {humanize(warn_age)}")
    elif passed:
        result.info.insert(0, what)
    if passed and facts.problems:
        result.add(WARNING, f"{kind} {last.run_id} passed with problems: {facts.problems[0]}")
    if last.damaged:
        result.add(WARNING, f"the journal of {last.run_id} is damaged")
    result.info += _measured(last, facts)

    if pass_age is not None:
        warn = f"{warn_age.total_seconds():.0f}" if warn_age is not None else ""
        result.perfdata.append(f"age={max(pass_age, 0):.0f}s;{warn};{max_age.total_seconds():.0f};0")
    for name, value, objective in (
        ("rto", last.rto_seconds, facts.rto_objective),
        ("rpo", last.rpo_seconds, facts.rpo_objective),
    ):
        if value is not None:
            crit = _number(objective) if objective is not None else ""
            result.perfdata.append(f"{name}={_number(value)}s;;{crit};0")
    return result


def _measured(run: RunSummary, facts: DrillFacts) -> list[str]:
    out = []
    for name, value, objective in (
        ("RTO", run.rto_seconds, facts.rto_objective),
        ("RPO", run.rpo_seconds, facts.rpo_objective),
    ):
        if value is not None:
            out.append(
                f"{name} {humanize(value)}" + (f" (objective {humanize(objective)})" if objective else "")
            )
    return [", ".join(out)] if out else []


def _number(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def finished_data(state_dir: Path, run_id: str) -> dict[str, Any] | None:
    """The ``run.finished`` data of a run's journal (None: not finished, or unreadable)."""
    from drplan.engine.journal import JOURNAL, journal_state, run_dir

    try:
        return journal_state(run_id, run_dir(state_dir, run_id) / JOURNAL).finished
    except OSError:
        return None


def live_runs(state_dir: Path, plan: str) -> set[str]:
    """Runs of ``plan`` that hold a live lock under ``state_dir`` (still going, not dead)."""
    import time

    from drplan.engine.lock import read_holder

    out = set()
    for path in (state_dir / "locks").glob("*.json"):
        if path.stem.rsplit("@", 1)[0] != plan:
            continue
        holder = read_holder(path)
        if holder is not None and holder.stale(time.time()) is None:
            out.add(holder.run_id)
    return out
