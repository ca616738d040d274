"""``drplan runs``, ``drplan show`` and ``drplan calibrate``: the history of runs, from their journals."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from drplan.cli.common import (
    aws_options,
    complete_run_ids,
    emit,
    output_options,
    plan_path_argument,
    s3_state,
    say,
    state_option,
)
from drplan.engine.journal import DEFAULT_STATE_DIR


def _state_option(func: Any) -> Any:
    func = click.option(
        "--state-dir", default=DEFAULT_STATE_DIR, show_default=True, type=click.Path(file_okay=False)
    )(func)
    return output_options(state_option(aws_options(func)))


@click.command()
@click.option("--plan", "plan_name", help="Only runs of this plan (its name).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_state_option
def runs(plan_name: str | None, fmt: str, state_dir: str, state_url: str | None, **aws: Any) -> None:
    """List runs, oldest first: when, who, mode, plan hash and commit, verdict, measured RTO/RPO.

    A run whose process died shows as `unfinished`: resume it (drplan resume RUN_ID) or, for a
    drill, clean up after it (drplan cleanup RUN_ID).

    \b
    Examples:
      drplan runs
      drplan runs --plan webshop --format json
      drplan runs --state s3://dr-state/webshop
    """
    from drplan.durations import humanize
    from drplan.history import list_runs

    shared = s3_state(state_url, aws, state_dir)
    if shared is not None:
        state_dir = str(shared.pull_all())
    found = list_runs(state_dir, plan=plan_name)
    if fmt == "json":
        emit(json.dumps([r.to_json() for r in found], indent=2, sort_keys=True) + "\n", None)
        return
    rows = [("run", "started", "mode", "plan", "status", "verdict", "RTO", "RPO", "by", "plan sha256")]
    for r in found:
        verdict = "-" if r.passed is None else ("passed" if r.passed else "FAILED")
        rows.append(
            (
                r.run_id + (" (damaged)" if r.damaged else ""),
                r.started or "?",
                (r.mode or "?") + (" (sandbox)" if r.sandbox else ""),
                r.plan or "?",
                r.status,
                verdict,
                humanize(r.rto_seconds) if r.rto_seconds is not None else "-",
                humanize(r.rpo_seconds) if r.rpo_seconds is not None else "-",
                r.user or "?",
                (r.plan_sha256 or "")[:12],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    emit(text + "\n", None)
    if not found:
        say(f"no runs under {state_dir}/runs" + (f" of plan {plan_name}" if plan_name else ""))


@click.command()
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json", "journal"]),
    default="markdown",
    show_default=True,
)
@_state_option
def show(run_id: str, fmt: str, state_dir: str, state_url: str | None, **aws: Any) -> None:
    """Show a run's evidence again: the drill report (Markdown or JSON), or its journal's events.

    Exit 0 when shown, 2 when the run or its report is not there.

    \b
    Examples:
      drplan show 3f9c2a71
      drplan show 3f9c2a71 --format json
      drplan show 3f9c2a71 --format journal | grep step.failed
    """
    from drplan.engine.journal import load_journal, run_dir
    from drplan.errors import UsageError
    from drplan.history import summarize

    shared = s3_state(state_url, aws, state_dir)
    if shared is not None:
        shared.pull_run(run_id)
        state_dir = str(shared.local)
    state = load_journal(state_dir, run_id)
    directory = run_dir(state_dir, run_id)
    if fmt == "journal":
        assert state.path is not None
        emit(state.path.read_text(encoding="utf-8", errors="replace"), None)
        return
    summary = summarize(state, directory)
    if summary.report is None:
        if fmt == "json":
            emit(json.dumps(summary.to_json(), indent=2, sort_keys=True) + "\n", None)
            return
        raise UsageError(
            f"run {run_id} has no report ({summary.mode or 'unknown'} run, {summary.status})",
            hint=f"drplan show {run_id} --format journal shows its events; drplan runs lists runs",
        )
    name = "report.json" if fmt == "json" else "report.md"
    emit((summary.report.parent / name).read_text(encoding="utf-8"), None)


@click.command()
@plan_path_argument
@click.option("--percentile", type=click.FloatRange(1, 100), default=90, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_state_option
def calibrate(
    plan_path: str, percentile: float, fmt: str, state_dir: str, state_url: str | None, **aws: Any
) -> None:
    """Propose estimates for the plan's steps from the durations measured in earlier real runs.

    Sandbox runs are left out (they measure the emulator, not AWS). Each proposal is the chosen
    percentile of the measured durations, so the predicted RTO converges on what recoveries take.
    Prints the proposals; changes nothing.

    \b
    Examples:
      drplan calibrate plans/webshop.json
      drplan calibrate plans/webshop.json --percentile 95 --format json
    """
    from drplan.durations import format_duration, humanize
    from drplan.history import calibrate as propose
    from drplan.history import list_runs
    from drplan.pipeline import load_plan

    plan, _ = load_plan(plan_path)
    shared = s3_state(state_url or plan.run.state, aws, state_dir)
    if shared is not None:
        state_dir = str(shared.pull_all())
    history = list_runs(state_dir, plan=plan.name)
    proposals = propose(history, [(s.key, s.estimate) for s in plan.steps()], percentile=percentile)
    if fmt == "json":
        doc: list[dict[str, Any]] = [
            {
                "step": p.step,
                "samples": p.samples,
                "current": format_duration(p.current) if p.current else None,
                "proposed": format_duration(p.proposed),
            }
            for p in proposals
        ]
        emit(json.dumps(doc, indent=2) + "\n", None)
        return
    if not proposals:
        say(f"no real run of {plan.name} under {state_dir} measured any step yet")
        sys.exit(0)
    lines = [
        f"p{percentile:g} of measured durations, from {len([r for r in history if not r.sandbox])} real run(s):"
    ]
    for p in proposals:
        current = format_duration(p.current) if p.current else "(action default)"
        lines.append(
            f"  {p.step}: estimate {current} -> {format_duration(p.proposed)} "
            f"({p.samples} sample(s), {humanize(p.proposed)})"
        )
    emit("\n".join(lines) + "\n", None)


COMMANDS = (runs, show, calibrate)
