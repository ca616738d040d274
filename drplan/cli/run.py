"""``drplan recover`` (the real thing), ``drplan drill`` and ``drplan cleanup``: commands that touch AWS."""

from __future__ import annotations

import select
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from drplan.cli.common import aws_options, fail
from drplan.errors import EXIT_USAGE

_PROMPT_LOCK = threading.Lock()


def run_options(func: Any) -> Any:
    options = [
        click.option("--parallelism", type=click.IntRange(1, 256), default=16, show_default=True, help="Steps running at once."),
        click.option("--fail-fast", is_flag=True, help="Start no new step after the first failure."),
        click.option("--approve", "approve", multiple=True, metavar="STEP", help="Approve this manual step up front (repeatable)."),
        click.option("--allow-commands", is_flag=True, help="Allow `command` steps (the plan must allow them too)."),
        click.option("--events", "events_file", type=click.Path(dir_okay=False, writable=True), help="Write every event as a JSON line to FILE."),
        click.option("--state-dir", default=".drplan", show_default=True, type=click.Path(file_okay=False), help="Where run journals and reports go."),
        click.option("--sandbox", is_flag=True, help="Run against the embedded AWS emulator (no AWS account needed)."),
    ]
    for option in reversed(options):
        func = option(func)
    return aws_options(func)


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
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation; approve every manual step.")
@click.option("--rollback-on-failure", is_flag=True, help="When the run fails, undo the completed steps in reverse order.")
@run_options
def recover(plan_path: str, yes: bool, rollback_on_failure: bool, **opts: Any) -> None:
    """Restore the plan's services for real, in dependency order, to the names the plan gives.

    Shows the dry run first and asks for confirmation (--yes skips it). Exit 0 when every step
    succeeded, 1 when a step failed, 3 when interrupted.
    """
    _run(plan_path, "recover", yes=yes, rollback_on_failure=rollback_on_failure, keep=False, report_dir=None, **opts)


def _run(plan_path: str, mode: str, *, yes: bool, rollback_on_failure: bool, keep: bool, report_dir: str | None, **opts: Any) -> None:
    from drplan.engine.events import JsonLinesWriter
    from drplan.engine.lifecycle import execute
    from drplan.engine.runner import RunOptions
    from drplan.pipeline import load_plan
    from drplan.report.progress import LiveProgress, PlainProgress, summary_table

    plan, _ = load_plan(plan_path)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    click.echo(_dry_run_text(plan, mode), err=True, nl=False)
    if mode == "recover" and not yes:
        if not interactive:
            fail("refusing to start a real recovery without confirmation: pass --yes", EXIT_USAGE)
        if not click.confirm(f"Start the recovery of {plan.name}?", err=True):
            fail("not started", EXIT_USAGE)

    with ExitStack() as stack:
        aws = _aws_session(plan, opts, stack)
        subscribers: list[Any] = []
        live = None
        if interactive:
            from drplan.engine.prepare import prepare
            from drplan.actions import registry

            live = LiveProgress(list(prepare(plan, mode, registry()).steps))  # type: ignore[arg-type]
            subscribers.append(live)
        else:
            subscribers.append(PlainProgress())
        if opts["events_file"]:
            stream = stack.enter_context(open(opts["events_file"], "w", encoding="utf-8"))
            subscribers.append(JsonLinesWriter(stream))
        options = RunOptions(
            parallelism=opts["parallelism"],
            fail_fast=opts["fail_fast"],
            approve=frozenset(opts["approve"]),
            yes=yes,
            allow_commands=opts["allow_commands"],
            prompt=_prompt_on_tty(live.pause if live else None, live.resume if live else None) if interactive else None,
            plan_dir=str(Path(plan_path).parent),
        )
        result = execute(
            plan,
            mode,  # type: ignore[arg-type]
            aws,
            state_dir=opts["state_dir"],
            options=options,
            subscribers=subscribers,
            keep=keep,
            rollback_on_failure=rollback_on_failure,
        )
        services = _service_summary(result)
        click.echo("\n" + summary_table(result.outcome.records, services, started=result.outcome.started), err=True, nl=False)
        click.echo(f"journal: {result.directory / 'journal.jsonl'}", err=True)
        sys.exit(result.exit_code)


def _aws_session(plan: Any, opts: dict[str, Any], stack: ExitStack) -> Any:
    from drplan.aws import AwsSession

    endpoint = opts["endpoint_url"]
    if opts.get("sandbox"):
        from drplan.sandbox import start_sandbox

        sandbox = stack.enter_context(start_sandbox(plan))
        endpoint = sandbox.endpoint_url
    return AwsSession(
        region=opts["region"] or plan.aws.region,
        profile=None if opts.get("sandbox") else (opts["profile"] or plan.aws.profile),
        role_arn=None if opts.get("sandbox") else (opts["role_arn"] or plan.aws.role_arn),
        endpoint_url=endpoint,
    )


def _service_summary(result: Any) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = {}
    for key, rec in result.outcome.records.items():
        sid = key.split(".", 1)[0]
        info = services.setdefault(sid, {"status": "succeeded", "back_after": 0.0})
        if rec.status != "succeeded":
            info["status"] = rec.status if info["status"] == "succeeded" else info["status"]
            info["back_after"] = None
        elif info["back_after"] is not None and rec.finished is not None:
            info["back_after"] = max(info["back_after"], rec.finished - result.outcome.started)
    return services


def _dry_run_text(plan: Any, mode: str) -> str:
    """What will run, in order, with predicted times (the same planning code as `drplan plan`)."""
    from drplan.actions import registry
    from drplan.durations import humanize
    from drplan.engine.prepare import prepare
    from drplan.graph import analyse

    prepared = prepare(plan, mode, registry())  # type: ignore[arg-type]
    analysis = analyse(prepared.graph, registry())
    lines = [f"{mode} of plan {plan.name}: {len(prepared.steps)} steps, predicted {humanize(analysis.predicted_rto)}"]
    for key, timing in analysis.steps.items():
        step = prepared.steps[key]
        mark = "*" if timing.critical else " "
        lines.append(f" {mark} wave {timing.wave:<3} +{humanize(timing.earliest_start):>7}  {key}: {step.action.describe(step.params)}")
    for key, reason in prepared.skipped.items():
        lines.append(f"   skipped  {key}: {reason}")
    return "\n".join(lines) + "\n"


COMMANDS = (recover,)
