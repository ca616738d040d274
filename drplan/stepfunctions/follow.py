"""``drplan start --engine stepfunctions``: start an execution of an exported state machine, follow
its history with the same events (and so the same live progress) as a local run, and keep it in the
local run index like a local run: the journal under ``<state>/runs/<run id>/`` and, once the
execution has ended, the evidence (report.json, report.md, ...), so ``drplan runs`` and ``drplan
show RUN_ID`` show it unchanged.

The execution is named after the run id, so its ARN and the run's folder name each other. The
journal of such a run is a projection of the execution's history (which AWS keeps): following
again, from this machine or another, rebuilds it from the history.

Polling reads only what is new: ``GetExecutionHistory`` newest first (``reverseOrder``), page by
page until it reaches an event already seen.
"""

from __future__ import annotations

import heapq
import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from drplan import __version__
from drplan.actions import registry
from drplan.engine.events import EventBus, Subscriber
from drplan.engine.journal import JOURNAL, Journal, run_dir
from drplan.engine.prepare import new_run_id, prepare
from drplan.errors import UsageError
from drplan.model import Plan
from drplan.stepfunctions.history import (
    ENDINGS,
    HistoryClock,
    Machine,
    Projection,
    child_executions,
    read_machine,
    with_parts,
)

#: How often the history is read while the execution runs (seconds).
DEFAULT_POLL = 5.0


def start_execution(
    sfn: Any, state_machine_arn: str, *, run_id: str | None = None, keep: bool = False
) -> tuple[str, str]:
    """Start an execution named after a new run id: (run id, execution ARN). The input carries the
    run id and the creation time the drill's tags record."""
    run_id = run_id or new_run_id()
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    given: dict[str, Any] = {"run_id": run_id, "created": created}
    if keep:
        given["keep"] = True
    answer = sfn.start_execution(stateMachineArn=state_machine_arn, name=run_id, input=json.dumps(given))
    return run_id, str(answer["executionArn"])


def new_events(sfn: Any, execution_arn: str, after: int) -> list[dict[str, Any]]:
    """History events whose id is above ``after``, oldest first. Pages are read newest first and
    the reading stops at the first page that reaches an event already seen."""
    found: dict[int, dict[str, Any]] = {}
    ask: dict[str, Any] = {"executionArn": execution_arn, "reverseOrder": True, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**ask)
        events = page.get("events", [])
        for event in events:
            if int(event["id"]) > after:
                found[int(event["id"])] = event
        token = page.get("nextToken")
        if not token or any(int(e["id"]) <= after for e in events):
            break
        ask["nextToken"] = token
    return [found[k] for k in sorted(found)]


def _timestamp(event: Mapping[str, Any]) -> float:
    when = event.get("timestamp")
    if isinstance(when, datetime):
        return when.timestamp()
    return float(when) if isinstance(when, (int, float)) else 0.0


def _arn_parts(arn: str) -> tuple[str, str]:
    """(region, account) of an ARN."""
    parts = arn.split(":")
    return (parts[3], parts[4]) if len(parts) > 4 else ("", "")


@dataclass
class Followed:
    """How a followed execution ended, as a local run's result reads (exit code, final line)."""

    run_id: str
    execution_arn: str
    status: str  # the execution's: SUCCEEDED, FAILED, ABORTED, TIMED_OUT
    result: Any  # drplan.runs.RunResult
    directory: Path
    evidence_dir: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """As a local run's: 0 passed, 1 a step failed or an objective was missed, 3 stopped, cleanup
        incomplete, or the journal or evidence could not be written."""
        return int(self.result.exit_code)


