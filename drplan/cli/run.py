"""``drplan recover`` (the real thing), ``drplan drill`` and ``drplan unlock``: parse, call
:mod:`drplan.runs`, render.

Output goes to standard error through :func:`say`, which never raises: a closed pipe (a CI log
streamer gone, ``| head``) must not stop a drill's cleanup or change its exit code.
"""

from __future__ import annotations

import os
import select
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from drplan.cli.common import (
    QUIET,
    VERBOSE,
    aws_options,
    aws_session,
    complete_locked_plans,
    complete_plan_files,
    complete_run_ids,
    fail,
    invocation,
    output_options,
    parse_age,
    s3_state,
    say,
    state_option,
    use_color,
    verbosity,
    warn,
)
from drplan.engine.journal import DEFAULT_STATE_DIR
from drplan.errors import EXIT_INTERRUPTED, EXIT_USAGE

if TYPE_CHECKING:
    from drplan.engine.events import Event
    from drplan.notify import NotifyTarget

_PROMPT_LOCK = threading.Lock()


def _plan_file(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Runs take a plan file: its path and hash go into the journal, for resume and audit."""
    if value == "-":
        raise click.BadParameter(
            "a run reads its plan from a file, not standard input (the journal records the plan's "
            "path and SHA-256 for resume and audit): save it to a file first"
        )
    if not Path(value).is_file():
        raise click.BadParameter(f"{value!r} is not a file")
    return value


def _notify(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[NotifyTarget, ...]:
    """``--notify KIND:WHERE``, each checked before the run starts (a bad one is a usage error)."""
    from drplan.notify import NotifyConfigError, parse_target

    targets = []
    for text in values:
        try:
            targets.append(parse_target(text))
        except NotifyConfigError as exc:
            raise click.BadParameter(str(exc)) from None
    return tuple(targets)


def run_options(func: Any) -> Any:
    options = [
        click.option(
            "--parallelism",
            type=click.IntRange(1, 256),
            help="Steps running at once (default: the plan's run.parallelism, else 16).",
        ),
        click.option("--fail-fast", is_flag=True, help="Start no new step after the first failure."),
        click.option(
            "--ungraceful",
            is_flag=True,
            help="The primary Region is down: run each step's ungraceful variant (an Aurora global database "
            "failover instead of its switchover), as ARC's ungraceful mode; the dry run shows which.",
        ),
        click.option(
            "--approve",
            "approve",
            multiple=True,
            metavar="STEP",
            help="Approve this manual step up front (repeatable).",
        ),
        click.option("--approve-all", is_flag=True, help="Approve every manual step up front."),
        click.option(
            "--allow-commands", is_flag=True, help="Allow `command` steps (the plan must allow them too)."
        ),
        click.option(
            "--events",
            "events_file",
            type=click.Path(dir_okay=False),
            help="Write every event as a JSON line to FILE.",
        ),
        click.option(
            "--state-dir",
            default=DEFAULT_STATE_DIR,
            show_default=True,
            type=click.Path(file_okay=False),
            help="Where run journals, locks and reports go.",
        ),
        click.option(
            "--cleanup-timeout",
            default="30m",
            show_default=True,
            help="How long undo and drill cleanup wait for deletions to be verified, in all (30m, 1h).",
        ),
        click.option(
            "--sandbox", is_flag=True, help="Run against the embedded AWS emulator (no AWS account needed)."
        ),
        click.option(
            "--notify",
            "notify",
            multiple=True,
            metavar="KIND:WHERE",
            callback=_notify,
            help="Notify when the run starts and ends (passed, failed, cleanup incomplete): sns:TOPIC_ARN, "
            "eventbridge:BUS_NAME_OR_ARN, webhook:URL or webhook:env:VARIABLE (repeatable).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return output_options(state_option(aws_options(func)))


def _prompt_on_tty(pause: Any = None, resume: Any = None) -> Any:
    """An approval prompt for manual steps that gives up after the step's timeout."""

    def prompt(text: str, timeout: float | None) -> bool | None:
        with _PROMPT_LOCK:
            if pause:
                pause()
            try:
                click.echo(f"\n{text} [y/N] ", nl=False, err=True)
                ready, _, _ = select.select([sys.stdin], [], [], timeout)
                if not ready:
                    click.echo("(no answer)", err=True)
                    return None
                return sys.stdin.readline().strip().lower() in ("y", "yes")
            finally:
                if resume:
                    resume()

    return prompt


@click.command()
@click.argument(
    "plan_path",
    metavar="PLAN",
    type=click.Path(dir_okay=False),
    callback=_plan_file,
    shell_complete=complete_plan_files,
)
@click.option(
    "--yes", "-y", is_flag=True, help="Do not ask for confirmation (manual steps still need approval)."
)
@click.option(
    "--rollback-on-failure",
    is_flag=True,
    help="When the run fails, undo the completed steps in reverse order.",
)
@click.option(
    "--despite-unfinished",
    is_flag=True,
    help="Start even though an earlier recovery of the plan never finished (drplan resume carries it on).",
)
@run_options
def recover(
    plan_path: str, yes: bool, rollback_on_failure: bool, despite_unfinished: bool, **opts: Any
) -> None:
    """Restore the plan's services for real, in dependency order, to the names the plan gives.

    Shows the dry run first and asks for confirmation (--yes skips it). Exit 0 when every step
    succeeded, 1 when a step failed, 2 when the run was refused before it started (a missing
    --allow-commands or approval, an unwritable state folder, an earlier recovery of the plan that
    never finished: `drplan resume RUN_ID` carries that one on), 3 when interrupted or when
    --rollback-on-failure could not undo every completed step.

    \b
    Examples:
      drplan recover plans/webshop.json
      drplan recover plans/webshop.json --yes --approve-all --state s3://dr-state/webshop
      drplan recover plans/webshop.json --sandbox --yes --approve-all
    """
    _run(
        plan_path,
        "recover",
        confirm=not yes,
        rollback_on_failure=rollback_on_failure,
        despite_unfinished=despite_unfinished,
        **opts,
    )


@click.command()
@click.argument(
    "plan_path",
    metavar="PLAN",
    type=click.Path(dir_okay=False),
    callback=_plan_file,
    shell_complete=complete_plan_files,
)
@click.option(
    "--keep",
    is_flag=True,
    help="Leave the restored resources for inspection (remove them later with `drplan cleanup RUN_ID`).",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False),
    help="Where to write the evidence (default: <state-dir>/runs/<run-id>/report).",
)
@click.option(
    "--pushgateway", metavar="URL", help="Also push the drill metrics to this Prometheus Pushgateway."
)
@click.option(
    "--yes", "-y", is_flag=True, hidden=True, help="Accepted for symmetry with recover; drills never ask."
)
@click.option(
    "--inject",
    "inject",
    multiple=True,
    metavar="STEP:FAULT",
    help="Rehearse a fault: make STEP fail, fail-once, timeout or throttle[:N], or crash the drill's "
    "process once STEP has started and resume it (repeatable; adds to the plan's drill.faults).",
)
@run_options
def drill(
    plan_path: str,
    keep: bool,
    report_dir: str | None,
    pushgateway: str | None,
    yes: bool,
    inject: tuple[str, ...],
    **opts: Any,
) -> None:
    """Restore the plan into isolated, tagged copies, verify them, measure RTO and RPO, clean up.

    Writes evidence (report.json, report.md, report.html, junit.xml, metrics.prom) even when the
    drill fails or is interrupted. Exit 0 when every objective was met, 1 when a step failed or an
    objective was missed, 2 when refused before it started, 3 when interrupted, when cleanup could
    not remove everything, or when the journal or evidence could not be written.

    \b
    Examples:
      drplan drill plans/webshop.json --sandbox
      drplan drill plans/webshop.json --region eu-west-1 --notify webhook:env:SLACK_WEBHOOK
      drplan drill plans/webshop.json --keep --quiet
      drplan drill plans/webshop.json --sandbox --inject orders-db.restore:fail-once
    """
    _run(
        plan_path,
        "drill",
        confirm=False,
        keep=keep,
        report_dir=report_dir,
        pushgateway=pushgateway,
        faults=_faults(inject),
        **opts,
    )


