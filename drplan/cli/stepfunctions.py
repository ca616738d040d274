"""``drplan export stepfunctions``: a plan as an AWS Step Functions state machine (three files).

``export`` is a group so that other targets can join it later; ``stepfunctions`` is its only
command so far. Nothing here calls AWS.
"""

from __future__ import annotations

from pathlib import Path

import click

from drplan.cli.common import CONTEXT_SETTINGS, fail, say, write_output
from drplan.errors import EXIT_USAGE


@click.group("export", context_settings=CONTEXT_SETTINGS)
def export() -> None:
    """Export a plan to run on another engine (AWS Step Functions)."""


@export.command("stepfunctions")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False))
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
    help="Folder for definition.asl.json, policy.json and template.json (created if missing).",
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
@click.option(
    "--coordination-table",
    metavar="NAME",
    help="DynamoDB table for steps that wait through coordination records (default: drplan-PLAN-coordination).",
)
def stepfunctions(
    plan_path: str,
    mode: str,
    output: str,
    account_id: str | None,
    region: str | None,
    coordination_table: str | None,
) -> None:
    """Write PLAN as an AWS Step Functions state machine: its Amazon States Language definition,
    the least-privilege policy of its role, and a CloudFormation template that deploys both.

    The state machine runs the plan with the local scheduler's semantics: each step starts when
    the steps it waits for are done, retries, times out and is skipped when one of them failed as
    in a local run; a drill uses drplan's isolated names and cleans up whatever happened. Steps
    whose action has no exact translation refuse the whole plan (exit 1), naming each step.

    \b
      drplan export stepfunctions shop.json --mode drill -o build/shop-drill
      aws cloudformation deploy --template-file build/shop-drill/template.json \\
          --stack-name drplan-shop-drill --capabilities CAPABILITY_IAM
    """
    from drplan.pipeline import load_plan
    from drplan.stepfunctions import export_plan
    from drplan.stepfunctions.export import ExportRefused, ExportTooLarge

    plan, _ = load_plan(plan_path)
    try:
        exported = export_plan(
            plan,
            "drill" if mode == "drill" else "recover",
            account_id=account_id,
            region=region,
            coordination_table=coordination_table,
        )
    except (ExportRefused, ExportTooLarge) as refused:
        fail(str(refused), refused.exit_code)
    directory = Path(output)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create {directory}: {exc.strerror or exc}", EXIT_USAGE)
    for name, text in exported.files():
        write_output(directory / name, text.encode("utf-8"))  # whole or not at all
        say(f"wrote {directory / name}")
    say(
        f"{exported.states()} states, {exported.size()} bytes of definition "
        f"(Step Functions takes up to 1 MiB); {len(exported.sids)} steps"
    )
    for note in exported.notes:
        say(f"drplan: note: {note}")


COMMANDS = (export,)
