"""``drplan plan`` (dry run) and ``drplan docs`` (runbook): read a plan, change nothing.

``plan`` and objective misses: ``validate`` reports a predicted RTO over an objective as an
error (DR301 for a service, DR302 for the plan). When those are the *only* errors, ``plan``
still shows the dry run (showing why an objective is missed is its job) and exits 1 because the
dry run's verdict is "missed". Any other error means the plan is invalid: its findings are
printed as ``validate`` prints them and the exit code is 1, with no dry run. DR301/DR302 judge a
real recovery; ``plan --mode drill`` judges the drill's own schedule (which skips some steps),
so its verdict, and exit code, can differ. ``docs`` accepts the same plans and always exits 0
when it wrote the runbook (which shows a missed objective in its objectives table).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import click

from drplan.cli.common import aws_options, aws_session, complete_plan_files, emit, output_options, say
from drplan.errors import EXIT_FINDINGS, EXIT_OK
from drplan.pipeline import OBJECTIVE_CODES

if TYPE_CHECKING:
    from drplan.engine.preflight import PreflightReport
    from drplan.model import Plan
    from drplan.pipeline import Compiled


_plan_argument = click.argument(
    "plan", type=click.Path(exists=True, dir_okay=False, allow_dash=True), shell_complete=complete_plan_files
)
_mode_option = click.option(
    "--mode",
    type=click.Choice(["recover", "drill"]),
    default="recover",
    show_default=True,
    help="Show a real recovery, or a drill (isolated names, steps that change production skipped).",
)
_output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to a file, not standard output.",
)
_date_option = click.option(
    "--date", is_flag=True, help="Include the date and time (default: reproducible output)."
)
_parallelism_option = click.option(
    "--parallelism",
    type=click.IntRange(1, 256),
    help="Predict with this many steps at once, as `--parallelism` of a run would (default: the plan's "
    "run.parallelism, else 16).",
)


def _load(path: str) -> tuple[Plan, Compiled | None]:
    """The plan, when its only errors (if any) are missed objectives, and what validating it
    compiled (the dry run reuses it); raises PlanInvalid otherwise."""
    from drplan.pipeline import load_plan

    loaded, result = load_plan(path, allow=OBJECTIVE_CODES)
    for d in result.warnings:
        say(f"{d.file}:{d.line}:{d.column}: {d.severity} {d.code} {d.message}", always=True)
    return loaded, result.compiled


def _now(date: bool) -> datetime | None:
    return datetime.now(timezone.utc) if date else None


@click.command(name="plan")
@_plan_argument
@_mode_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="text for people, json to commit and diff, markdown for a pull-request comment.",
)
@_output_option
@_date_option
@_parallelism_option
@click.option(
    "--preflight",
    is_flag=True,
    help="Also check every step against AWS, read-only: backups exist, their age vs the RPO, target names free.",
)
@click.option("--sandbox", is_flag=True, help="With --preflight: check against the embedded AWS emulator.")
@click.option(
    "--ungraceful",
    is_flag=True,
    help="Show the run `recover --ungraceful` would make (each step's variant for a primary Region that is down).",
)
@aws_options
@output_options
@click.pass_context
def plan(
    ctx: click.Context,
    /,
    plan: str,
    mode: str,
    fmt: str,
    output: str | None,
    date: bool,
    parallelism: int | None,
    preflight: bool,
    sandbox: bool,
    ungraceful: bool,
    **aws: str | None,
) -> None:
    """Dry run: show what a recovery would do, in order, and whether it meets its objectives.

    Touches nothing and needs no AWS credentials. Lists every step that would run with its
    resolved parameters, wave and predicted start and finish (critical path marked), then the
    predicted RTO of each service and of the plan against their objectives. Exit 0 when every
    objective would be met, 1 when one would be missed or the plan is invalid.

    With --preflight it also makes read-only AWS calls (Describe/List/Get only; the session
    refuses anything else) and exits 1 when a check fails.

    \b
    Examples:
      drplan plan plans/webshop.json
      drplan plan plans/webshop.json --mode drill --format markdown -o plan.md
      drplan plan plans/webshop.json --preflight --region eu-west-1
    """
    from drplan.dryrun import build_dry_run
    from drplan.report.dryrun import FORMATS

    loaded, compiled = _load(plan)
    dry = build_dry_run(
        loaded,
        mode,  # type: ignore[arg-type]
        generated_at=_now(date),
        parallelism=parallelism,
        compiled=compiled,
        ungraceful=ungraceful,
    )
    failed = False
    if preflight:
        report = _preflight(loaded, mode, sandbox, aws, ungraceful)
        dry = dry.with_preflight(report.results)
        failed = not report.ok
    elif sandbox:
        raise click.UsageError("--sandbox goes with --preflight (the dry run itself needs no AWS)")
    emit(FORMATS[fmt](dry), output)
    ctx.exit(EXIT_OK if dry.ok and not failed else EXIT_FINDINGS)


def _preflight(
    loaded: Plan, mode: str, sandbox: bool, aws: dict[str, str | None], ungraceful: bool
) -> PreflightReport:
    from contextlib import ExitStack

    from drplan.actions import registry
    from drplan.engine.preflight import run_preflight
    from drplan.engine.prepare import new_run_id, prepare
    from drplan.engine.records import RunOptions

    # A drill's names are checked as a real drill would make them: with a run id, not a placeholder.
    prepared = prepare(loaded, mode, registry(), run_id=new_run_id(), ungraceful=ungraceful)  # type: ignore[arg-type]
    region = aws["region"] or prepared.region
    with ExitStack() as stack:
        options = RunOptions()
        if sandbox:
            from drplan.sandbox import start_sandbox

            box = stack.enter_context(start_sandbox(loaded))
            session = box.session(region=region, read_only=True)
            options = RunOptions(**box.run_options())
        else:
            session = aws_session(aws, region=region, plan_aws=loaded.aws, read_only=True)
            session.external_ids = loaded.external_ids()
        session.guard_account(loaded.aws.account_id)
        return run_preflight(prepared, session, options)


@click.command()
@_plan_argument
@_mode_option
@_output_option
@_date_option
@_parallelism_option
@click.option(
    "--no-diagram", is_flag=True, help="Leave out the Mermaid diagram (for viewers without Mermaid)."
)
@output_options
def docs(
    plan: str, mode: str, output: str | None, date: bool, parallelism: int | None, no_diagram: bool
) -> None:
    """Write a Markdown runbook a person can follow with the tooling down (exit 0).

    Contacts, objectives, the order of recovery, every step in plain words with its estimate,
    timeout, parameters and checks, manual steps highlighted, and a Mermaid diagram.

    \b
    Examples:
      drplan docs plans/webshop.json -o RUNBOOK.md
      drplan docs plans/webshop.json --mode drill --no-diagram
    """
    from drplan.dryrun import build_dry_run
    from drplan.report.runbook import render_runbook

    loaded, compiled = _load(plan)
    dry = build_dry_run(loaded, mode, generated_at=_now(date), parallelism=parallelism, compiled=compiled)  # type: ignore[arg-type]
    emit(render_runbook(dry, diagram=not no_diagram), output)


COMMANDS = (plan, docs)
