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
from drplan.engine.journal import DEFAULT_STATE_DIR
from drplan.errors import EXIT_FINDINGS, EXIT_USAGE

_PROMPT_LOCK = threading.Lock()


def run_options(func: Any) -> Any:
    options = [
        click.option(
            "--parallelism",
            type=click.IntRange(1, 256),
            default=16,
            show_default=True,
            help="Steps running at once.",
        ),
        click.option("--fail-fast", is_flag=True, help="Start no new step after the first failure."),
        click.option(
            "--approve",
            "approve",
            multiple=True,
            metavar="STEP",
            help="Approve this manual step up front (repeatable).",
        ),
        click.option(
            "--allow-commands", is_flag=True, help="Allow `command` steps (the plan must allow them too)."
        ),
        click.option(
            "--events",
            "events_file",
            type=click.Path(dir_okay=False, writable=True),
            help="Write every event as a JSON line to FILE.",
        ),
        click.option(
            "--state-dir",
            default=DEFAULT_STATE_DIR,
            show_default=True,
            type=click.Path(file_okay=False),
            help="Where run journals and reports go.",
        ),
        click.option(
            "--sandbox", is_flag=True, help="Run against the embedded AWS emulator (no AWS account needed)."
        ),
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
@click.option(
    "--rollback-on-failure",
    is_flag=True,
    help="When the run fails, undo the completed steps in reverse order.",
)
@run_options
def recover(plan_path: str, yes: bool, rollback_on_failure: bool, **opts: Any) -> None:
    """Restore the plan's services for real, in dependency order, to the names the plan gives.

    Shows the dry run first and asks for confirmation (--yes skips it). Exit 0 when every step
    succeeded, 1 when a step failed, 3 when interrupted or when --rollback-on-failure could not undo
    every completed step.
    """
    _run(
        plan_path,
        "recover",
        yes=yes,
        rollback_on_failure=rollback_on_failure,
        keep=False,
        report_dir=None,
        **opts,
    )


def _run(
    plan_path: str,
    mode: str,
    *,
    yes: bool,
    rollback_on_failure: bool,
    keep: bool,
    report_dir: str | None,
    **opts: Any,
) -> None:
    from drplan.dryrun import build_dry_run
    from drplan.engine.events import JsonLinesWriter
    from drplan.engine.lifecycle import execute
    from drplan.engine.runner import RunOptions
    from drplan.pipeline import load_plan
    from drplan.report.dryrun import format_text
    from drplan.report.progress import LiveProgress, PlainProgress, summary_table

    plan, _ = load_plan(plan_path)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    dry = build_dry_run(plan, mode)  # type: ignore[arg-type]
    click.echo(format_text(dry), err=True, nl=False)  # the same dry run as `drplan plan`
    if mode == "recover" and not yes:
        if not interactive:
            fail("refusing to start a real recovery without confirmation: pass --yes", EXIT_USAGE)
        if not click.confirm(f"Start the recovery of {plan.name}?", err=True):
            fail("not started", EXIT_USAGE)

    with ExitStack() as stack:
        aws, sandbox = _aws_session(plan, mode, opts, stack)
        subscribers: list[Any] = []
        live = None
        if interactive:
            live = LiveProgress([s.key for s in dry.steps])
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
            prompt=_prompt_on_tty(live.pause if live else None, live.resume if live else None)
            if interactive
            else None,
            plan_dir=str(Path(plan_path).parent),
            address_map=sandbox.address_map if sandbox is not None else None,
            context_options=sandbox.context_options if sandbox is not None else {},
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
        click.echo(
            "\n" + summary_table(result.outcome.records, services, started=result.outcome.started),
            err=True,
            nl=False,
        )
        exit_code = result.exit_code
        if mode == "drill":
            exit_code = _drill_evidence(result, report_dir, opts, sandbox is not None)
        else:
            if result.rollback_failed:
                click.echo(
                    "rollback INCOMPLETE, could not undo: " + ", ".join(result.rollback_failed), err=True
                )
            click.echo(f"journal: {result.directory / 'journal.jsonl'}", err=True)
    sys.exit(exit_code)


def _drill_evidence(result: Any, report_dir: str | None, opts: dict[str, Any], sandbox: bool) -> int:
    """Write the evidence files, print the objectives table; the drill's exit code."""
    from drplan.evidence import build_report
    from drplan.report.evidence import objectives_text, push_metrics, write_evidence

    report = build_report(result, sandbox=sandbox)
    directory = Path(report_dir) if report_dir else result.directory / "report"
    mermaid, svg = _diagrams(result)
    last_success = _last_success(Path(opts["state_dir"]), report)
    write_evidence(report, directory, mermaid=mermaid, svg=svg, last_success=last_success)
    click.echo("\n" + objectives_text(report), err=True, nl=False)
    verdict = report["verdict"]
    click.echo(("PASSED" if verdict["passed"] else "FAILED: " + "; ".join(verdict["reasons"])), err=True)
    cleanup = report["cleanup"]
    if cleanup["status"] == "skipped" and sandbox:
        click.echo(f"resources kept ({cleanup['reason']}) until the sandbox stops, which is now", err=True)
    elif cleanup["status"] == "skipped":
        click.echo(
            f"resources kept ({cleanup['reason']}); remove them with: drplan cleanup {result.run_id}",
            err=True,
        )
    elif cleanup["status"] == "incomplete":
        left = ", ".join(f"{r['kind']} {r['id']}" for r in cleanup["resources"] if not r.get("deleted"))
        click.echo(
            f"cleanup INCOMPLETE, still there: {left}; retry with: drplan cleanup {result.run_id}", err=True
        )
    click.echo(
        f"report: {directory / 'report.md'} (also report.json, report.html, junit.xml, metrics.prom)",
        err=True,
    )
    if opts.get("pushgateway"):
        try:
            push_metrics(report, opts["pushgateway"], last_success=last_success)
        except OSError as exc:
            click.echo(f"drplan: warning: could not push metrics to {opts['pushgateway']}: {exc}", err=True)
    if result.exit_code:
        return int(result.exit_code)
    return 0 if verdict["passed"] else EXIT_FINDINGS


def _last_success(state_dir: Path, report: dict[str, Any]) -> str | None:
    """When this plan's last passing drill started: recorded on a pass, read back after a failure
    (metrics.prom of a failed drill still carries it for "time since last success" alerts)."""
    marker = state_dir / "plans" / report["plan"]["name"] / "last-success"
    if report["verdict"]["passed"] and not report["environment"]["sandbox"]:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(report["run"]["started"] + "\n", encoding="utf-8")
        return str(report["run"]["started"])
    try:
        return marker.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _diagrams(result: Any) -> tuple[str | None, str | None]:
    """Mermaid for the Markdown report; SVG for the HTML report when Graphviz is installed."""
    from drplan.actions import registry
    from drplan.errors import GraphvizMissing
    from drplan.graph import analyse
    from drplan.render.dot import render_dot
    from drplan.render.graphviz import render
    from drplan.render.mermaid import render_mermaid

    rg = result.prepared.graph
    analysis = analyse(rg, registry(), result.prepared.limits)
    mermaid = render_mermaid(rg, analysis)
    try:
        svg = render(render_dot(rg, analysis, sha256=result.prepared.plan.sha256), "svg").decode("utf-8")
    except GraphvizMissing:
        svg = None
    return mermaid, svg


def _aws_session(plan: Any, mode: str, opts: dict[str, Any], stack: ExitStack) -> tuple[Any, Any]:
    """The AWS session for the run, and the sandbox when --sandbox (None otherwise)."""
    from drplan.aws import AwsSession

    region = opts["region"] or (plan.drill.region if mode == "drill" else None) or plan.aws.region
    if opts.get("sandbox"):
        from drplan.sandbox import start_sandbox

        click.echo("starting the sandbox (emulated AWS on loopback, seeded from the plan)...", err=True)
        sandbox = stack.enter_context(start_sandbox(plan))
        return sandbox.session(region=region), sandbox
    session = AwsSession(
        region=region,
        profile=opts["profile"] or plan.aws.profile,
        role_arn=opts["role_arn"] or plan.aws.role_arn,
        endpoint_url=opts["endpoint_url"],
    )
    return session, None


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


@click.command()
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False))
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
@click.option("--yes", "-y", is_flag=True, help="Approve every manual step.")
@run_options
def drill(
    plan_path: str, keep: bool, report_dir: str | None, pushgateway: str | None, yes: bool, **opts: Any
) -> None:
    """Restore the plan into isolated, tagged copies, verify them, measure RTO and RPO, clean up.

    Writes evidence (report.json, report.md, report.html, junit.xml, metrics.prom) even when the
    drill fails. Exit 0 when every objective was met, 1 when a step failed or an objective was
    missed, 3 when interrupted or when cleanup could not remove everything.
    """
    _run(
        plan_path,
        "drill",
        yes=yes,
        rollback_on_failure=False,
        keep=keep,
        report_dir=report_dir,
        pushgateway=pushgateway,
        **opts,
    )