def _faults(inject: tuple[str, ...]) -> dict[str, Any]:
    """``--inject orders-db.restore:fail`` (``throttle:N`` throttles N calls)."""
    from drplan.model import Fault

    faults = {}
    for text in inject:
        step, _, rest = text.partition(":")
        kind, _, times = rest.partition(":")
        if kind not in ("fail", "fail-once", "timeout", "throttle", "crash") or "." not in step:
            raise click.BadParameter(
                f"{text!r}: write STEP:FAULT, e.g. orders-db.restore:fail (faults: fail, fail-once, timeout, "
                "throttle[:N], crash)",
                param_hint="--inject",
            )
        faults[step] = Fault(step, kind, int(times) if times.isdigit() else 3)  # type: ignore[arg-type]
    return faults


@click.command()
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(exists=True, dir_okay=False),
    shell_complete=complete_plan_files,
    help="The plan, when it moved since the run started (its SHA-256 must be the same).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation before carrying a recovery on.")
@click.option(
    "--keep", is_flag=True, help="Drills: leave the restored resources (drplan cleanup RUN_ID removes them)."
)
@click.option("--report-dir", type=click.Path(file_okay=False), help="Drills: where to write the evidence.")
@run_options
def resume(
    run_id: str, plan_path: str | None, yes: bool, keep: bool, report_dir: str | None, **opts: Any
) -> None:
    """Carry on a recovery or drill whose process died, from its journal.

    Steps that succeeded are not run again; steps that started are re-attached to their AWS jobs
    by the ids, tokens and names in the journal, never started twice; steps that failed stay
    failed. A drill then cleans up and writes its evidence as usual. Notifications and a drill's
    Pushgateway go where the run's start went, unless given again. Exit codes as for recover and
    drill; 0 with nothing done when the run had finished.

    \b
    Examples:
      drplan resume 3f9c2a71
      drplan resume 3f9c2a71 --plan plans/webshop.json --yes
      drplan resume 3f9c2a71 --state s3://dr-state/webshop
    """
    _resume_run(run_id, plan_path, confirm=not yes, keep=keep, report_dir=report_dir, **opts)


