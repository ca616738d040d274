"""``drplan iam-policy``: the least-privilege IAM policy a plan needs, from the plan alone."""

from __future__ import annotations

import click

from drplan.cli.common import emit, note, output_options, plan_path_argument, warn


@click.command("iam-policy")
@plan_path_argument
@click.option(
    "--mode",
    type=click.Choice(["drill", "recover"]),
    default="drill",
    show_default=True,
    help="The runs the policy is for: drills, or real recoveries.",
)
@click.option(
    "--account-id",
    metavar="ID",
    help="The AWS account in the ARNs (default: the plan's aws.account_id, else *).",
)
@click.option(
    "--region", help="The region in the ARNs (default: the plan's drill.region or aws.region, else *)."
)
@click.option(
    "--state",
    "state_url",
    metavar="S3_URL",
    help="Also allow the shared state in S3 (default: the plan's run.state).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the policy to a file."
)
@output_options
def iam_policy(
    plan_path: str,
    mode: str,
    account_id: str | None,
    region: str | None,
    state_url: str | None,
    output: str | None,
) -> None:
    """Print the least-privilege IAM policy (JSON) that runs of PLAN need.

    The IAM actions of the steps that run in --mode, plus sts:GetCallerIdentity and
    tag:GetResources (cleanup); resources scoped to the plan's names (drill copies with the run id
    as a wildcard); deletions conditioned on drplan's own tags (drplan:run-id, and drplan:mode =
    drill for drills). Nothing calls AWS.

    \b
    Examples:
      drplan iam-policy plans/webshop.json --mode drill -o drill-policy.json
      aws iam create-policy --policy-name drplan-webshop-drill --policy-document file://drill-policy.json
    """
    from drplan.iam import MANAGED_POLICY_LIMIT, build_policy
    from drplan.pipeline import load_plan

    plan, _ = load_plan(plan_path)
    policy = build_policy(plan, mode, account_id=account_id, region=region, state=state_url)  # type: ignore[arg-type]
    emit(policy.text(), output)
    for text in policy.notes:
        note(text)
    if policy.size() > MANAGED_POLICY_LIMIT:
        warn(
            f"the policy is {policy.size()} characters; a managed policy holds "
            f"{MANAGED_POLICY_LIMIT}: split its statements over two policies"
        )


COMMANDS = (iam_policy,)
