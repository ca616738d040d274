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

from drplan.cli.common import emit
from drplan.errors import EXIT_FINDINGS, EXIT_OK, PlanInvalid

if TYPE_CHECKING:
    from drplan.model import Plan

#: Findings ``plan`` shows as a missed objective in the dry run rather than refusing the plan.
OBJECTIVE_CODES = frozenset({"DR301", "DR302"})

_plan_argument = click.argument("plan", type=click.Path(exists=True, dir_okay=False))
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


def _load(path: str) -> Plan:
    """The plan, when its only errors (if any) are missed objectives; raises PlanInvalid otherwise."""
    from drplan.pipeline import validate_file

    result = validate_file(path)
    blocking = [d for d in result.errors if d.code not in OBJECTIVE_CODES]
    if result.plan is None or blocking:
        count = len(result.errors)
        findings: list[object] = list(result.diagnostics)
        raise PlanInvalid(f"{result.path}: the plan has {count} error{'s' if count != 1 else ''}", findings)
    for d in result.warnings:
        click.echo(f"{d.file}:{d.line}:{d.column}: {d.severity} {d.code} {d.message}", err=True)
    return result.plan


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
@click.pass_context
def plan(ctx: click.Context, plan: str, mode: str, fmt: str, output: str | None, date: bool) -> None:
    """Dry run: show what a recovery would do, in order, and whether it meets its objectives.

    Touches nothing and needs no AWS credentials. Lists every step that would run with its
    resolved parameters, wave and predicted start and finish (critical path marked), then the
    predicted RTO of each service and of the plan against their objectives. Exit 0 when every
    objective would be met, 1 when one would be missed or the plan is invalid.
    """
    from drplan.dryrun import build_dry_run
    from drplan.report.dryrun import FORMATS

    dry = build_dry_run(_load(plan), mode, generated_at=_now(date))  # type: ignore[arg-type]
    emit(FORMATS[fmt](dry), output)
    ctx.exit(EXIT_OK if dry.ok else EXIT_FINDINGS)


@click.command()
@_plan_argument
@_mode_option
@_output_option
@_date_option
@click.option(
    "--no-diagram", is_flag=True, help="Leave out the Mermaid diagram (for viewers without Mermaid)."
)
def docs(plan: str, mode: str, output: str | None, date: bool, no_diagram: bool) -> None:
    """Write a Markdown runbook a person can follow with the tooling down (exit 0).

    Contacts, objectives, the order of recovery, every step in plain words with its estimate,
    timeout, parameters and checks, manual steps highlighted, and a Mermaid diagram.
    """
    from drplan.dryrun import build_dry_run
    from drplan.report.runbook import render_runbook

    dry = build_dry_run(_load(plan), mode, generated_at=_now(date))  # type: ignore[arg-type]
    emit(render_runbook(dry, diagram=not no_diagram), output)


COMMANDS = (plan, docs)