def _resume_run(run_id: str, plan_path: str | None, *, confirm: bool, **opts: Any) -> None:
    from drplan.engine.journal import load_journal
    from drplan.errors import UsageError

    shared = s3_state(opts["state_url"], opts, opts["state_dir"])
    if shared is not None:
        shared.pull_run(run_id)
        opts["state_dir"] = str(shared.local)
    state = load_journal(opts["state_dir"], run_id)
    for problem in state.damage:
        warn(f"journal of run {run_id} is damaged: {problem}")
    if state.finished is not None:
        say(
            f"run {run_id} finished ({state.finished.get('status')}, exit {state.finished.get('exit_code')}): "
            "nothing to resume",
            always=True,
        )
        sys.exit(0)
    if not state.header:
        raise UsageError(
            f"the journal of run {run_id} has lost its header: it cannot be resumed",
            hint=f"drplan cleanup {run_id}",
        )
    if state.header.get("sandbox"):
        raise UsageError(
            f"run {run_id} ran in the sandbox, which stopped with its process: there is nothing to carry on"
        )
    if state.header.get("engine") == "stepfunctions":  # its steps run in AWS: resuming here would redo them
        arn = state.header.get("execution_arn")
        raise UsageError(
            f"run {run_id} is a Step Functions execution ({arn}): it runs in AWS, not in a drplan process",
            hint=f"follow it with drplan start PLAN --engine stepfunctions --follow-only {arn}",
        )
    path = plan_path or str(state.header.get("plan_path"))
    mode = str(state.header.get("mode"))
    if opts["ungraceful"] and not state.header.get("ungraceful"):
        raise UsageError(
            f"run {run_id} started without --ungraceful: resume carries it on as it started "
            "(a step already under way cannot change its action)",
            hint="let it finish, or roll it back, then start an ungraceful recovery",
        )
    opts["ungraceful"] = bool(state.header.get("ungraceful"))
    opts["region"] = opts["region"] or state.header.get("region")
    opts["endpoint_url"] = opts["endpoint_url"] or state.header.get("endpoint_url")
    opts["parallelism"] = opts["parallelism"] or state.header.get("parallelism")
    opts["notify"] = opts["notify"] or _recorded_notify(state.header)
    if mode == "drill":
        opts["pushgateway"] = opts.get("pushgateway") or state.header.get("pushgateway")
    _run(path, mode, confirm=mode == "recover" and confirm, resume=state, **opts)


