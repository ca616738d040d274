"""The life of a run: prepare, guard, journal, run, roll back or clean up, finish.

``recover`` restores to the names the plan gives and never cleans up (``--rollback-on-failure``
undoes completed steps when the run fails). ``drill`` restores into isolated, tagged names,
refuses to start when one of them already exists, and always deletes what it created (unless
``--keep`` or the plan's ``drill.cleanup`` says otherwise), verifying each deletion. Both modes
share :func:`prepare` with the dry run.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from drplan import __version__
from drplan.actions import registry
from drplan.aws import AwsSession
from drplan.engine.events import EventBus, Subscriber
from drplan.engine.journal import Journal, run_dir
from drplan.engine.preflight import PreflightReport, run_preflight
from drplan.engine.prepare import Prepared, new_run_id, prepare
from drplan.engine.runner import Runner, RunOptions, RunOutcome
from drplan.errors import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK, DrplanError
from drplan.model import Mode, Plan


@dataclass
class RunResult:
    run_id: str
    prepared: Prepared
    outcome: RunOutcome
    header: dict[str, Any]
    directory: Path
    cleanup_failed: list[str] = field(default_factory=list)  # steps whose resources could not be removed
    cleanup_skipped: str | None = None  # why cleanup did not run (--keep, plan setting)
    rollback_failed: list[str] = field(default_factory=list)
    preflight: PreflightReport | None = None

    @property
    def exit_code(self) -> int:
        if self.outcome.interrupted or self.cleanup_failed or self.rollback_failed:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.outcome.ok else EXIT_FINDINGS


class DrillRefused(DrplanError):
    """A drill would collide with existing resources (or cannot check), so it does not start."""


def git_commit(path: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(path.parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def execute(
    plan: Plan,
    mode: Mode,
    aws: AwsSession,
    *,
    state_dir: str | Path,
    options: RunOptions,
    subscribers: Sequence[Subscriber] = (),
    run_id: str | None = None,
    keep: bool = False,
    rollback_on_failure: bool = False,
) -> RunResult:
    """Run a plan for real (``recover``) or as a drill. Raises only for problems before anything starts."""
    run_id = run_id or new_run_id()
    prepared = prepare(plan, mode, registry(), run_id=run_id)
    if prepared.region and not aws.region:
        aws.region = prepared.region
    account = aws.guard_account(plan.aws.account_id)
    preflight = None
    if mode == "drill":
        # A drill never touches a name it did not create: every isolated target must be free.
        read_only = dataclasses.replace(aws, read_only=True)  # same credentials and endpoint, reads only
        preflight = run_preflight(prepared, read_only, options)
        taken = preflight.collisions()
        if taken:
            raise DrillRefused(
                "the drill cannot be sure its isolated names are free: " + "; ".join(taken),
                hint="remove leftovers with `drplan cleanup --sweep`, or change drill.name_suffix",
            )
    directory = run_dir(state_dir, run_id)
    bus = EventBus(run_id)
    journal = Journal(directory / "journal.jsonl")
    bus.subscribe(journal)
    for subscriber in subscribers:
        bus.subscribe(subscriber)
    header = {
        "plan": plan.name,
        "plan_path": plan.path,
        "plan_sha256": plan.sha256,
        "git_commit": git_commit(Path(plan.path)),
        "mode": mode,
        "account": account,
        "region": aws.region_of(None),
        "user": _user(),
        "host": platform.node(),
        "drplan_version": __version__,
        "suffix": prepared.suffix or None,
        "steps": list(prepared.steps),
        "skipped": prepared.skipped,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    bus.emit("run.started", **header)
    for key, results in preflight.results.items() if preflight else ():
        for r in results:
            bus.emit("preflight.result", key, status=r.status, message=r.message, facts=dict(r.facts) or None)
    for key, reason in prepared.skipped.items():
        bus.emit("step.skipped", key, reason=reason)
    runner = Runner(prepared, aws, bus, options)
    result = RunResult(run_id, prepared, RunOutcome({}, 0.0, 0.0), header, directory, preflight=preflight)
    try:
        result.outcome = runner.run()
    finally:
        if not result.outcome.records:  # the runner itself failed: still clean up what was created
            result.outcome = RunOutcome(runner.records, 0.0, 0.0, interrupted=True)
        # Ctrl-C during cleanup must not abandon it: the first signal is noted, a second one stops
        # waiting for deletions (what remains is listed and `drplan cleanup RUN_ID` finishes it).
        with runner.signals():
            if mode == "drill":
                _cleanup(plan, runner, result, keep=keep)
            elif rollback_on_failure and not result.outcome.ok:
                result.rollback_failed = runner.rollback(result.outcome)
        bus.emit(
            "run.finished",
            status="succeeded"
            if result.outcome.ok
            else ("interrupted" if result.outcome.interrupted else "failed"),
            exit_code=result.exit_code,
            cleanup_failed=result.cleanup_failed or None,
            rollback_failed=result.rollback_failed or None,
            cleanup_skipped=result.cleanup_skipped,
        )
        journal.close()
    return result


def _cleanup(plan: Plan, runner: Runner, result: RunResult, *, keep: bool) -> None:
    policy = plan.drill.cleanup
    if keep:
        result.cleanup_skipped = "--keep"
    elif policy == "never":
        result.cleanup_skipped = "drill.cleanup is `never`"
    elif policy == "on_success" and not result.outcome.ok:
        result.cleanup_skipped = "drill.cleanup is `on_success` and the drill did not succeed"
    if result.cleanup_skipped:
        return
    # Reverse order of creation: dependents go before what they depend on.
    created = [r for r in runner.records.values() if r.resources]
    order = [r.key for r in sorted(created, key=lambda r: r.started or 0.0, reverse=True)]
    result.cleanup_failed = runner.undo(order, reason="drill cleanup")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")
