"""``drplan cleanup``: remove what a drill left behind, by run (``RUN_ID``) or by tag (``--sweep``)."""

from __future__ import annotations

import sys
from typing import Any

import click

from drplan.cli.common import aws_options, parse_age, s3_state, say, state_option
from drplan.engine.journal import DEFAULT_STATE_DIR
from drplan.errors import EXIT_INTERRUPTED, UsageError


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
@click.option("--timeout", default="30m", show_default=True, help="How long to wait for deletions, in all.")
@click.option("--state-dir", default=DEFAULT_STATE_DIR, show_default=True, type=click.Path(file_okay=False))
@state_option
@aws_options
def cleanup(
    run_id: str | None,
    sweep: bool,
    older: str | None,
    plan_name: str | None,
    dry_run: bool,
    timeout: str,
    state_dir: str,
    state_url: str | None,
    **opts: Any,
) -> None:
    """Remove what a drill left behind: by RUN_ID, or by tag with --sweep.

    By RUN_ID, every trail the run left is followed, so a resource is found whichever survived: what
    its journal says it created, what it journaled it was *about to* create (looked up by name), and
    what carries its run id as a tag. A damaged journal is reported, and cleanup relies on names and
    tags. Only resources of drills are touched (a real recovery's resources are production); each
    deletion is verified. Exit 0 when everything is gone, 3 when something remains.
    """
    from drplan.engine.sweep import remove

    if bool(run_id) == sweep:
        raise click.UsageError("give either a RUN_ID or --sweep")
    if older and not sweep:
        raise click.UsageError("--older-than goes with --sweep")
    shared = None
    if sweep:
        aws, resources = _sweep_targets(opts, parse_age(older) if older else None, plan_name, older)
        record = None
        trusted = True
    else:
        shared = s3_state(state_url, opts, state_dir)
        if shared is not None:
            shared.pull_run(str(run_id))
            state_dir = str(shared.local)
        aws, resources, record, trusted = _run_targets(opts, state_dir, str(run_id))
    for r in resources:
        say(f"  {r.kind} {r.id} ({r.region})")
    if dry_run or not resources:
        if not resources:
            say(
                "nothing to remove"
                + ("" if trusted else " was found by name or tag (the journal is damaged)")
            )
        sys.exit(0)
    results = remove(aws, resources, timeout=parse_age(timeout).total_seconds())
    for x in results:
        outcome = "removed" if x.removed else "NOT removed"
        say(f"  {outcome}: {x.resource.kind} {x.resource.id}" + (f" ({x.error})" if x.error else ""))
    if record is not None:
        record([x.resource for x in results if x.removed])
        if shared is not None:
            problem = shared.push_journal(str(run_id))
            if problem:
                say(f"drplan: warning: {problem}")
    left = [x for x in results if not x.removed]
    if left:
        say(f"{len(left)} resource(s) remain; run the same command again to retry")
        sys.exit(EXIT_INTERRUPTED)
    say(
        "everything removed (each deletion verified)"
        + ("" if trusted else "; the journal was damaged, so resources were also looked for by name and tag")
    )
    sys.exit(0)


def _session(opts: dict[str, Any], region: str | None, endpoint_url: str | None = None) -> Any:
    from drplan.aws import AwsSession

    return AwsSession(
        region=opts["region"] or region,
        profile=opts["profile"],
        role_arn=opts["role_arn"],
        endpoint_url=opts["endpoint_url"] or endpoint_url,
    )


def _sweep_targets(
    opts: dict[str, Any], age: Any, plan_name: str | None, older: str | None
) -> tuple[Any, list[Any]]:
    """Drill resources found by their drplan tags in the region (optionally older than ``age``)."""
    from drplan.engine.sweep import find_drill_resources, older_than

    aws = _session(opts, None)
    region = aws.region_of(None)
    found = find_drill_resources(aws, region, plan=plan_name)
    if age is not None:
        found = older_than(found, age)
    say(f"{len(found)} drill resource(s) in {region}" + (f" older than {older}" if older else ""))
    return aws, [f.resource for f in found]


def _run_targets(opts: dict[str, Any], state_dir: str, run_id: str) -> tuple[Any, list[Any], Any, bool]:
    """Everything the run may have left: (session, resources, a function that journals removals,
    whether the journal could be trusted on its own)."""
    from drplan.engine.events import EventBus
    from drplan.engine.journal import Journal, load_journal
    from drplan.engine.sweep import find_drill_resources, find_intended

    state = load_journal(state_dir, run_id)
    for problem in state.damage:
        say(f"drplan: warning: journal of run {run_id} is damaged: {problem}")
    if state.mode == "recover":
        raise UsageError(
            f"run {run_id} was a real recovery: what it restored is production now, and `drplan cleanup` "
            "removes only what drills made",
            hint="to undo a recovery, use `drplan recover --rollback-on-failure` next time, or delete by hand",
        )
    if state.header.get("sandbox") and not opts["endpoint_url"]:
        say(f"run {run_id} ran in the sandbox, which stopped with it: nothing remains")
        return None, [], None, True
    aws = _session(opts, state.header.get("region"), state.header.get("endpoint_url"))
    seen: dict[tuple[str, str], Any] = {}
    step_of: dict[tuple[str, str], str | None] = {}
    for step, resource in state.remaining():
        seen.setdefault(resource.key, resource)
        step_of[resource.key] = step
    by_name, problems = find_intended(aws, state.unmatched_intents(), run_id=run_id, drill=True)
    for step, resource in by_name:
        if resource.key not in seen and (resource.kind, str(resource.extra.get("name"))) not in {
            (r.kind, r.id) for r in seen.values()
        }:
            seen[resource.key] = resource
            step_of[resource.key] = step
    regions = {aws.region_of(None)} | {r.region for r in seen.values() if r.region}
    for region in sorted(regions):
        for found in find_drill_resources(aws, region, run_id=run_id):
            if found.resource.key not in seen:
                seen[found.resource.key] = found.resource
                step_of[found.resource.key] = None
    for problem in problems:
        say(f"drplan: warning: {problem}")
    say(
        f"run {run_id}: {len(seen)} resource(s) not yet removed "
        f"({len(state.remaining())} from the journal, {len(by_name)} found by name, the rest by tag)"
    )

    def record(removed: list[Any]) -> None:
        bus = EventBus(run_id)
        assert state.path is not None
        try:
            journal = Journal(state.path)
        except OSError as exc:
            say(f"drplan: warning: cannot record the removals in the journal: {exc}")
            return
        bus.subscribe(journal, essential=True)
        for resource in removed:
            bus.emit(
                "undo.succeeded",
                step_of.get(resource.key),
                resources=[resource.to_json()],
                reason="drplan cleanup",
            )
        journal.close()

    return aws, list(seen.values()), record, not state.damage and bool(state.header)


COMMANDS = (cleanup,)