def _recorded_notify(header: dict[str, Any]) -> tuple[Any, ...]:
    """The ``--notify`` targets the run started with, so that its end is announced where its start
    was; a target that no longer works (its variable unset) is a warning, not a reason to leave
    the run unfinished."""
    from drplan.notify import NotifyConfigError, parse_target

    targets = []
    for spec in header.get("notify") or []:
        try:
            targets.append(parse_target(str(spec)))
        except NotifyConfigError as exc:
            warn(f"not notifying {spec} as the run started doing: {exc}")
    if header.get("notify_unrecorded"):
        warn(
            f"{header['notify_unrecorded']} webhook(s) the run notified were given by URL, which is not "
            "recorded (it is a secret): pass --notify again to notify them"
        )
    return tuple(targets)


#: Set by a crash rehearsal for its child process: the run id the child's drill must use.
CRASH_REHEARSAL_RUN_ID = "DRPLAN_CRASH_REHEARSAL_RUN_ID"


def _rehearse_crash(
    plan_path: str,
    crashes: dict[str, Any],
    faults: dict[str, Any],
    keep: bool,
    report_dir: str | None,
    pushgateway: str | None,
    opts: dict[str, Any],
) -> None:
    """Fault rehearsal of losing the orchestrator (``crash``): the drill runs in a child process,
    which kills itself (SIGKILL) once a crashing step has started; this process then resumes the
    run from its journal, as an operator would with ``drplan resume``, so re-attaching to AWS jobs,
    cleanup and evidence after a lost process are drilled too. Never returns."""
    import signal
    import subprocess

    from drplan.engine.prepare import new_run_id
    from drplan.engine.signals import SIGNALS

    run_id = new_run_id()
    steps = ", ".join(sorted(crashes))
    say(f"fault rehearsal: drill {run_id} runs in a child process that is killed once {steps} has started")
    child = subprocess.Popen(
        [sys.executable, "-m", "drplan", *invocation()], env={**os.environ, CRASH_REHEARSAL_RUN_ID: run_id}
    )
    # The child handles signals itself (cleanup, evidence): pass them on, and wait for it; dying
    # here (or Python killing the child, as subprocess.run does on Ctrl-C) would cut its cleanup short.
    forward = {sig: signal.signal(sig, lambda s, _: child.send_signal(s)) for sig in SIGNALS}
    try:
        code = child.wait()
    finally:
        for sig, handler in forward.items():
            signal.signal(sig, handler)
    if code != -signal.SIGKILL:
        say(
            f"fault rehearsal: the drill ended before it crashed (exit {code}): nothing to resume",
            always=True,
        )
        sys.exit(code if code >= 0 else EXIT_INTERRUPTED)
    say(f"fault rehearsal: the drill's process was killed as injected; resuming run {run_id}")
    opts = {**opts, "approve": tuple(opts["approve"])}
    _resume_run(
        run_id,
        plan_path,
        confirm=False,
        keep=keep,
        report_dir=report_dir,
        pushgateway=pushgateway,
        faults=faults,
        **opts,
    )
    sys.exit(EXIT_INTERRUPTED)  # not reached: _resume_run exits with the run's code


