"""Running a plan: the recovery and drill use cases, from refusal to evidence.

The command line parses options into a :class:`RunRequest`, calls :func:`run_plan` and renders the
:class:`RunResult`; everything in between is here, in this order:

1. **Refuse what the run would refuse, before the first change**: command steps without
   ``--allow-commands``, manual steps nobody can approve, a journal, evidence folder or
   ``--events`` file that cannot be written, credentials for another account, a lock held by
   another run of the plan, drill names that are taken.
2. **Run** the steps (:class:`~drplan.engine.runner.Runner`), then undo: a drill's cleanup always
   (unless ``--keep``), a recovery's rollback with ``--rollback-on-failure``.
3. **Evidence** (drills): report.json, report.md, report.html, junit.xml and metrics.prom, built
   from the run's records.
4. **Finish**: ``run.finished`` with the exit code the command will really return.

From the moment the plan is loaded until the evidence is written, SIGINT, SIGTERM and SIGHUP only
request a stop (:mod:`drplan.engine.signals`): running steps stop at once, cleanup runs, evidence
is written; a second signal stops waiting for deletions. Exit codes: 0 success, 1 a step failed or
an objective was missed, 3 interrupted, cleanup or rollback incomplete, or the journal or evidence
could not be written (resources may remain).
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import platform
import subprocess
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from drplan import __version__
from drplan.actions import registry
from drplan.aws import AwsAccess, AwsSession
from drplan.engine.events import EventBus, JsonLinesWriter, Subscriber
from drplan.engine.journal import JOURNAL, Journal, JournalState, journal_state, run_dir
from drplan.engine.lock import RunLock, lock_path
from drplan.engine.preflight import PreflightReport, run_preflight
from drplan.engine.prepare import Prepared, new_run_id, prepare
from drplan.engine.records import RunOptions, RunOutcome
from drplan.engine.resume import carry_over
from drplan.engine.runner import Runner
from drplan.engine.signals import Stop, stop_on_signals
from drplan.engine.state import S3State
from drplan.errors import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK, DrplanError, UsageError
from drplan.model import Fault, Mode, Plan
from drplan.notify import Notifier, NotifyTarget, recorded_targets


class RunRefused(DrplanError):
    """The run would refuse part of the plan, or cannot be sure it is safe: nothing was started."""


class DrillRefused(RunRefused):
    """A drill would collide with existing resources (or cannot check), so it does not start."""


class MissingFlags(RunRefused):
    """The plan needs an opt-in the command line did not give (``--allow-commands``, approvals)."""

    exit_code = 2


@dataclass(frozen=True)
class RunRequest:
    plan: Plan
    mode: Mode
    state_dir: Path
    options: RunOptions = field(default_factory=RunOptions)
    parallelism: int | None = None  # --parallelism; else the plan's run.parallelism; else 16
    ungraceful: bool = False  # --ungraceful: each step's variant for a primary Region that is down
    keep: bool = False  # drills: leave the resources (drplan cleanup RUN_ID removes them later)
    rollback_on_failure: bool = False  # recoveries: undo completed steps when the run fails
    report_dir: Path | None = None  # drills: where the evidence goes (default: the run's folder)
    events_path: Path | None = None  # --events: every event as a JSON line
    pushgateway: str | None = None
    sandbox: bool = False  # labels evidence and metrics: a sandbox drill never counts as a real one
    run_id: str | None = None
    lock: bool = True
    resume: JournalState | None = None  # carry this run on from its journal (drplan resume)
    state: S3State | None = None  # shared state in S3 (its local copy is state_dir)
    notify: tuple[NotifyTarget, ...] = ()  # --notify: where "started" and "finished" notices go
    #: The AWS access of SNS and EventBridge notices (None: the run's). A sandbox run passes real
    #: AWS: the sandbox emulates the plan's resources, not the channels people read.
    notify_aws: AwsAccess | None = None
    #: Recoveries: start even though an earlier recovery of the plan never finished.
    despite_unfinished: bool = False


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
    report: dict[str, Any] | None = None  # the drill's evidence document
    evidence_dir: Path | None = None
    problems: list[str] = field(default_factory=list)  # journal, evidence, subscribers, metrics

    @property
    def incomplete(self) -> bool:
        """Something may remain or was not recorded: interrupted, undo incomplete, journal lost."""
        return bool(
            self.outcome.interrupted
            or self.cleanup_failed
            or self.rollback_failed
            or any(p.startswith(("journal", "evidence")) for p in self.problems)
        )

    @property
    def passed(self) -> bool:
        if self.report is not None:
            return bool(self.report["verdict"]["passed"])
        return self.outcome.ok

    @property
    def exit_code(self) -> int:
        if self.incomplete:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.passed else EXIT_FINDINGS

    @property
    def status(self) -> str:
        if self.outcome.interrupted:
            return "interrupted"
        return "succeeded" if self.outcome.ok else "failed"

    def final_line(self) -> str:
        """The last line the command prints: agrees with :attr:`exit_code`."""
        what = "drill" if self.prepared.mode == "drill" else "recovery"
        if self.exit_code == EXIT_OK:
            extra = ""
            if self.outcome.unverified:
                extra = f" ({len(self.outcome.unverified)} check(s) not verifiable here: see the report)"
            return f"PASSED: {what} {self.run_id} of {self.prepared.plan.name}{extra} (exit 0)"
        reasons = list(self.report["verdict"]["reasons"]) if self.report else []
        if not reasons:
            reasons = [f"the {what} {self.status}"]
        reasons += [p for p in self.problems if p.startswith(("journal", "evidence")) and p not in reasons]
        if self.rollback_failed:
            reasons.append("rollback incomplete: " + ", ".join(self.rollback_failed))
        return f"FAILED: {what} {self.run_id} of {self.prepared.plan.name}: {'; '.join(reasons)} (exit {self.exit_code})"


def user_identity() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = os.environ.get("USER", "unknown")
    return f"{user}@{platform.node()}"


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


# --- refusing before the first change ----------------------------------------------------------------


def refusals(prepared: Prepared, options: RunOptions) -> list[str]:
    """Everything the run would refuse halfway, found before it starts."""
    out = []
    for key, step in prepared.steps.items():
        if step.action.name == "command" and not prepared.plan.allow_commands:
            out.append(f'{key} runs a local command, but the plan does not set "allow_commands": true')
        elif step.action.name == "command" and not options.allow_commands:
            out.append(f"{key} runs a local command: pass --allow-commands to allow it")
        unapproved = options.approvals.prompt is None and options.approvals.granted(key) is None
        if step.action.family == "manual" and unapproved:
            out.append(
                f"{key} needs a person's approval: pass --approve {key} or --approve-all, or run on a terminal"
            )
    return out


def _writable_dir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".drplan-write-test-{os.getpid()}"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"cannot write {what} in {path}: {exc.strerror or exc}; nothing was started",
            hint="choose another folder (--state-dir, --report-dir) or free some space",
        ) from exc


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:  # innermost first
        with contextlib.suppress(OSError):
            folder.rmdir()


def _open_events(path: Path) -> IO[str]:
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot write the --events file {path}: {exc.strerror or exc}; nothing was started"
        ) from exc


def _close_quietly(stream: IO[str]) -> None:
    """Close an output whose disk may be full: what it could not write was reported already."""
    with contextlib.suppress(OSError):
        stream.close()


@dataclass(frozen=True)
class Unfinished:
    """An earlier run of a plan whose journal has no ``run.finished``: its process died."""

    run_id: str
    mode: str | None
    started: str
    account: str | None
    sandbox: bool

    def describe(self) -> str:
        return f"{self.run_id} ({self.mode or 'unknown mode'}, started {self.started})"


def unfinished_runs(state_dir: Path, plan: str, *, exclude: str) -> list[Unfinished]:
    """Earlier runs of ``plan`` whose journal has no ``run.finished``: their process died."""
    found = []
    for journal in sorted((state_dir / "runs").glob(f"*/{JOURNAL}")):
        run_id = journal.parent.name
        if run_id == exclude:
            continue
        try:
            state = journal_state(run_id, journal)
        except OSError:
            continue
        header = state.header
        if header.get("plan") == plan and state.finished is None:
            account = header.get("account")
            found.append(
                Unfinished(
                    run_id,
                    state.mode,
                    str(header.get("started", "?")),
                    str(account) if account else None,
                    bool(header.get("sandbox")),
                )
            )
    return found


# --- the run -----------------------------------------------------------------------------------------


def run_plan(request: RunRequest, aws: AwsSession, subscribers: Sequence[Subscriber] = ()) -> RunResult:
    """Recover or drill ``request.plan``. Raises only for refusals before anything started."""
    stop = Stop()
    with stop_on_signals(stop), ExitStack() as stack:
        plan, mode = request.plan, request.mode
        run_id = request.resume.run_id if request.resume else (request.run_id or new_run_id())
        prepared = prepare(
            plan,
            mode,
            registry(),
            run_id=run_id,
            parallelism=request.parallelism,
            ungraceful=request.ungraceful,
        )
        refused = refusals(prepared, request.options)
        if refused:
            raise MissingFlags("refusing to start: " + "; ".join(refused))
        faults = (
            {**{f.step: f for f in plan.drill.faults}, **request.options.faults} if mode == "drill" else {}
        )
        unknown = sorted(k for k in faults if k not in prepared.steps)
        if unknown:
            raise MissingFlags(
                f"cannot inject faults into {', '.join(unknown)}: no such step runs in this drill"
            )
        crashes = sorted(k for k, f in faults.items() if f.fault == "crash")
        if crashes and request.sandbox:
            raise MissingFlags(
                f"cannot rehearse a crash ({', '.join(crashes)}) in the sandbox: its emulated AWS dies with "
                "the process, so there is no run left to resume",
                hint="rehearse it against an AWS account, or a moto server (--endpoint-url)",
            )
        directory = run_dir(request.state_dir, run_id)
        evidence_dir = (request.report_dir or directory / "report") if mode == "drill" else None
        made = [p for p in (evidence_dir, directory) if p is not None and not p.exists()]
        # Folders made for a run that is then refused (account guard, lock, taken names) would be
        # empty leftovers in `.drplan/runs/`: removed again (rmdir removes only what stayed empty).
        stack.callback(_remove_if_empty, made)
        _writable_dir(directory, "the run's journal")
        if evidence_dir is not None:
            _writable_dir(evidence_dir, "the drill's evidence")
        events = _open_events(request.events_path) if request.events_path else None
        if events is not None:
            stack.callback(_close_quietly, events)

        if prepared.region and not aws.region:
            aws.region = prepared.region
        # Roles in other accounts: the IDs their trust policies require, and a session name that
        # says in their CloudTrail which run assumed them.
        aws.external_ids = {**plan.external_ids(), **aws.external_ids}
        aws.session_name = f"drplan-{mode}-{run_id}"
        account = aws.guard_account(plan.aws.account_id)
        identity = user_identity() + (f" ({aws.caller_arn})" if aws.caller_arn else "")
        options = dataclasses.replace(
            request.options,
            approvals=dataclasses.replace(request.options.approvals, identity=identity),
            faults=faults,
            resumed=request.resume is not None,
        )
        if request.lock and request.state is not None:
            s3_lock = stack.enter_context(
                request.state.lock(plan.name, account, run_id=run_id, user=identity, mode=mode)
            )
        elif request.lock:
            stack.enter_context(
                RunLock.acquire(
                    lock_path(request.state_dir, plan.name, account), run_id=run_id, user=identity, mode=mode
                )
            )
        problems = []
        earlier = [] if request.resume else unfinished_runs(request.state_dir, plan.name, exclude=run_id)
        # A recovery of the plan in this account that never finished may have restored, switched or
        # scaled things already: a new one would start them again. Carry it on instead.
        dead = [
            u
            for u in earlier
            if mode == "recover" and u.mode == "recover" and not u.sandbox and not request.sandbox
            if u.account in (None, account)
        ]
        if dead and not request.despite_unfinished:
            raise MissingFlags(
                f"an earlier recovery of {plan.name} never finished (its process died): "
                + ", ".join(u.describe() for u in dead[:5])
                + "; a new recovery would start again what it may have started",
                hint=f"carry it on with `drplan resume {dead[-1].run_id}`, or start a new one anyway with "
                "--despite-unfinished",
            )
        if earlier:
            problems.append(
                "earlier runs of this plan never finished (their process died): "
                + ", ".join(u.describe() for u in earlier[:5])
                + "; `drplan resume RUN_ID` carries a run on, `drplan cleanup RUN_ID` removes what a drill left"
            )

        preflight = None
        if mode == "drill" and request.resume is None:  # a resumed drill's names are its own
            # A drill never touches a name it did not create: every isolated target must be free.
            read_only = dataclasses.replace(aws, read_only=True)  # same credentials and endpoint, reads only
            preflight = run_preflight(prepared, read_only, options)
            taken = preflight.collisions()
            if taken:
                raise DrillRefused(
                    "the drill cannot be sure its isolated names are free: " + "; ".join(taken),
                    hint="remove leftovers with `drplan cleanup --sweep` or `drplan cleanup RUN_ID`, "
                    "or change drill.name_suffix",
                )

        bus = EventBus(run_id)
        journal = Journal(directory / JOURNAL)
        stack.callback(journal.close)
        bus.subscribe(journal, essential=True)
        mirror = request.state.mirror(run_id) if request.state is not None else None
        if mirror is not None:
            bus.subscribe(mirror)
        for subscriber in subscribers:
            bus.subscribe(subscriber)
        if events is not None:
            bus.subscribe(JsonLinesWriter(events))
        notifier = None
        if request.notify:
            notifier = Notifier(
                request.notify,
                request.notify_aws or aws,
                evidence_dir=evidence_dir,
                shared_state=request.state.url if request.state is not None else None,
            )
            bus.subscribe(notifier)
        header = {
            "plan": plan.name,
            "plan_path": plan.path,
            "plan_sha256": plan.sha256,
            "git_commit": git_commit(Path(plan.path)),
            "mode": mode,
            "account": account,
            "region": aws.region_of(None),
            "user": identity,
            "host": platform.node(),
            "drplan_version": __version__,
            "suffix": prepared.suffix or None,
            "steps": list(prepared.steps),
            "skipped": prepared.skipped,
            "parallelism": prepared.limits.parallelism,
            "ungraceful": request.ungraceful or None,
            "sandbox": request.sandbox or None,
            "endpoint_url": aws.endpoint_url,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        notify, unrecorded = recorded_targets(request.notify)
        header.update(
            external_ids=dict(plan.external_ids()) or None,
            notify=notify or None,
            notify_unrecorded=unrecorded or None,
            pushgateway=_recordable(request.pushgateway),
        )
        if request.resume is not None:
            header = {**request.resume.header, "resumed_by": identity, "resumed": header["started"]}
            bus.emit("run.resumed", **header)
        else:
            bus.emit("run.started", **header)
        for problem in problems:
            bus.emit("run.problem", problem=problem)
        for key, results in preflight.results.items() if preflight else ():
            for r in results:
                bus.emit(
                    "preflight.result", key, status=r.status, message=r.message, facts=dict(r.facts) or None
                )
        for key, reason in prepared.skipped.items():
            bus.emit("step.skipped", key, reason=reason)
        if evidence_dir is not None:
            _mark_in_progress(evidence_dir, plan.name, header, request.sandbox, problems)

        runner = Runner(prepared, aws, bus, options, stop=stop)
        result = RunResult(run_id, prepared, RunOutcome({}, 0.0, 0.0), header, directory, preflight=preflight)
        result.problems = problems
        carried = None
        if request.resume is not None:
            carried = carry_over(request.resume, prepared, runner.records_store, runner.contexts, aws)
            for key in carried.adopted:
                bus.emit(
                    "step.progress",
                    key,
                    note="re-attached to what the earlier process created (found by name)",
                )
        finished = False
        try:
            result.outcome = runner.run(carried=carried)
            finished = True
        finally:
            if not finished:  # the runner itself failed: still clean up what was created
                result.outcome = RunOutcome(runner.records, runner.clock(), runner.clock(), interrupted=True)
            _undo(request, runner, result)
            runner.report_stops()
            if notifier is not None:  # failures of the notices sent so far reach the evidence too
                result.problems += notifier.settle()
            if evidence_dir is not None:
                _evidence(request, result, evidence_dir, runner.contexts.secrets.mask, options.faults)
            if request.state is not None and result.evidence_dir is not None:
                try:
                    request.state.push_report(run_id, result.evidence_dir)
                except Exception as exc:
                    result.problems.append(f"evidence: could not be copied to {request.state.url}: {exc}")
            result.problems += [f"journal: {bus.failure}"] if bus.failure else []
            result.problems += [f"output: {f}" for f in bus.failures() if not f.startswith("journal")]
            runner.report_stops()
            bus.emit(
                "run.finished",
                status=result.status,
                exit_code=result.exit_code,
                passed=result.passed,
                cleanup_failed=result.cleanup_failed or None,
                rollback_failed=result.rollback_failed or None,
                cleanup_skipped=result.cleanup_skipped,
                problems=result.problems or None,
                stop_reason=result.outcome.stop_reason,
            )
            if notifier is not None:  # the "finished" notice: after the evidence it reports on
                result.problems += notifier.close()
            if mirror is not None:
                lost = mirror.close()
                if lost:
                    result.problems.append(f"journal: {lost}")
            if request.state is not None and request.lock and s3_lock.lost:
                result.problems.append(f"lock: {s3_lock.lost}")
        return result


def _undo(request: RunRequest, runner: Runner, result: RunResult) -> None:
    if request.mode == "drill":
        policy = request.plan.drill.cleanup
        if request.keep:
            result.cleanup_skipped = "--keep"
        elif policy == "never":
            result.cleanup_skipped = "drill.cleanup is `never`"
        elif policy == "on_success" and not result.outcome.ok:
            result.cleanup_skipped = "drill.cleanup is `on_success` and the drill did not succeed"
        if not result.cleanup_skipped:
            result.cleanup_failed = runner.cleanup()
    elif request.rollback_on_failure and not result.outcome.ok:
        result.rollback_failed = runner.rollback()
    if runner.stop.soft.is_set() and not result.outcome.interrupted:
        # A signal during cleanup or rollback: the run was interrupted after all, and says so (exit 3).
        result.outcome.interrupted = True
        result.outcome.stop_reason = runner.stop.reason


def _mark_in_progress(
    directory: Path, plan: str, header: dict[str, Any], sandbox: bool, problems: list[str]
) -> None:
    """Replace a previous run's metrics.prom at once: if this process dies, monitoring must see a
    drill that did not finish, not the last one's success published again."""
    from drplan.report.evidence import write_in_progress_metrics

    try:
        write_in_progress_metrics(directory, plan=plan, started=header["started"], sandbox=sandbox)
    except OSError as exc:
        problems.append(f"evidence: cannot write metrics.prom in {directory}: {exc.strerror or exc}")


