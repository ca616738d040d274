"""``drplan export``: a plan for another engine. ``stepfunctions`` writes an AWS Step Functions
state machine (three files, and one per part of a plan split into child executions); ``arc-region-switch`` an ARC Region switch plan (docs/arc-region-switch.md).

Nothing here calls AWS.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from drplan.cli.common import (
    CONTEXT_SETTINGS,
    fail,
    machine_options,
    note,
    output_options,
    plan_path_argument,
    say,
    write_output,
)
from drplan.durations import humanize
from drplan.errors import EXIT_USAGE


@click.group("export", context_settings=CONTEXT_SETTINGS)
def export() -> None:
    """Export a plan to run on another engine (AWS Step Functions, ARC Region switch)."""


@export.command("stepfunctions")
@plan_path_argument
@output_options
@click.option(
    "--mode",
    type=click.Choice(["recover", "drill"]),
    default="recover",
    show_default=True,
    help="Export the real recovery, or a drill into isolated copies that cleans up after itself.",
)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for definition.asl.json (and part-N.asl.json for a plan split into child executions), "
    "policy.json and template.json (created if missing).",
)
@click.option(
    "--account-id",
    metavar="ID",
    help="The account in policy.json's ARNs (default: the plan's aws.account_id, else *).",
)
@click.option(
    "--region",
    help="The region in policy.json's ARNs (default: the plan's drill.region or aws.region, else *).",
)
@machine_options
def stepfunctions(
    plan_path: str,
    mode: str,
    output: str,
    account_id: str | None,
    region: str | None,
    coordination_table: str | None,
    parallelism: int | None,
    rollback_on_failure: bool,
) -> None:
    """Write PLAN as an AWS Step Functions state machine: its Amazon States Language definition,
    the least-privilege policy of its role, and a CloudFormation template that deploys both.

    The state machine runs the plan with the local scheduler's semantics: each step starts when
    the steps it waits for are done, retries, times out and is skipped when one of them failed as
    in a local run; a drill uses drplan's isolated names and cleans up whatever happened. Steps
    whose action has no exact translation refuse the whole plan (exit 1), naming each step. A plan
    over one execution's quotas also gets part-N.asl.json files: parts the main state machine runs
    as child executions.

    \b
    Examples:
      drplan export stepfunctions plans/webshop.json --mode drill -o build/shop-drill
      aws cloudformation deploy --template-file build/shop-drill/template.json \\
          --stack-name drplan-shop-drill --capabilities CAPABILITY_IAM
    """
    from drplan.pipeline import load_plan
    from drplan.stepfunctions import export_plan
    from drplan.stepfunctions.export import ExportRefused, ExportTooLarge

    if rollback_on_failure and mode == "drill":
        raise click.UsageError("--rollback-on-failure is for recoveries: a drill cleans up whatever happened")
    plan, _ = load_plan(plan_path)
    try:
        exported = export_plan(
            plan,
            "drill" if mode == "drill" else "recover",
            account_id=account_id,
            region=region,
            coordination_table=coordination_table,
            parallelism=parallelism,
            rollback_on_failure=rollback_on_failure,
        )
    except (ExportRefused, ExportTooLarge) as refused:
        fail(str(refused), refused.exit_code)
    directory = Path(output)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create {directory}: {exc.strerror or exc}", EXIT_USAGE)
    written = exported.files()
    for name, text in written:
        write_output(directory / name, text.encode("utf-8"))  # whole or not at all
        say(f"wrote {directory / name}")
    # An earlier export of a larger plan may have left more parts: they would deploy by mistake.
    for stale in sorted(set(directory.glob("part-*.asl.json")) - {directory / n for n, _ in written}):
        stale.unlink()
        say(f"removed {stale} (a part of an earlier export)")
    say(
        f"{exported.states()} states, {exported.size()} bytes of definition "
        f"(Step Functions takes up to 1 MiB); {len(exported.sids)} steps"
    )
    if exported.parts:
        sizes = [len(json.dumps(d, separators=(",", ":"))) for d in exported.parts.values()]
        say(
            f"{len(exported.parts)} parts run as child executions; the largest is {max(sizes)} bytes of definition"
        )
    for message in exported.notes:
        note(message)


@export.command("arc-region-switch")
@plan_path_argument
@output_options
@click.option(
    "--mode",
    type=click.Choice(["recover"]),
    default="recover",
    show_default=True,
    help="The real recovery (an ARC plan acts on production; drills are not exported).",
)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for create-plan.json, template.json and report.md (created if missing).",
)
@click.option("--execution-role", metavar="ARN", help="[required] The IAM role ARC runs the plan with.")
@click.option("--primary-region", metavar="REGION", help="[required] The Region the application runs in.")
@click.option("--recovery-region", metavar="REGION", help="[required] The Region the plan recovers into.")
@click.option(
    "--recovery-approach",
    type=click.Choice(["activePassive", "activeActive"]),
    help="[required] ARC's recovery approach: activePassive activates the recovery Region; activeActive "
    "deactivates the primary.",
)
@click.option(
    "--approval-role",
    metavar="ARN",
    help="The IAM role approvers use (needed when the plan has manual steps).",
)
@click.option("--name", metavar="NAME", help="The ARC plan's name (default: the drplan plan's, made valid).")
@click.option(
    "--account-id",
    metavar="ID",
    help="The account in ARNs drplan derives from names (default: the plan's aws.account_id, else the execution role's).",
)
@click.option(
    "--arn",
    "arns",
    metavar="STEP=ARN",
    multiple=True,
    help="The ARN of a step's resource where drplan cannot derive it (an Auto Scaling group's). Repeatable.",
)
@click.option(
    "--peer",
    "peers",
    metavar="STEP=ARN",
    multiple=True,
    help="The same resource in the other Region, for blocks that act on both (capacity, Lambda). Repeatable.",
)
def arc_region_switch(
    plan_path: str,
    mode: str,
    output: str,
    execution_role: str | None,
    primary_region: str | None,
    recovery_region: str | None,
    recovery_approach: str | None,
    approval_role: str | None,
    name: str | None,
    account_id: str | None,
    arns: tuple[str, ...],
    peers: tuple[str, ...],
) -> None:
    """Write PLAN's recovery as an AWS ARC Region switch plan: the CreatePlan request, a
    CloudFormation template with the AWS::ARCRegionSwitch::Plan resource, and a report.

    Steps whose action has an ARC execution block of the same meaning (routing controls, read
    replica promotion, Auto Scaling and ECS capacity, Lambda, approvals) become blocks; the
    dependency graph becomes ARC's stages (a sequence of Parallel blocks). The report lists what ARC
    cannot run and why (restores from backups, checks, commands ...), and the predicted duration of
    ARC's stages beside drplan's own scheduler. The request is validated against botocore's model
    of ARC before anything is written.

    \b
    Examples:
      drplan export arc-region-switch plans/webshop.json -o build/shop-arc --recovery-approach activePassive \\
          --execution-role arn:aws:iam::111122223333:role/arc-shop --primary-region us-east-1 \\
          --recovery-region us-west-2
    """
    from drplan.arcswitch import export_plan, settings
    from drplan.pipeline import load_plan

    # Missing or malformed options, an invalid plan and a refused export are DrplanErrors: the
    # CLI's entry point reports them with their exit codes.
    chosen = settings(
        execution_role=execution_role,
        primary_region=primary_region,
        recovery_region=recovery_region,
        approach=recovery_approach,
        name=name,
        account_id=account_id,
        approval_role=approval_role,
        arns=arns,
        peers=peers,
    )
    plan, _ = load_plan(plan_path)
    exported = export_plan(plan, chosen)
    directory = Path(output)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create {directory}: {exc.strerror or exc}", EXIT_USAGE)
    for file_name, text in exported.files():
        write_output(directory / file_name, text.encode("utf-8"))
        say(f"wrote {directory / file_name}")
    mapped = exported.mapped
    say(
        f"{len(exported.blocks)} of {len(exported.blocks) + len(exported.unmapped)} steps are ARC blocks, in "
        f"{len(mapped.stages)} stage(s); {len(exported.unmapped)} cannot run in ARC (see report.md)"
    )
    say(
        f"predicted: {humanize(mapped.arc)} in ARC's stages, {humanize(mapped.drplan)} with drplan's scheduler "
        "(the mapped steps, same estimates)"
    )
    if exported.failback is not None:
        say(
            f"failback workflow: {len(exported.back)} of {len(exported.blocks)} blocks"
            + (f" ({len(exported.not_back)} cannot go back, see report.md)" if exported.not_back else "")
        )
    else:
        say("no failback workflow (see report.md for why)")
    if exported.alarms or exported.not_associated:
        say(
            f"{len(exported.alarms)} associated alarm(s)"
            + (
                f"; {len(exported.not_associated)} check(s) not associated (see report.md)"
                if exported.not_associated
                else ""
            )
        )


COMMANDS = (export,)