class Follower:
    """Follow one execution: :meth:`poll` until it returns True, then :meth:`finish`.

    ``subscribers`` see every event (live progress); the journal is written as the events come.
    """

    def __init__(
        self,
        sfn: Any,
        plan: Plan,
        execution_arn: str,
        state_dir: Path,
        subscribers: Sequence[Subscriber] = (),
        *,
        user: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        from drplan.runs import git_commit, user_identity

        self.sfn = sfn
        self.plan = plan
        self.execution_arn = execution_arn
        described = sfn.describe_execution(executionArn=execution_arn)
        definition = sfn.describe_state_machine_for_execution(executionArn=execution_arn)["definition"]
        self.machine: Machine = read_machine(definition)
        self.children: list[str] = []  # the child executions started so far (a plan split into parts)
        self.children_ended: set[str] = set()  # ... whose last event has been read
        check_plan(plan, self.machine, execution_arn)
        self.run_id = str(described["name"])
        region, account = _arn_parts(execution_arn)
        self.prepared = prepare(plan, self.machine.mode, registry(), run_id=self.run_id)
        self.directory = run_dir(state_dir, self.run_id)
        self.state_dir = state_dir
        self.directory.mkdir(parents=True, exist_ok=True)
        journal_path = self.directory / JOURNAL
        _not_another_run(journal_path, execution_arn)
        # The history is the record; the journal is rebuilt from it on every follow.
        journal_path.unlink(missing_ok=True)
        self.journal = Journal(journal_path)
        self.clock = HistoryClock()
        self.bus = EventBus(self.run_id, clock=self.clock)
        self.bus.subscribe(self.journal, essential=True)
        for subscriber in subscribers:
            self.bus.subscribe(subscriber)
        started = described.get("startDate")
        self.header: dict[str, Any] = {
            "plan": plan.name,
            "plan_path": plan.path,
            "plan_sha256": plan.sha256,
            "git_commit": git_commit(Path(plan.path)),
            "mode": self.machine.mode,
            "account": account,
            "region": region,
            "user": user or user_identity(),
            "host": platform.node(),
            "drplan_version": __version__,
            "suffix": self.prepared.suffix or None,
            "steps": list(self.prepared.steps),
            "skipped": self.prepared.skipped,
            "parallelism": None,  # Step Functions starts every ready step (docs/stepfunctions.md#limits)
            "sandbox": None,
            "endpoint_url": endpoint_url,
            "started": started.isoformat(timespec="seconds") if isinstance(started, datetime) else None,
            "engine": "stepfunctions",
            "execution_arn": execution_arn,
            "state_machine_arn": described.get("stateMachineArn"),
        }
        self.projection = Projection(self.machine, self.prepared, self.bus, self.clock, self.header, region)

    def poll(self) -> bool:
        """Read what is new in the history and project it; True once the execution has ended."""
        self._read()
        if self.projection.ending is None:
            # An execution can end without its last event in the history yet (or ever: moto writes
            # none for a stopped one): the execution's own status says it ended.
            described = self.sfn.describe_execution(executionArn=self.execution_arn)
            if described.get("status", "RUNNING") != "RUNNING":
                self._read()
                if self.projection.ending is None:
                    self.projection.end(
                        str(described["status"]),
                        described.get("stopDate") or datetime.now(timezone.utc),
                        described.get("error"),
                        described.get("cause"),
                    )
        return self.projection.ending is not None

    def _read(self) -> None:
        """What is new in the main execution's history and in each child execution's it started
        (a plan split into parts), projected in the order the events happened."""
        main: list[tuple[dict[str, Any], str | None]] = [
            (event, None) for event in new_events(self.sfn, self.execution_arn, self.projection.last_id)
        ]
        for arn in child_executions([event for event, _ in main]):
            if arn not in self.children:
                self.children.append(arn)
                # The part's states as this child ran them (not the part's machine as deployed now).
                ran = self.sfn.describe_state_machine_for_execution(executionArn=arn)["definition"]
                self.machine = self.projection.machine = with_parts(self.machine, {arn: ran})
        streams: list[list[tuple[dict[str, Any], str | None]]] = [main]
        for arn in self.children:
            if arn in self.children_ended:
                continue
            last = self.projection.child_last.get(arn, 0)
            events = new_events(self.sfn, arn, last)
            if any(event.get("type") in ENDINGS for event in events):
                self.children_ended.add(arn)
            streams.append([(event, arn) for event in events])
        # Each history stays in its own order (ids); the histories interleave by time.
        for event, child in heapq.merge(*streams, key=lambda item: _timestamp(item[0])):
            self.projection.feed(event, child)

    def stop_children(self, cause: str) -> list[str]:
        """Stop the child executions still running (a plan split into parts), after the main one
        was stopped: Step Functions may not stop a part that the stopped execution was waiting for.
        Returns the ARNs it could not stop (already ended, or refused), which are not an error."""
        from botocore.exceptions import ClientError

        left: list[str] = []
        for arn in self.children:
            if arn in self.children_ended:
                continue
            try:
                self.sfn.stop_execution(executionArn=arn, error="drplan.Interrupted", cause=cause)
            except ClientError:
                left.append(arn)
        return left

    def follow(self, interval: float = DEFAULT_POLL, sleep: Callable[[float], None] = time.sleep) -> Followed:
        """Poll until the execution ends, then :meth:`finish`. A KeyboardInterrupt goes through to
        the caller: the execution keeps running (see :meth:`detach`)."""
        while not self.poll():
            sleep(interval)
        return self.finish()

    def detach(self, stopped: bool = False) -> None:
        """Stop following (Ctrl-C): the journal stays open-ended, like a run whose process died."""
        what = "was asked to stop (StopExecution)" if stopped else "keeps running in AWS"
        self.bus.emit(
            "run.problem",
            problem=f"stopped following execution {self.execution_arn}, which {what}; follow it again with "
            f"drplan start PLAN --follow-only {self.execution_arn}",
        )
        self.journal.close()

    def finish(self) -> Followed:
        """The evidence (every mode: the report is built from the execution's history), then
        ``run.finished``."""
        from drplan.engine.records import DONE
        from drplan.runs import RunResult

        projection = self.projection
        assert projection.ending is not None
        outcome = projection.outcome()
        result = RunResult(self.run_id, self.prepared, outcome, self.header, self.directory)
        if self.machine.mode == "drill":
            self._cleanup(result, any(r.status not in DONE for r in outcome.records.values()))
        else:
            self._rollback(result)
        followed = Followed(self.run_id, self.execution_arn, projection.ending.status, result, self.directory)
        self._evidence(followed)
        result.problems += [f"journal: {self.bus.failure}"] if self.bus.failure else []
        self.clock.now = projection.ending.time
        self.bus.emit(
            "run.finished",
            status=result.status,
            exit_code=followed.exit_code,
            passed=result.passed,
            cleanup_failed=result.cleanup_failed or None,
            cleanup_skipped=result.cleanup_skipped,
            problems=result.problems or None,
            stop_reason=outcome.stop_reason,
            execution_status=projection.ending.status,
        )
        self.journal.close()
        return followed

    def _cleanup(self, result: Any, failed: bool) -> None:
        projection = self.projection
        policy = self.plan.drill.cleanup
        if policy == "never":
            result.cleanup_skipped = "drill.cleanup is `never`"
        elif projection.cleanup_kept and policy == "on_success" and failed:
            result.cleanup_skipped = "drill.cleanup is `on_success` and the drill did not succeed"
        elif projection.cleanup_kept:
            result.cleanup_skipped = "`keep` in the execution's input"
        elif projection.ending is not None and projection.ending.status in ("ABORTED", "TIMED_OUT"):
            # ASL runs nothing after a stop: whatever was created is still there.
            result.cleanup_failed = [k for k, r in result.outcome.records.items() if r.resources]
            result.problems.append(
                "the execution was stopped before its cleanup: remove the copies with drplan cleanup "
                f"{self.run_id} (or drplan cleanup --sweep)"
            )
        else:
            left = [k for k, r in result.outcome.records.items() if r.resources and not r.undone]
            result.cleanup_failed = sorted(set(projection.cleanup_failed) | set(left))
            if projection.cleanup_stopped:
                result.problems.append(f"cleanup: {projection.cleanup_stopped}")

    def _rollback(self, result: Any) -> None:
        """A recovery exported with --rollback-on-failure: what its rollback could not undo (the
        steps it undid are in the records, ``undone``), as a local rollback reports it."""
        projection = self.projection
        failed = set(projection.cleanup_failed)
        if projection.cleanup_stopped:  # the deadline passed: what it had not undone yet is left
            result.problems.append(f"rollback: {projection.cleanup_stopped}")
            records = result.outcome.records.items()
            failed |= {k for k, r in records if r.status == "succeeded" and r.resources and not r.undone}
        result.rollback_failed = sorted(failed)

    def _evidence(self, followed: Followed) -> None:
        """Build and write the report; a failure is recorded, never raised (the execution is over)."""
        from drplan.evidence import build_report, diagrams, last_success
        from drplan.history import list_runs, recent_service_rtos
        from drplan.report.evidence import write_evidence

        result = followed.result
        directory = self.directory / "report"
        try:
            result.report = build_report(result)
            result.report["run"]["parallelism"] = None  # Step Functions starts every ready step
            result.report["engine"] = {
                "name": "stepfunctions",
                "execution_arn": self.execution_arn,
                "state_machine_arn": self.header["state_machine_arn"],
                "execution_status": followed.status,
            }
            if self.children:  # a plan split into parts: the executions that ran them, in order
                result.report["engine"]["child_executions"] = list(self.children)
            history = recent_service_rtos(list_runs(self.state_dir, plan=self.plan.name), sandbox=False)
            for service in result.report["objectives"]["services"]:
                service["recent_rto"] = [
                    r for r in history.get(service["id"], []) if r["run_id"] != self.run_id
                ]
            mermaid, svg = diagrams(self.prepared)
            if self.machine.mode == "drill":
                previous = last_success(self.state_dir, result.report)
                write_evidence(result.report, directory, mermaid=mermaid, svg=svg, last_success=previous)
            else:
                _write_recovery_report(result.report, directory, mermaid)
            result.evidence_dir = followed.evidence_dir = directory
        except Exception as exc:  # a full disk, an unwritable folder: say so, exit 3
            result.problems.append(
                f"evidence: could not be written to {directory}: {type(exc).__name__}: {exc}"
            )


def _write_recovery_report(report: Mapping[str, Any], directory: Path, mermaid: str | None) -> None:
    """A recovery's report: report.md and report.json (no drill metrics: a recovery is no drill
    for the "last passing drill" alerts), each written whole, report.json last."""
    from drplan.report.evidence import to_markdown

    directory.mkdir(parents=True, exist_ok=True)
    doc = dict(report)
    files = [
        ("report.md", to_markdown(doc, mermaid=mermaid)),
        ("report.json", json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"),
    ]
    for name, text in files:
        tmp = directory / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, directory / name)


def check_run_free(state_dir: Path, run_id: str) -> None:
    """Before starting an execution for ``run_id``: no run of that id may be in the index."""
    journal = run_dir(state_dir, run_id) / JOURNAL
    if journal.is_file() and journal.stat().st_size:
        raise UsageError(
            f"run {run_id} is already in {state_dir}: nothing was started",
            hint="start with another --run-id (or none: a new one)",
        )


def _not_another_run(journal: Path, execution_arn: str) -> None:
    """A journal already there must be this execution's (rebuilt), never a local run's."""
    from drplan.engine.journal import journal_state

    if not journal.is_file() or journal.stat().st_size == 0:
        return
    header = journal_state(journal.parent.name, journal).header
    if header.get("execution_arn") != execution_arn:
        raise UsageError(
            f"run {journal.parent.name} in {journal.parent.parent} is another run "
            f"({header.get('engine', 'local')} {header.get('mode', '?')} of {header.get('plan', '?')}): "
            "refusing to replace its journal",
            hint="start with another --run-id, or follow with another --state-dir",
        )


def check_plan(plan: Plan, machine: Machine, arn: str) -> None:
    """Refuse a plan other than the one the state machine was exported from."""
    if machine.plan != plan.name:
        raise UsageError(
            f"{arn} runs plan {machine.plan}, not {plan.name}",
            hint="pass the plan the state machine was exported from",
        )
    if machine.sha256 and plan.sha256 and machine.sha256 != plan.sha256:
        raise UsageError(
            f"{plan.path} is not the plan the state machine was exported from (its SHA-256 differs): the "
            "evidence would describe other steps than ran",
            hint="pass the plan as it was exported, or export and deploy it again (drplan deploy)",
        )