def _run(
    plan_path: str,
    mode: str,
    *,
    confirm: bool,
    rollback_on_failure: bool = False,
    despite_unfinished: bool = False,
    keep: bool = False,
    report_dir: str | None = None,
    pushgateway: str | None = None,
    resume: Any = None,
    faults: dict[str, Any] | None = None,
    **opts: Any,
) -> None:
    from drplan.actions.base import Approvals
    from drplan.dryrun import build_dry_run
    from drplan.engine.records import RunOptions
    from drplan.notify import WebhookTarget
    from drplan.pipeline import load_plan
    from drplan.report.dryrun import format_text
    from drplan.runs import RunRequest, run_plan

    plan, _ = load_plan(plan_path)
    run_id = os.environ.get(CRASH_REHEARSAL_RUN_ID)  # set when this process is a rehearsal's drill
    if mode == "drill" and resume is None and run_id is None and not opts.get("sandbox"):
        crashes = {**{f.step: f for f in plan.drill.faults}, **(faults or {})}
        crashes = {k: f for k, f in crashes.items() if f.fault == "crash"}
        if crashes:
            _rehearse_crash(plan_path, crashes, faults or {}, keep, report_dir, pushgateway, opts)
    if resume is not None and plan.sha256 != resume.header.get("plan_sha256"):
        from drplan.errors import UsageError

        raise UsageError(
            f"{plan_path} is not the plan run {resume.run_id} started with (its SHA-256 differs): "
            "resuming it could run other steps than were planned",
            hint="pass --plan with the plan as it was, or clean up with drplan cleanup RUN_ID",
        )
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    dry = build_dry_run(plan, mode, parallelism=opts["parallelism"], ungraceful=opts["ungraceful"])  # type: ignore[arg-type]
    # The same dry run as `drplan plan`; --quiet leaves it out, unless a person is asked to confirm it.
    say(format_text(dry), nl=False, always=confirm)
    if confirm:
        if not interactive:
            fail("refusing to start a real recovery without confirmation: pass --yes", EXIT_USAGE)
        if not click.confirm(f"Start the recovery of {plan.name}?", err=True):
            fail("not started", EXIT_USAGE)

    with ExitStack() as stack:
        aws, sandbox = _aws_session(plan, mode, opts, stack)
        shared = None
        url = opts["state_url"] or plan.run.state
        if url and sandbox is None:
            from drplan.engine.state import S3State

            shared = S3State(url, aws, cache_root=Path(opts["state_dir"]) / "s3")
            opts["state_dir"] = str(shared.local)
        live, progress = _progress([s.key for s in dry.steps], interactive)
        # A person on a terminal is asked about manual steps, with or without the live table.
        prompt = _prompt_on_tty(live.pause, live.resume) if live is not None else None
        if live is None and interactive:
            prompt = _prompt_on_tty()
        options = RunOptions(
            fail_fast=opts["fail_fast"],
            undo_timeout=parse_age(opts["cleanup_timeout"]).total_seconds(),
            approvals=Approvals(
                steps=frozenset(opts["approve"]),
                all=opts["approve_all"],
                prompt=prompt,
            ),
            allow_commands=opts["allow_commands"],
            plan_dir=Path(plan_path).parent,
            faults=faults or {},
            **(sandbox.run_options() if sandbox is not None else {}),
        )
        notify_aws = None
        if sandbox is not None and any(not isinstance(t, WebhookTarget) for t in opts["notify"]):
            # The sandbox emulates the plan's AWS, not the channels people read: notices stay real.
            notify_aws = aws_session(opts, region=aws.region, plan_aws=plan.aws)
        request = RunRequest(
            plan=plan,
            mode=mode,  # type: ignore[arg-type]
            state_dir=Path(opts["state_dir"]),
            options=options,
            parallelism=opts["parallelism"],
            ungraceful=opts["ungraceful"],
            keep=keep,
            rollback_on_failure=rollback_on_failure,
            despite_unfinished=despite_unfinished,
            report_dir=Path(report_dir) if report_dir else None,
            events_path=Path(opts["events_file"]) if opts["events_file"] else None,
            pushgateway=pushgateway,
            sandbox=sandbox is not None,
            run_id=run_id,
            resume=resume,
            state=shared,
            notify=opts["notify"],
            notify_aws=notify_aws,
        )
        try:
            result = run_plan(request, aws, [progress])
        finally:
            if live is not None:
                live.close()
        _render(result, sandbox is not None)
    sys.exit(result.exit_code)