def parse_age(text: str) -> Any:
    """``1d``, ``12h``, ``30m``, ``45s`` or an ISO 8601 duration (``P1D``)."""
    import re
    from datetime import timedelta

    from drplan.durations import parse_duration

    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
        return timedelta(**{unit: int(match[1])})
    try:
        return parse_duration(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an age such as 1d, 12h, 30m or P1D") from None


@click.command()
@click.argument("run_id", required=False)
@click.option(
    "--sweep",
    is_flag=True,
    help="Instead of one run: find drill resources by their drplan tags in the region.",
)
@click.option(
    "--older-than",
    "older",
    help="With --sweep: only resources created more than this long ago (1d, 12h, P1D).",
)
@click.option("--plan", "plan_name", help="With --sweep: only resources of this plan.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--state-dir", default=DEFAULT_STATE_DIR, show_default=True, type=click.Path(file_okay=False))
@aws_options
def cleanup(
    run_id: str | None,
    sweep: bool,
    older: str | None,
    plan_name: str | None,
    dry_run: bool,
    state_dir: str,
    **opts: Any,
) -> None:
    """Remove what a drill left behind: by RUN_ID (from its journal), or by tag with --sweep.

    Only resources recorded as created by the run, or tagged drplan:mode=drill, are touched; each
    deletion is verified. Exit 0 when everything is gone, 3 when something remains.
    """
    from drplan.engine.sweep import remove
    from drplan.errors import EXIT_INTERRUPTED

    if bool(run_id) == sweep:
        raise click.UsageError("give either a RUN_ID or --sweep")
    if older and not sweep:
        raise click.UsageError("--older-than goes with --sweep")
    if sweep:
        aws, resources = _sweep_targets(opts, parse_age(older) if older else None, plan_name, older)
        record = None
    else:
        aws, resources, record = _run_targets(opts, state_dir, str(run_id))
    for r in resources:
        click.echo(f"  {r.kind} {r.id} ({r.region})", err=True)
    if dry_run or not resources:
        sys.exit(0)
    results = remove(aws, resources)
    for x in results:
        outcome = "removed" if x.removed else "NOT removed"
        click.echo(
            f"  {outcome}: {x.resource.kind} {x.resource.id}" + (f" ({x.error})" if x.error else ""), err=True
        )
    if record is not None:
        record([x.resource for x in results if x.removed])
    left = [x for x in results if not x.removed]
    if left:
        click.echo(f"{len(left)} resource(s) remain", err=True)
        sys.exit(EXIT_INTERRUPTED)
    click.echo("everything removed", err=True)
    sys.exit(0)


def _sweep_targets(
    opts: dict[str, Any], age: Any, plan_name: str | None, older: str | None
) -> tuple[Any, list[Any]]:
    """Drill resources found by their drplan tags in the region (optionally older than ``age``)."""
    from drplan.aws import AwsSession
    from drplan.engine.sweep import find_drill_resources, older_than

    aws = AwsSession(
        region=opts["region"],
        profile=opts["profile"],
        role_arn=opts["role_arn"],
        endpoint_url=opts["endpoint_url"],
    )
    region = aws.region_of(None)
    found = find_drill_resources(aws, region, plan=plan_name)
    if age is not None:
        found = older_than(found, age)
    click.echo(
        f"{len(found)} drill resource(s) in {region}" + (f" older than {older}" if older else ""), err=True
    )
    return aws, [f.resource for f in found]


def _run_targets(opts: dict[str, Any], state_dir: str, run_id: str) -> tuple[Any, list[Any], Any]:
    """What the run's journal says it created and was not verified removed, and a function that
    appends the removals to the journal (so the next cleanup knows)."""
    from drplan.aws import AwsSession
    from drplan.engine.events import EventBus
    from drplan.engine.journal import Journal, load_journal, run_dir

    state = load_journal(state_dir, run_id)
    aws = AwsSession(
        region=opts["region"] or state.header.get("region"),
        profile=opts["profile"],
        role_arn=opts["role_arn"],
        endpoint_url=opts["endpoint_url"],
    )
    remaining = state.remaining()
    step_of = {(r.kind, r.id): step for step, r in remaining}
    click.echo(f"run {run_id}: {len(remaining)} resource(s) not yet removed", err=True)

    def record(removed: list[Any]) -> None:
        bus = EventBus(run_id)
        journal = Journal(run_dir(state_dir, run_id) / "journal.jsonl")
        bus.subscribe(journal)
        for resource in removed:
            bus.emit(
                "undo.succeeded",
                step_of.get((resource.kind, resource.id)),
                resources=[resource.to_json()],
                reason="drplan cleanup",
            )
        journal.close()

    return aws, [r for _, r in remaining], record


COMMANDS = (recover, drill, cleanup)
