"""``drplan check`` (a Nagios/Icinga plugin) and ``drplan dashboard`` (the shipped Grafana dashboard
and Prometheus alert rules): how on-call sees whether recovery is still proven."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from drplan.cli.common import (
    aws_options,
    complete_plan_files,
    emit,
    output_options,
    parse_age,
    s3_state,
    state_option,
)
from drplan.engine.journal import DEFAULT_STATE_DIR

#: The plugin API's exit codes.
UNKNOWN = 3


class PluginCommand(click.Command):
    """A command that answers as a monitoring plugin even when its arguments are wrong: one
    ``DRPLAN UNKNOWN - ...`` line on standard output and exit 3, as the plugin API asks."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            click.echo(f"DRPLAN UNKNOWN - {exc.format_message()}".replace("|", "/"))
            raise click.exceptions.Exit(UNKNOWN) from exc


def _age(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    return parse_age(value) if value is not None else None


@click.command(cls=PluginCommand)
@click.argument("plan_arg", metavar="PLAN", shell_complete=complete_plan_files)
@click.option(
    "--max-age",
    metavar="AGE",
    default="7d",
    show_default=True,
    callback=_age,
    help="CRITICAL when the last drill is older (45m, 12h, 7d, 2w or ISO 8601 such as P7D).",
)
@click.option(
    "--warn-age", metavar="AGE", callback=_age, help="WARNING when the last drill is older than this."
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Judge the plan's sandbox drills instead of its real ones (a CI that drills in the sandbox).",
)
@click.option("--state-dir", default=DEFAULT_STATE_DIR, show_default=True, type=click.Path(file_okay=False))
@state_option
@aws_options
@output_options
def check(
    plan_arg: str,
    max_age: Any,
    warn_age: Any,
    sandbox: bool,
    state_dir: str,
    state_url: str | None,
    **aws: Any,
) -> None:
    """Nagios/Icinga plugin: is the last drill of PLAN recent and passing? (PLAN: its name or file.)

    Reads the run history (as drplan runs does) and prints one line in the monitoring plugin
    format, with performance data (age of the last passing drill, measured RTO and RPO):

    \b
      DRPLAN OK - webshop: last drill 3f9c2a71 passed 2d 3h ago; RTO 48m (objective 2h), ...
        | age=183600s;;604800;0 rto=2880s;;7200;0 rpo=840s;;3600;0

    Exit 0 OK (the last real drill passed, cleaned up, and is younger than --max-age), 1 WARNING
    (older than --warn-age, passed with problems, or a later drill never finished), 2 CRITICAL
    (failed, cleanup incomplete, no drill, or none younger than --max-age), 3 UNKNOWN (the history
    cannot be read, or wrong options).

    \b
    Examples:
      drplan check webshop --max-age 7d --warn-age 5d
      drplan check plans/webshop.json --state s3://dr-state/webshop
    """
    from drplan import health

    name = plan_arg
    try:
        if warn_age is not None and warn_age >= max_age:
            result = health.unknown(name, "--warn-age must be shorter than --max-age")
        else:
            if Path(plan_arg).is_file():
                from drplan.pipeline import load_plan

                plan, _ = load_plan(plan_arg)
                name = plan.name
                state_url = state_url or plan.run.state
            result = _evaluate(name, max_age, warn_age, sandbox, state_dir, state_url, aws)
    except Exception as exc:  # a monitoring plugin answers UNKNOWN, never with a traceback
        from drplan.errors import DrplanError

        what = str(exc) if isinstance(exc, DrplanError) else f"{type(exc).__name__}: {exc}"
        result = health.unknown(name, f"cannot read the run history: {what}".splitlines()[0])
    click.echo(result.line())
    sys.exit(result.state)


def _evaluate(
    name: str,
    max_age: Any,
    warn_age: Any,
    sandbox: bool,
    state_dir: str,
    state_url: str | None,
    aws: dict[str, Any],
) -> Any:
    from drplan import health
    from drplan.history import list_runs

    shared = s3_state(state_url, aws, state_dir)
    where = state_dir
    if shared is not None:
        state_dir = str(shared.pull_all())
        where = str(state_url)
    folder = Path(state_dir)
    if not folder.is_dir():
        return health.unknown(name, f"no state folder {state_dir} (give --state-dir, or --state for S3)")
    runs_dir = folder / "runs"
    if runs_dir.exists() and not runs_dir.is_dir():
        return health.unknown(name, f"{runs_dir} is not a folder")
    if runs_dir.is_dir():
        list(runs_dir.iterdir())  # unreadable (permissions) raises here: UNKNOWN, not "no drill"
    runs = list_runs(folder, plan=name)
    finished = {r.run_id: health.finished_data(folder, r.run_id) for r in runs[-5:]}
    return health.evaluate(
        name,
        runs,
        max_age=max_age,
        warn_age=warn_age,
        sandbox=sandbox,
        in_progress=health.live_runs(folder, name),
        finished=finished,
        where=where,
    )


@click.command()
@click.argument("which", type=click.Choice(["grafana", "prometheus-rules"]))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write it to a file.")
@output_options
def dashboard(which: str, output: str | None) -> None:
    """Print the Grafana dashboard (JSON) or the Prometheus alert rules (YAML) for drill metrics.

    \b
    Examples:
      drplan dashboard grafana -o drplan-dashboard.json      # Grafana: Dashboards > New > Import
      drplan dashboard prometheus-rules -o drplan-rules.yml   # Prometheus: rule_files

    Both read the drplan_drill_* metrics drills write (metrics.prom, --pushgateway); real drills
    only by default (environment="aws"), sandbox drills on request.
    """
    from drplan.monitoring import asset

    emit(asset(which), output)


COMMANDS = (check, dashboard)