#: What ``--quiet`` still shows of a run's events: failures and problems.
_QUIET_EVENTS = frozenset({"step.failed", "undo.failed", "run.interrupted", "run.problem"})


def _progress(steps: list[str], interactive: bool) -> tuple[Any, Any]:
    """(the live table or None, the event subscriber that shows progress) for the verbosity:
    ``--quiet`` shows only failures and problems, ``--verbose`` one line for every event (also on
    a terminal), else a live table on a terminal and one line per event elsewhere (CI logs)."""
    from drplan.report.progress import LiveProgress, PlainProgress, event_line

    level = verbosity()
    if level <= QUIET or level >= VERBOSE:
        shown = _QUIET_EVENTS if level <= QUIET else None

        def lines(event: Event) -> None:
            # Raises on a closed stream, as PlainProgress does: the run switches the output off
            # and journals that it did (docs/cli.md, "Outputs that stop working").
            if shown is None or event.kind in shown:
                sys.stderr.write(
                    (_handle_line(event) if event.kind == "step.handle" else event_line(event)) + "\n"
                )
                sys.stderr.flush()

        return None, lines
    if not interactive:
        return None, PlainProgress()
    live = LiveProgress(steps)
    if not use_color(stream=sys.stderr):
        live.console.no_color = True  # rich reads NO_COLOR itself; --no-color is drplan's
    return live, live


def _handle_line(event: Event) -> str:
    """``--verbose``: a step's AWS job handle (ids, tokens), as the journal keeps it."""
    import json
    from datetime import datetime

    when = datetime.fromtimestamp(event.time).strftime("%H:%M:%S")
    handle = json.dumps(event.data.get("handle"), sort_keys=True, default=str)
    return f"{when}   {event.step} handle {handle}"


def _render(result: Any, sandbox: bool) -> None:
    """The summary a person reads at the end; the last line agrees with the exit code. With
    ``--quiet``: problems, what is left to clean up, and the last line."""
    from drplan.report.evidence import objectives_text
    from drplan.report.progress import summary_table

    say(
        "\n"
        + summary_table(result.outcome.records, _service_summary(result), started=result.outcome.started),
        nl=False,
    )
    for problem in result.problems:
        warn(problem)
    if result.report is not None:
        say("\n" + objectives_text(result.report), nl=False)
        for check in result.report["verdict"]["unverified"]:
            say(f"not verifiable here: {check['key']}: {check['reason']}")
    if result.prepared.mode == "drill":
        cleanup = result.report["cleanup"] if result.report else None
        if result.cleanup_skipped and sandbox:
            say(f"resources kept ({result.cleanup_skipped}) until the sandbox stops, which is now")
        elif result.cleanup_skipped:
            say(
                f"resources kept ({result.cleanup_skipped}); remove them with: drplan cleanup {result.run_id}",
                always=True,
            )
        elif result.cleanup_failed:
            left = ", ".join(
                f"{r['kind']} {r['id']}" for r in (cleanup or {}).get("resources", []) if not r.get("deleted")
            )
            say(
                f"cleanup INCOMPLETE{', still there: ' + left if left else ''}; retry with: drplan cleanup {result.run_id}",
                always=True,
            )
        if result.evidence_dir is not None:
            say(
                f"report: {result.evidence_dir / 'report.md'} (also report.json, report.html, junit.xml, metrics.prom)"
            )
    elif result.rollback_failed:
        say("rollback INCOMPLETE, could not undo: " + ", ".join(result.rollback_failed), always=True)
    say(f"journal: {result.directory / 'journal.jsonl'}")
    say(result.final_line(), always=True)