def _evidence(
    request: RunRequest,
    result: RunResult,
    directory: Path,
    mask: Callable[[Any], Any],
    faults: Mapping[str, Fault],
) -> None:
    """Build and write the drill's evidence; a failure is recorded, never raised (cleanup is done)."""
    from drplan.evidence import build_report, diagrams, last_success
    from drplan.history import list_runs, recent_service_rtos
    from drplan.report.evidence import push_metrics, write_evidence

    try:
        result.report = mask(build_report(result, sandbox=request.sandbox))
        result.report["injected"] = [
            {
                "step": f.step,
                "fault": f.fault,
                "description": f.describe(),
                "status": result.outcome.records[k].status,
            }
            for k, f in faults.items()
            if k in result.outcome.records
        ]
        history = recent_service_rtos(
            list_runs(request.state_dir, plan=request.plan.name), sandbox=request.sandbox
        )
        for service in result.report["objectives"]["services"]:
            service["recent_rto"] = [
                r for r in history.get(service["id"], []) if r["run_id"] != result.run_id
            ]
        previous = last_success(request.state_dir, result.report)
        mermaid, svg = diagrams(result.prepared)
        write_evidence(result.report, directory, mermaid=mermaid, svg=svg, last_success=previous)
        result.evidence_dir = directory
    except Exception as exc:  # a full disk, an unwritable folder, a bug: say so, exit 3
        result.problems.append(f"evidence: could not be written to {directory}: {type(exc).__name__}: {exc}")
        return
    if request.pushgateway:
        try:
            push_metrics(result.report, request.pushgateway, last_success=previous)
        except OSError as exc:
            result.problems.append(f"metrics: could not push to {request.pushgateway}: {exc}")


def _recordable(url: str | None) -> str | None:
    """A URL the journal may keep (for ``drplan resume``): not one that may carry a credential (user
    information such as ``TOKEN@host``, or a query string)."""
    from urllib.parse import urlsplit

    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.username is None and not parts.query else None
