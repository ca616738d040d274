"""``drplan deploy``, ``drplan start --engine stepfunctions`` and ``drplan approve``: a plan exported
to AWS Step Functions, deployed as a CloudFormation stack, started and followed with the same live
progress, journal and evidence as a local run, its manual steps approved from any machine
(docs/stepfunctions.md).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from drplan.cli.common import (
    CONTEXT_SETTINGS,
    aws_options,
    aws_session,
    complete_plan_files,
    complete_run_ids,
    fail,
    machine_options,
    output_options,
    say,
)
from drplan.engine.journal import DEFAULT_STATE_DIR
from drplan.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from drplan.model import Mode


@click.command("deploy", context_settings=CONTEXT_SETTINGS)
@click.argument(
    "plan_path",
    metavar="PLAN",
    type=click.Path(dir_okay=False),
    shell_complete=complete_plan_files,
)
@click.option(
    "--mode",
    type=click.Choice(["recover", "drill"]),
    default="recover",
    show_default=True,
    help="Deploy the real recovery, or a drill into isolated copies that cleans up after itself.",
)
@click.option(
    "--stack-name", required=True, help="The CloudFormation stack (created, or updated when it exists)."
)
@click.option(
    "--state-machine-name", metavar="NAME", help="Name of the state machine (default: drplan-PLAN-MODE)."
)
@click.option(
    "--s3-bucket",
    metavar="BUCKET",
    help="Upload the template here first: needed when it is over the 51,200 bytes CloudFormation takes "
    "in a request (as for aws cloudformation deploy), and for the definitions of a plan split into "
    "child executions.",
)
@click.option(
    "--checks-subnet",
    "checks_subnets",
    metavar="SUBNET",
    multiple=True,
    help="Run the function HTTP and TCP checks try with in this VPC subnet (repeatable), to reach "
    "restored services that answer only inside the VPC; with --checks-security-group.",
)
@click.option(
    "--checks-security-group",
    "checks_security_groups",
    metavar="GROUP",
    multiple=True,
    help="Security group of the checks function in the VPC (repeatable).",
)
@machine_options
@aws_options
@output_options
def deploy(
    plan_path: str,
    mode: str,
    stack_name: str,
    state_machine_name: str | None,
    s3_bucket: str | None,
    checks_subnets: tuple[str, ...],
    checks_security_groups: tuple[str, ...],
    coordination_table: str | None,
    parallelism: int | None,
    rollback_on_failure: bool,
    **opts: Any,
) -> None:
    """Export PLAN to AWS Step Functions and deploy it as a CloudFormation stack: the state
    machine's role (least privilege), the coordination table when the graph needs one, and the
    state machine. Prints the state machine's ARN on standard output.

    Deploy in the account and region the plan restores in (a drill's `drill.region`); the account
    is checked against the plan's `aws.account_id`. Exit 0 when the stack is up to date, 1 when the
    plan cannot be exported or CloudFormation failed (with its reasons).

    \b
    Examples:
      drplan deploy shop.json --mode drill --stack-name drplan-shop-drill
      drplan deploy shop.json --stack-name drplan-shop --s3-bucket my-templates --region eu-west-1
    """
    from drplan.pipeline import load_plan
    from drplan.stepfunctions import export_plan
    from drplan.stepfunctions.deploy import deploy_stack
    from drplan.stepfunctions.export import ExportRefused, ExportTooLarge

    plan, _ = load_plan(_existing(plan_path))
    chosen: Mode = "drill" if mode == "drill" else "recover"
    if rollback_on_failure and chosen == "drill":
        raise click.UsageError("--rollback-on-failure is for recoveries: a drill cleans up whatever happened")
    region = opts["region"] or (plan.drill.region if chosen == "drill" else None) or plan.aws.region
    try:
        # The Region the stack goes to decides which steps run elsewhere (through the calls function).
        exported = export_plan(
            plan,
            chosen,
            region=region,
            coordination_table=coordination_table,
            parallelism=parallelism,
            rollback_on_failure=rollback_on_failure,
        )
    except (ExportRefused, ExportTooLarge) as refused:
        fail(str(refused), refused.exit_code)
    if (checks_subnets or checks_security_groups) and exported.checks_function is None:
        raise click.UsageError("--checks-subnet/--checks-security-group: the plan has no HTTP or TCP checks")
    if bool(checks_subnets) != bool(checks_security_groups):
        raise click.UsageError("--checks-subnet and --checks-security-group go together (Lambda needs both)")
    aws = aws_session(opts, region=region, plan_aws=plan.aws)
    account = aws.guard_account(plan.aws.account_id)
    where = aws.region_of(None)
    say(f"deploying the {chosen} of {plan.name} as stack {stack_name} (account {account}, region {where})...")
    deployed = deploy_stack(
        aws.client("cloudformation"),
        exported,
        stack_name,
        state_machine_name=state_machine_name,
        s3=aws.client("s3") if s3_bucket else None,
        bucket=s3_bucket,
        region=where,
        checks_network=(list(checks_subnets), list(checks_security_groups)) if checks_subnets else None,
    )
    for note in exported.notes:
        say(f"drplan: note: {note}")
    say(f"stack {stack_name} {deployed.action}; state machine:")
    click.echo(deployed.state_machine_arn)
    if deployed.approvals_topic_arn:
        say(
            f"manual steps ask for approval on SNS topic {deployed.approvals_topic_arn}; subscribe the "
            f"approvers, e.g. aws sns subscribe --topic-arn {deployed.approvals_topic_arn} --protocol email "
            "--notification-endpoint oncall@example.com"
        )
    say(f"start it with: drplan start {plan_path} --engine stepfunctions --stack-name {stack_name}")


@click.command("start", context_settings=CONTEXT_SETTINGS)
@click.argument(
    "plan_path",
    metavar="PLAN",
    type=click.Path(dir_okay=False),
    shell_complete=complete_plan_files,
)
@click.option(
    "--engine",
    type=click.Choice(["stepfunctions"]),
    required=True,
    help="Where the plan runs: stepfunctions (the state machine drplan deploy made).",
)
@click.option("--state-machine", "state_machine_arn", metavar="ARN", help="The state machine to start.")
@click.option("--stack-name", help="Start the state machine of this stack (drplan deploy --stack-name).")
@click.option(
    "--follow-only",
    "follow_arn",
    metavar="EXECUTION_ARN",
    help="Start nothing: follow this execution (started here or elsewhere) to its end.",
)
@click.option("--run-id", help="The run's id: 8 lowercase hex digits (default: a new one).")
@click.option(
    "--keep", is_flag=True, help="Drills: leave the restored copies (drplan cleanup RUN_ID removes them)."
)
@click.option("--no-follow", is_flag=True, help="Start the execution and return: print how to follow it.")
@click.option(
    "--stop-on-interrupt",
    is_flag=True,
    help="On Ctrl-C, stop the execution (StopExecution) instead of only stopping to follow it.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.05, 300),
    default=5.0,
    show_default=True,
    help="Seconds between readings of the execution's history.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation before starting a recovery.")
@click.option(
    "--state-dir",
    default=DEFAULT_STATE_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the run's journal and report go.",
)
@click.option(
    "--events",
    "events_file",
    type=click.Path(dir_okay=False),
    help="Write every event as a JSON line to FILE.",
)
@aws_options
@output_options
def start(
    plan_path: str,
    engine: str,
    state_machine_arn: str | None,
    stack_name: str | None,
    follow_arn: str | None,
    run_id: str | None,
    keep: bool,
    no_follow: bool,
    stop_on_interrupt: bool,
    poll_interval: float,
    yes: bool,
    state_dir: str,
    events_file: str | None,
    **opts: Any,
) -> None:
    """Start PLAN on AWS Step Functions and follow it with the same live progress as a local run.

    The execution is named after the run id. Following reads the execution's history; when it
    ends, the journal and the report (timeline, measured RTO and RPO, cleanup proof) are in the local run
    index: drplan runs and drplan show RUN_ID show them like a local run's. Ctrl-C stops following,
    not the execution (--stop-on-interrupt stops it); --follow-only EXECUTION_ARN follows it again,
    from any machine.

    Exit 0 when every step succeeded and every objective was met, 1 when a step failed or an
    objective was missed, 2 when nothing was started (usage, confirmation), 3 when following was
    interrupted, the execution was stopped, or a drill's cleanup is incomplete.

    \b
    Examples:
      drplan start shop.json --engine stepfunctions --stack-name drplan-shop-drill
      drplan start shop.json --engine stepfunctions --state-machine ARN --yes --no-follow
      drplan start shop.json --engine stepfunctions --follow-only EXECUTION_ARN
    """
    from drplan.engine.prepare import new_run_id
    from drplan.pipeline import load_plan
    from drplan.stepfunctions.follow import check_plan, check_run_free, start_execution
    from drplan.stepfunctions.history import part_names, read_machine

    if sum(x is not None for x in (state_machine_arn, stack_name, follow_arn)) != 1:
        raise click.UsageError("give one of --state-machine, --stack-name or --follow-only")
    if run_id is not None and not re.fullmatch(r"[0-9a-f]{8}", run_id):
        raise click.BadParameter(
            f"{run_id!r}: a run id is 8 lowercase hex digits (a drill's names end with it)",
            param_hint="--run-id",
        )
    plan, _ = load_plan(_existing(plan_path))
    arn_region = (state_machine_arn or follow_arn or "").split(":")[3:4]
    region = opts["region"] or (arn_region[0] if arn_region else None) or plan.aws.region
    aws = aws_session(opts, region=region, plan_aws=plan.aws)
    sfn = aws.client("stepfunctions")
    execution_arn = follow_arn
    if execution_arn is None:
        if state_machine_arn is None:
            from drplan.stepfunctions.deploy import state_machine_of

            state_machine_arn = state_machine_of(aws.client("cloudformation"), str(stack_name))
        described = sfn.describe_state_machine(stateMachineArn=state_machine_arn)
        machine = read_machine(described["definition"])
        check_plan(plan, machine, state_machine_arn)
        if part_names(machine) and len(state_machine_arn.split(":")) > 7:
            # The main machine finds its parts by its own ARN with -part-N after it.
            raise click.BadParameter(
                f"{state_machine_arn} is a version or alias: this plan runs as child executions, found "
                "by the state machine's own name; give the state machine's ARN without the version or alias",
                param_hint="--state-machine",
            )
        if machine.mode == "recover" and not yes:
            if not (sys.stdin.isatty() and sys.stderr.isatty()):
                fail("refusing to start a real recovery without confirmation: pass --yes", EXIT_USAGE)
            if not click.confirm(f"Start the recovery of {plan.name} on Step Functions?", err=True):
                fail("not started", EXIT_USAGE)
        run_id = run_id or new_run_id()
        check_run_free(Path(state_dir), run_id)
        run_id, execution_arn = start_execution(sfn, state_machine_arn, run_id=run_id, keep=keep)
        say(f"started execution {execution_arn} (run {run_id})")
        if no_follow:
            say(
                f"follow it with: drplan start {plan_path} --engine stepfunctions --follow-only {execution_arn}"
            )
            sys.exit(EXIT_OK)
    sys.exit(
        _follow(
            sfn, plan, execution_arn, Path(state_dir), opts, poll_interval, stop_on_interrupt, events_file
        )
    )


def _existing(path: str) -> str:
    """PLAN must be a file (checked when the command runs, so that --help's examples parse)."""
    if not Path(path).is_file():
        raise click.BadParameter(f"{path!r} is not a file", param_hint="'PLAN'")
    return path


def _follow(
    sfn: Any,
    plan: Any,
    execution_arn: str,
    state_dir: Path,
    opts: dict[str, Any],
    interval: float,
    stop_on_interrupt: bool,
    events_file: str | None,
) -> int:
    """Follow to the end and render like a local run; the exit code."""
    from contextlib import ExitStack

    from drplan.cli.run import _progress, _render
    from drplan.engine.events import JsonLinesWriter
    from drplan.stepfunctions.follow import Follower

    with ExitStack() as stack:
        follower = Follower(sfn, plan, execution_arn, state_dir, endpoint_url=opts.get("endpoint_url"))
        live, progress = _progress(list(follower.prepared.steps), sys.stdin.isatty() and sys.stderr.isatty())
        if live is not None:
            stack.callback(live.close)
        follower.bus.subscribe(progress)
        if events_file:
            stream = stack.enter_context(Path(events_file).open("w", encoding="utf-8"))
            follower.bus.subscribe(JsonLinesWriter(stream))
        try:
            followed = follower.follow(interval)
        except KeyboardInterrupt:
            if not stop_on_interrupt:
                follower.detach()
                if live is not None:
                    live.close()
                say(
                    f"stopped following; execution {execution_arn} keeps running in AWS. Follow it again with:\n"
                    f"  drplan start {plan.path} --engine stepfunctions --follow-only {execution_arn}"
                )
                return EXIT_INTERRUPTED
            sfn.stop_execution(
                executionArn=execution_arn,
                error="drplan.Interrupted",
                cause="stopped from drplan start (Ctrl-C)",
            )
            follower.stop_children("stopped from drplan start (Ctrl-C), with the execution that started it")
            say(
                f"asked AWS to stop execution {execution_arn}; following it to its end (Ctrl-C again to leave)"
            )
            try:
                followed = follower.follow(interval)
            except KeyboardInterrupt:
                follower.detach(stopped=True)
                return EXIT_INTERRUPTED
        if live is not None:
            live.close()
    _render(followed.result, False)
    if followed.result.prepared.mode != "drill" and followed.evidence_dir is not None:
        say(f"report: {followed.evidence_dir / 'report.md'} (also report.json)")
    say(f"execution {execution_arn} ended {followed.status}")
    return followed.exit_code


@click.command("approve", context_settings=CONTEXT_SETTINGS)
@click.argument("run_id", metavar="RUN_ID", shell_complete=complete_run_ids)
@click.argument("step", metavar="STEP")
@click.option("--reject", is_flag=True, help="Reject instead: the step fails and its dependents are skipped.")
@click.option("--reason", metavar="TEXT", help="Why it is rejected (recorded with the step's failure).")
@click.option(
    "--execution-arn",
    metavar="ARN",
    help="The execution (the approval message gives it); default: found from the run id.",
)
@click.option(
    "--stack-name",
    metavar="NAME",
    help="The execution is RUN_ID of this stack's state machine (drplan deploy).",
)
@click.option(
    "--state-machine",
    "state_machine_arn",
    metavar="ARN",
    help="The execution is RUN_ID of this state machine.",
)
@click.option(
    "--state-dir",
    default=DEFAULT_STATE_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Without the options above: the run index where drplan start recorded RUN_ID's execution.",
)
@aws_options
@output_options
def approve(
    run_id: str,
    step: str,
    reject: bool,
    reason: str | None,
    execution_arn: str | None,
    stack_name: str | None,
    state_machine_arn: str | None,
    state_dir: str,
    **opts: Any,
) -> None:
    """Approve (or reject) manual step STEP of run RUN_ID, which waits for approval on AWS Step
    Functions.

    The step's task token is found in the execution's history and answered with SendTaskSuccess
    (--reject: SendTaskFailure). The run's evidence records who approved: user@host and the AWS
    principal, as a local run does. The execution is --execution-arn, else RUN_ID of the state
    machine of --stack-name or --state-machine, else the execution drplan start recorded for RUN_ID
    in --state-dir.

    Exit 0 when the answer was sent, 1 when the step is not waiting for approval (not yet, already
    answered, timed out, or the execution ended), 2 for a usage error.

    \b
    Examples:
      drplan approve 3f9c2a71 web.approve
      drplan approve 3f9c2a71 web.approve --stack-name drplan-shop --region eu-west-1
      drplan approve 3f9c2a71 web.approve --reject --reason "orders table is a day old" \\
          --execution-arn arn:aws:states:eu-west-1:123456789012:execution:drplan-shop:3f9c2a71
    """
    from drplan.runs import user_identity
    from drplan.stepfunctions.approve import answer, execution_in_index, execution_of

    if sum(x is not None for x in (execution_arn, stack_name, state_machine_arn)) > 1:
        raise click.UsageError("give at most one of --execution-arn, --stack-name and --state-machine")
    if reason is not None and not reject:
        raise click.UsageError("--reason goes with --reject (an approval records who approved)")
    if execution_arn is None and state_machine_arn is None and stack_name is None:
        execution_arn = execution_in_index(state_dir, run_id)
    given_arn = execution_arn or state_machine_arn
    arn_region = given_arn.split(":")[3:4] if given_arn else []
    aws = aws_session(opts, region=opts["region"] or (arn_region[0] if arn_region else None))
    if execution_arn is None:
        if state_machine_arn is None:
            from drplan.stepfunctions.deploy import state_machine_of

            state_machine_arn = state_machine_of(aws.client("cloudformation"), str(stack_name))
        execution_arn = execution_of(state_machine_arn, run_id)
    elif execution_arn.rsplit(":", 1)[-1] != run_id:
        raise click.BadParameter(
            f"{execution_arn} is not the execution of run {run_id} (drplan start names executions after runs)",
            param_hint="--execution-arn",
        )
    aws.account_id()  # who is approving: the AWS principal goes into the evidence
    who = user_identity() + (f" ({aws.caller_arn})" if aws.caller_arn else "")
    sent = answer(aws.client("stepfunctions"), execution_arn, step, by=who, reject=reject, reason=reason)
    if sent.verdict == "approved":
        say(f"approved {step} of run {run_id} as {who}: the execution carries on")
    else:
        say(f"rejected {step} of run {run_id} as {who}: the step fails and its dependents are skipped")


COMMANDS = (deploy, start, approve)