def _aws_session(plan: Any, mode: str, opts: dict[str, Any], stack: ExitStack) -> tuple[Any, Any]:
    """The AWS session for the run, and the sandbox when --sandbox (None otherwise)."""

    region = opts["region"] or (plan.drill.region if mode == "drill" else None) or plan.aws.region
    if opts.get("sandbox"):
        from drplan.sandbox import start_sandbox

        say("starting the sandbox (emulated AWS on loopback, seeded from the plan)...")
        sandbox = stack.enter_context(start_sandbox(plan))
        for problem in sandbox.seed_problems:
            warn(problem)
        return sandbox.session(region=region), sandbox
    return aws_session(opts, region=region, plan_aws=plan.aws), None


def _service_summary(result: Any) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = {}
    for key, rec in result.outcome.records.items():
        sid = key.split(".", 1)[0]
        info = services.setdefault(sid, {"status": "succeeded", "back_after": 0.0})
        if rec.status not in ("succeeded", "unverified"):
            info["status"] = rec.status if info["status"] == "succeeded" else info["status"]
            info["back_after"] = None
        elif info["back_after"] is not None and rec.finished is not None:
            info["back_after"] = max(info["back_after"], rec.finished - result.outcome.started)
    return services


@click.command()
@click.argument("plan_name", metavar="PLAN", shell_complete=complete_locked_plans)
@click.option("--state-dir", default=DEFAULT_STATE_DIR, show_default=True, type=click.Path(file_okay=False))
@state_option
@aws_options
@output_options
def unlock(plan_name: str, state_dir: str, state_url: str | None, **aws: Any) -> None:
    """Remove the lock of a plan whose run died (PLAN is the plan's name or its file).

    A run holds a lock on its plan and account so that no second run starts meanwhile; a lock left
    by a process that died expires by itself after 10 minutes. Exit 0 when a lock was removed, 1
    when there was none.

    \b
    Examples:
      drplan unlock webshop
      drplan unlock plans/webshop.json --state s3://dr-state/webshop
    """
    from drplan.engine.lock import read_holder

    name = plan_name
    if Path(plan_name).is_file():
        from drplan.pipeline import load_plan

        name = load_plan(plan_name)[0].name
    shared = s3_state(state_url, aws, state_dir)
    if shared is not None:
        removed = shared.unlock(name)
        for holder in removed:
            say(
                f"removed the lock of {name} in {shared.url}"
                + (f", held by {holder.describe()}" if holder else ""),
                always=True,
            )
        if not removed:
            say(f"no lock for plan {name} in {shared.url}", always=True)
        sys.exit(0 if removed else 1)
    locks = sorted((Path(state_dir) / "locks").glob("*.json"))
    mine = [p for p in locks if p.stem.rsplit("@", 1)[0] == name]
    if not mine:
        say(f"no lock for plan {name} under {state_dir}/locks", always=True)
        sys.exit(1)
    for path in mine:
        holder = read_holder(path)
        path.unlink(missing_ok=True)
        say(f"removed the lock of {name}" + (f", held by {holder.describe()}" if holder else ""), always=True)
    sys.exit(0)


COMMANDS = (recover, drill, resume, unlock)
