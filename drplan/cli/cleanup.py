"""``drplan cleanup``: remove what a drill left behind, by run (``RUN_ID``) or by tag (``--sweep``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from drplan.aws import describe_error
from drplan.cli.common import (
    aws_options,
    aws_session,
    complete_run_ids,
    output_options,
    parse_age,
    s3_state,
    say,
    state_option,
    warn,
)
from drplan.engine.journal import DEFAULT_STATE_DIR
from drplan.errors import EXIT_INTERRUPTED, UsageError


@click.command()
@click.argument("run_id", required=False, shell_complete=complete_run_ids)
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
@output_options
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

    \b
    Examples:
      drplan cleanup f6b98d34
      drplan cleanup f6b98d34 --dry-run
      drplan cleanup --sweep --older-than 1d --region us-east-1
    """
    from drplan.engine.sweep import remove

    if bool(run_id) == sweep:
        raise click.UsageError("give either a RUN_ID or --sweep")
    if older and not sweep:
        raise click.UsageError("--older-than goes with --sweep")
    shared = None
    damaged = False
    if sweep:
        aws, resources = _sweep_targets(opts, parse_age(older) if older else None, plan_name, older)
        record = None
        trusted = True
    else:
        shared = s3_state(state_url, opts, state_dir)
        if shared is not None:
            shared.pull_run(str(run_id))
            state_dir = str(shared.local)
        aws, resources, record, trusted, damaged = _run_targets(opts, state_dir, str(run_id))
    for r in resources:
        say(f"  {r.kind} {r.id} ({r.region})", always=dry_run)  # with --dry-run, the list is the answer
    if dry_run or not resources:
        if not resources and not trusted:
            say(
                "nothing was found by journal, name or tag, but the journal is damaged and the plan is not "
                "at hand: drplan cannot be sure nothing remains (drplan cleanup --sweep looks further)",
                always=True,
            )
            sys.exit(EXIT_INTERRUPTED)
        if not resources:
            say("nothing to remove", always=True)
        sys.exit(0)
    results = remove(aws, resources, timeout=parse_age(timeout).total_seconds())
    for x in results:
        outcome = "removed" if x.removed else "NOT removed"
        say(
            f"  {outcome}: {x.resource.kind} {x.resource.id}" + (f" ({x.error})" if x.error else ""),
            always=not x.removed,
        )
    if record is not None:
        record([x.resource for x in results if x.removed])
        if shared is not None:
            problem = shared.push_journal(str(run_id))
            if problem:
                warn(problem)
    left = [x for x in results if not x.removed]
    if left:
        say(f"{len(left)} resource(s) remain; run the same command again to retry", always=True)
        sys.exit(EXIT_INTERRUPTED)
    if not trusted:
        say(
            f"removed the {len(results)} resource(s) found by journal, name and tag (each deletion verified), "
            "but the journal is damaged and the plan is not at hand: drplan cannot be sure nothing else "
            "remains (drplan cleanup --sweep looks further)",
            always=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    say(
        "everything removed (each deletion verified)"
        + ("; the journal was damaged: the drill's plan gave the names to look for" if damaged else ""),
        always=True,
    )
    sys.exit(0)


def _planned_intents(state: Any, region: str) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """The names the drill's plan says it creates, computed again from the plan with the run's id
    (its names are deterministic): what a journal that lost lines no longer lists is still looked
    for. (intents, why the plan could not be used)."""
    from drplan.actions import registry
    from drplan.engine.prepare import prepare_steps
    from drplan.pipeline import validate_file

    path, sha = state.header.get("plan_path"), state.header.get("plan_sha256")
    if not path or not Path(path).is_file():
        return (
            [],
            "the drill's plan is not at hand to look for every name it creates; looked by journal and tag only",
        )
    result = validate_file(path)
    if result.plan is None or result.plan.sha256 != sha:
        return [], f"{path} changed since the drill ran; looked for its resources by journal and tag only"
    steps, _ = prepare_steps(result.plan, "drill", registry(), run_id=state.run_id)
    out = []
    for key, step in steps.items():
        try:
            targets = step.action.targets(step.params)
        except (KeyError, TypeError, ValueError):
            continue
        step_region = step.step.region or result.plan.drill.region or result.plan.aws.region or region
        out += [(key, t.intent(step_region, step.step.role_arn)) for t in targets if "${" not in t.name]
    return out, None


def _session(opts: dict[str, Any], region: str | None, endpoint_url: str | None = None) -> Any:
    return aws_session(opts, region=opts["region"] or region, endpoint_url=endpoint_url)


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


def _run_targets(opts: dict[str, Any], state_dir: str, run_id: str) -> tuple[Any, list[Any], Any, bool, bool]:
    """Everything the run may have left: (session, resources, a function that journals removals,
    whether what was found can be trusted to be everything, whether the journal is damaged)."""
    from drplan.engine.events import EventBus
    from drplan.engine.journal import Journal, load_journal
    from drplan.engine.sweep import find_drill_resources, find_intended

    state = load_journal(state_dir, run_id)
    for problem in state.damage:
        warn(f"journal of run {run_id} is damaged: {problem}")
    if state.mode == "recover":
        raise UsageError(
            f"run {run_id} was a real recovery: what it restored is production now, and `drplan cleanup` "
            "removes only what drills made",
            hint="to undo a recovery, use `drplan recover --rollback-on-failure` next time, or delete by hand",
        )
    if state.header.get("sandbox") and not opts["endpoint_url"]:
        say(f"run {run_id} ran in the sandbox, which stopped with it: nothing remains", always=True)
        return None, [], None, True, False
    aws = _session(opts, state.header.get("region"), state.header.get("endpoint_url"))
    # The external IDs the plan's steps gave their roles (journaled: they are not secrets).
    aws.external_ids = {**(state.header.get("external_ids") or {}), **aws.external_ids}
    seen: dict[tuple[str, str], Any] = {}
    step_of: dict[tuple[str, str], str | None] = {}
    for step, resource in state.remaining():
        seen.setdefault(resource.key, resource)
        step_of[resource.key] = step
    planned, plan_problem = _planned_intents(state, aws.region_of(None))
    if plan_problem:
        warn(plan_problem)
    intents = state.unmatched_intents() + [i for i in planned if i not in state.intents]
    by_name, problems = find_intended(aws, intents, run_id=run_id, drill=True)
    for step, resource in by_name:
        if resource.key not in seen and (resource.kind, str(resource.extra.get("name"))) not in {
            (r.kind, r.id) for r in seen.values()
        }:
            seen[resource.key] = resource
            step_of[resource.key] = step
    regions = {aws.region_of(None)} | {r.region for r in seen.values() if r.region}
    # By tag in every account the run made things in: its own, and those of the roles its steps
    # assumed (a DR account), as the journal and the plan name them.
    roles = {None} | {r.role_arn for r in seen.values()} | {t.get("role_arn") for _, t in intents}
    for region in sorted(regions):
        for role_arn in sorted(roles, key=lambda r: r or ""):
            try:
                tagged = find_drill_resources(aws, region, run_id=run_id, role_arn=role_arn)
            except Exception as exc:
                if role_arn is None:
                    raise
                problems.append(
                    f"could not look by tag with role {role_arn} in {region}: {describe_error(exc)}"
                )
                continue
            for found in tagged:
                if found.resource.key not in seen:
                    seen[found.resource.key] = found.resource
                    step_of[found.resource.key] = None
    for problem in problems:
        warn(problem)
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
            warn(f"cannot record the removals in the journal: {exc}")
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

    trusted = not state.damage or not plan_problem  # a damaged journal, made up for by the plan
    return aws, list(seen.values()), record, trusted, bool(state.damage)


COMMANDS = (cleanup,)
