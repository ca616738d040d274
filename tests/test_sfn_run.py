"""drplan deploy and drplan start --engine stepfunctions: an exported plan executed by moto's Step
Functions interpreter, followed from its history into the same events, journal and evidence as a
local run (``drplan runs``, ``drplan show``).

moto's CloudFormation creates its stacks' state machines where its interpreter does not find them,
so ``deploy`` is tested on its own (the stack, its output) and the executions start from state
machines created directly from the exported definition, as the template would create them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws

from drplan.cli.cleanup import cleanup
from drplan.cli.history import COMMANDS as HISTORY
from drplan.cli.sfn import COMMANDS
from drplan.engine.journal import load_journal
from drplan.engine.records import RunOptions
from drplan.errors import UsageError
from drplan.history import list_runs
from drplan.model import build_plan
from drplan.pipeline import load_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.history import NotDrplanMachine, read_machine
from tests.runs import plan_data

REGION = "us-east-1"
SFN = {"stepfunctions": {"execute_state_machine": True}}
#: The exported machine's timings in tests: moto restores and deletes at once.
FAST = RunOptions(poll_initial=1, poll_max=1, retry_delay=2, undo_timeout=120)
ONE_MACHINE = 10**9  # see tests/test_stepfunctions.py
deploy, start, _ = COMMANDS
runs, show, _ = HISTORY


@pytest.fixture(autouse=True)
def _empty_aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty AWS config of the test's own: /dev/null (conftest's) is not always a device where
    tests run side by side (a command writing its output to /dev/null by rename replaces it)."""
    empty = tmp_path / "aws-config"
    empty.write_text("", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))


@pytest.fixture(autouse=True)
def _quiet_moto() -> Iterator[None]:
    logger = logging.getLogger("moto")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def tiny(source: str = "orders", settle: str = "PT1S") -> dict[str, Any]:
    """A DynamoDB restore, then a wait that depends on it: the smallest plan with an edge."""
    return plan_data(
        {
            "db": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": source, "target": "orders-restored"},
                        "estimate": "PT5M",
                    }
                ]
            },
            "web": {
                "depends_on": ["db"],
                "steps": [{"id": "settle", "uses": "wait", "with": {"duration": settle}}],
            },
        },
        name="tiny",
    )


def write_plan(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def seed_table(name: str = "orders") -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.create_backup(TableName=name, BackupName=f"{name}-nightly")


def create_machine(plan_path: Path, mode: str) -> str:
    """The exported state machine, created as the template creates it (moto's CloudFormation puts
    it where moto's interpreter does not look)."""
    plan, _ = load_plan(str(plan_path))
    exported = export_plan(plan, mode, options=FAST, history_budget=ONE_MACHINE)  # type: ignore[arg-type]
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return str(
        sfn.create_state_machine(
            name=f"drplan-tiny-{mode}",
            definition=json.dumps(exported.definition),
            roleArn="arn:aws:iam::123456789012:role/drplan",
        )["stateMachineArn"]
    )


def invoke(command: Any, args: list[str]) -> Result:
    return CliRunner().invoke(command, args, catch_exceptions=False)


def report_of(state: Path, run_id: str) -> dict[str, Any]:
    return dict(json.loads((state / "runs" / run_id / "report" / "report.json").read_text(encoding="utf-8")))


def test_a_drill_run_by_step_functions_is_in_the_run_index_with_its_evidence(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, tiny())
    state = tmp_path / "state"
    with mock_aws(config=SFN):
        seed_table()
        machine = create_machine(plan, "drill")
        before = boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"]
        result = invoke(
            start,
            [str(plan), "--engine", "stepfunctions", "--state-machine", machine, "--poll-interval", "0.2",
             "--run-id", "0a1b2c3d", "--state-dir", str(state)],
        )  # fmt: skip
        after = boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"]
    assert result.exit_code == 0, result.output
    assert (
        "started execution arn:aws:states:us-east-1:123456789012:execution:drplan-tiny-drill:0a1b2c3d"
        in result.output
    )
    assert "db.restore started" in result.output and "web.settle succeeded" in result.output
    assert "db.restore undo (drill cleanup)" in result.output
    assert "db.restore undone: dynamodb:table orders-restored-drill-0a1b2c3d" in result.output
    assert "PASSED: drill 0a1b2c3d of tiny" in result.output
    assert after == before  # the drill cleaned up after itself

    (summary,) = list_runs(state)
    assert (summary.run_id, summary.mode, summary.status, summary.passed, summary.exit_code) == (
        "0a1b2c3d", "drill", "succeeded", True, 0
    )  # fmt: skip
    assert summary.rto_seconds is not None and summary.rto_seconds > 0
    report = report_of(state, "0a1b2c3d")
    assert report["verdict"] == {"passed": True, "reasons": [], "unverified": []}
    assert report["engine"]["execution_status"] == "SUCCEEDED"
    assert report["run"]["parallelism"] is None  # Step Functions does not enforce it
    steps = {s["key"]: s for s in report["steps"]}
    assert list(steps) == ["db.restore", "web.settle"]  # one entry per executed step
    times = [steps["db.restore"]["started"], steps["db.restore"]["finished"]]
    times += [steps["web.settle"]["started"], steps["web.settle"]["finished"]]
    assert times == sorted(times) and all(times)  # the graph's order, from the history's times
    assert steps["web.settle"]["duration_seconds"] >= 1.0  # a 1 s Wait state
    assert steps["db.restore"]["outputs"]["table_name"] == "orders-restored-drill-0a1b2c3d"
    services = {s["id"]: s for s in report["objectives"]["services"]}
    assert services["db"]["rto"]["measured_seconds"] < services["web"]["rto"]["measured_seconds"]
    (point,) = report["recovery_points"]  # the newest backup, as the history shows it was chosen
    assert point["step"] == "db.restore" and ":table/orders/backup/" in point["id"]
    assert point["id"] == steps["db.restore"]["outputs"]["backup_arn"]
    assert 0 <= point["age_seconds"] < 120
    assert services["db"]["rpo"]["measured_seconds"] == point["age_seconds"]
    cleanup = report["cleanup"]
    assert cleanup["status"] == "complete"
    (resource,) = cleanup["resources"]
    assert resource["kind"] == "dynamodb:table" and resource["deleted"] is True
    assert resource["verified_gone_at"] >= steps["web.settle"]["finished"]

    shown = invoke(show, ["0a1b2c3d", "--state-dir", str(state)])
    assert shown.exit_code == 0 and "db.restore" in shown.output
    listed = invoke(runs, ["--state-dir", str(state)])
    assert "0a1b2c3d" in listed.output and "passed" in listed.output
    journal = load_journal(state, "0a1b2c3d")
    assert journal.header["engine"] == "stepfunctions" and journal.finished is not None
    assert journal.status == {"db.restore": "succeeded", "web.settle": "succeeded"}
    assert journal.remaining() == []  # drplan cleanup RUN_ID would find nothing left


def test_a_failed_step_fails_the_verdict_and_skips_its_dependents(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, tiny(source="missing"))
    state = tmp_path / "state"
    execution = "arn:aws:states:us-east-1:123456789012:execution:drplan-tiny-recover:0f0f0f0f"
    with mock_aws(config=SFN):
        machine = create_machine(plan, "recover")
        refused = CliRunner().invoke(
            start, [str(plan), "--engine", "stepfunctions", "--state-machine", machine]
        )
        started = invoke(
            start,
            [str(plan), "--engine", "stepfunctions", "--state-machine", machine, "--yes", "--no-follow",
             "--run-id", "0f0f0f0f", "--state-dir", str(state)],
        )  # fmt: skip
        result = invoke(
            start,
            [str(plan), "--engine", "stepfunctions", "--follow-only", execution, "--poll-interval", "0.2",
             "--state-dir", str(state)],
        )  # fmt: skip
    # A recovery is the real thing: without a terminal to confirm on, --yes is required.
    assert (
        refused.exit_code == 2 and "refusing to start a real recovery without confirmation" in refused.output
    )
    assert started.exit_code == 0, started.output
    assert (
        f"follow it with: drplan start {plan} --engine stepfunctions --follow-only {execution}"
        in started.output
    )
    assert result.exit_code == 1, result.output
    assert "db.restore FAILED: table missing has no available backups" in result.output
    assert "web.settle skipped: `db.restore` did not succeed" in result.output
    (summary,) = list_runs(state)
    assert (summary.status, summary.passed, summary.exit_code) == ("failed", False, 1)
    report = report_of(state, "0f0f0f0f")
    assert report["kind"] == "drplan.recovery-report"
    assert report["engine"]["execution_status"] == "FAILED"
    assert report["verdict"]["passed"] is False and report["verdict"]["reasons"] == ["the recovery failed"]
    steps = {s["key"]: s for s in report["steps"]}
    assert steps["db.restore"]["status"] == "failed"
    assert steps["db.restore"]["error"] == "table missing has no available backups"
    assert steps["web.settle"]["status"] == "skipped" and steps["web.settle"]["started"] is None
    assert steps["web.settle"]["reason"] == "`db.restore` did not succeed"


def test_ctrl_c_leaves_the_execution_running_and_follow_only_finishes_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drplan.stepfunctions.follow import Follower

    plan = write_plan(tmp_path, tiny(settle="PT3S"))
    state = tmp_path / "state"
    polls = {"n": 0}
    real_poll = Follower.poll

    def interrupted(self: Follower) -> bool:
        """Ctrl-C once the execution is in its last step (a Wait of 3 s)."""
        if self.projection.records["web.settle"].status == "running" and not polls["n"]:
            polls["n"] += 1
            raise KeyboardInterrupt
        return real_poll(self)

    with mock_aws(config=SFN):
        seed_table()
        machine = create_machine(plan, "drill")
        monkeypatch.setattr(Follower, "poll", interrupted)
        result = invoke(
            start,
            [str(plan), "--engine", "stepfunctions", "--state-machine", machine, "--poll-interval", "0.2",
             "--run-id", "1a2b3c4d", "--state-dir", str(state)],
        )  # fmt: skip
        execution = "arn:aws:states:us-east-1:123456789012:execution:drplan-tiny-drill:1a2b3c4d"
        sfn = boto3.client("stepfunctions", region_name=REGION)
        assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
        assert result.exit_code == 3, result.output
        assert f"execution {execution} keeps running in AWS" in result.output
        assert f"--follow-only {execution}" in result.output
        (summary,) = list_runs(state)
        assert summary.status == "unfinished"
        # Its steps run in AWS: `drplan resume` must not run them again here.
        from drplan.cli.run import resume

        with pytest.raises(UsageError, match="is a Step Functions execution") as refused:
            invoke(resume, ["1a2b3c4d", "--state-dir", str(state)])
        assert f"--follow-only {execution}" in str(refused.value.hint)

        monkeypatch.setattr(Follower, "poll", real_poll)
        again = invoke(
            start,
            [str(plan), "--engine", "stepfunctions", "--follow-only", execution, "--poll-interval", "0.2",
             "--state-dir", str(state)],
        )  # fmt: skip
    assert again.exit_code == 0, again.output
    (summary,) = list_runs(state)
    assert (summary.run_id, summary.status, summary.passed) == ("1a2b3c4d", "succeeded", True)
    assert report_of(state, "1a2b3c4d")["cleanup"]["status"] == "complete"


def test_stop_on_interrupt_stops_the_execution_and_records_an_interrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drplan.stepfunctions.follow import Follower

    plan = write_plan(tmp_path, tiny(settle="PT5S"))
    state = tmp_path / "state"
    real_poll = Follower.poll
    polls = {"n": 0}

    def interrupted(self: Follower) -> bool:
        """Ctrl-C once, in the last step (a Wait of 5 s): the second follow goes on to the end."""
        if self.projection.records["web.settle"].status == "running" and not polls["n"]:
            polls["n"] += 1
            raise KeyboardInterrupt
        return real_poll(self)

    monkeypatch.setattr(Follower, "poll", interrupted)
    with mock_aws(config=SFN):
        seed_table()
        machine = create_machine(plan, "drill")
        result = invoke(
            start,
            [str(plan), "--engine", "stepfunctions", "--state-machine", machine, "--poll-interval", "0.2",
             "--run-id", "2b3c4d5e", "--state-dir", str(state), "--stop-on-interrupt"],
        )  # fmt: skip
        execution = "arn:aws:states:us-east-1:123456789012:execution:drplan-tiny-drill:2b3c4d5e"
        status = boto3.client("stepfunctions", region_name=REGION).describe_execution(executionArn=execution)
        tables = boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"]
        # What the stopped drill left, drplan cleanup RUN_ID removes (from the journal follow wrote).
        cleaned = invoke(cleanup, ["2b3c4d5e", "--state-dir", str(state), "--timeout", "1m"])
        tables_after = boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"]
    assert status["status"] == "ABORTED"
    assert "orders-restored-drill-2b3c4d5e" in tables  # ASL runs nothing after a stop: no cleanup
    assert result.exit_code == 3, result.output
    assert f"asked AWS to stop execution {execution}" in result.output
    (summary,) = list_runs(state)
    assert (summary.status, summary.passed, summary.exit_code) == ("interrupted", False, 3)
    report = report_of(state, "2b3c4d5e")
    assert report["engine"]["execution_status"] == "ABORTED"
    assert report["run"]["stop_reason"] == "the execution was stopped (StopExecution)"
    assert any("drplan cleanup 2b3c4d5e" in p for p in report["run"]["problems"])
    assert report["cleanup"]["status"] == "incomplete"
    steps = {s["key"]: s for s in report["steps"]}
    assert steps["db.restore"]["status"] == "succeeded"
    assert (steps["web.settle"]["status"], steps["web.settle"]["reason"]) == (
        "skipped", "the execution was stopped (StopExecution)"
    )  # fmt: skip
    assert cleaned.exit_code == 0, cleaned.output
    assert "orders-restored-drill-2b3c4d5e" not in tables_after


def test_the_definition_says_which_states_mark_each_step() -> None:
    plan = build_plan(tiny())
    for mode in ("recover", "drill"):
        machine = read_machine(export_plan(plan, mode).definition)  # type: ignore[arg-type]
        assert (machine.mode, machine.plan) == (mode, "tiny")
        kinds: dict[str, set[str]] = {}
        for role in machine.roles.values():
            kinds.setdefault(role.kind, set()).add(str(role.key))
        assert kinds["step"] == kinds["record"] == kinds["attempt"] == {"db.restore", "web.settle"}
        assert ("undone" in kinds) == (mode == "drill")
        assert machine.owner["db.restore restore table"] == "db.restore"
    with pytest.raises(NotDrplanMachine):
        read_machine({"StartAt": "x", "States": {"x": {"Type": "Succeed"}}})


def test_start_refuses_another_plan_than_the_machine_runs(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, tiny())
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**tiny(), "name": "other"}), encoding="utf-8")
    with mock_aws(config=SFN):
        machine = create_machine(plan, "drill")
        result = CliRunner().invoke(
            start,
            [
                str(other),
                "--engine",
                "stepfunctions",
                "--state-machine",
                machine,
                "--state-dir",
                str(tmp_path),
            ],
        )
        changed = write_plan(tmp_path, tiny(settle="PT2S"))  # same name, other steps
        edited = CliRunner().invoke(
            start,
            [
                str(changed),
                "--engine",
                "stepfunctions",
                "--state-machine",
                machine,
                "--state-dir",
                str(tmp_path),
            ],
        )
        executions = boto3.client("stepfunctions", region_name=REGION).list_executions(
            stateMachineArn=machine
        )
    assert isinstance(result.exception, UsageError)
    assert "runs plan tiny, not other" in str(result.exception)
    assert isinstance(edited.exception, UsageError)
    assert "is not the plan the state machine was exported from" in str(edited.exception)
    assert executions["executions"] == []  # nothing was started


def test_deploy_creates_the_stack_and_prints_the_state_machine(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, tiny())
    with mock_aws():
        result = invoke(deploy, [str(plan), "--mode", "drill", "--stack-name", "drplan-tiny-drill"])
        assert result.exit_code == 0, result.output
        assert "stack drplan-tiny-drill created" in result.output
        assert "arn:aws:states:us-east-1:123456789012:stateMachine:drplan-tiny-drill\n" in result.output
        cfn = boto3.client("cloudformation", region_name=REGION)
        (stack,) = cfn.describe_stacks(StackName="drplan-tiny-drill")["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert {t["Key"]: t["Value"] for t in stack["Tags"]} == {
            "drplan:plan": "tiny",
            "drplan:mode": "drill",
        }
        resources = cfn.describe_stack_resources(StackName="drplan-tiny-drill")["StackResources"]
        assert {r["ResourceType"] for r in resources} == {
            "AWS::IAM::Role",
            "AWS::StepFunctions::StateMachine",
        }
        again = invoke(deploy, [str(plan), "--mode", "drill", "--stack-name", "drplan-tiny-drill"])
        assert again.exit_code == 0, again.output
        assert "stack drplan-tiny-drill updated" in again.output or "unchanged" in again.output


def test_deploy_of_a_large_template_needs_an_s3_bucket(tmp_path: Path) -> None:
    services = {
        f"s{i}": {
            "steps": [
                {
                    "id": "restore",
                    "uses": "aws.dynamodb.restore_backup",
                    "with": {"source_table": f"table{i}", "target": f"table{i}-restored"},
                }
            ]
        }
        for i in range(4)
    }
    plan = write_plan(tmp_path, plan_data(services, name="wide"))
    with mock_aws():
        refused = CliRunner().invoke(deploy, [str(plan), "--mode", "drill", "--stack-name", "wide"])
        assert isinstance(refused.exception, UsageError) and refused.exception.exit_code == 2
        assert "must go through S3" in str(refused.exception)
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="templates")
        result = invoke(
            deploy, [str(plan), "--mode", "drill", "--stack-name", "wide", "--s3-bucket", "templates"]
        )
        assert result.exit_code == 0, result.output
        keys = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket="templates")["Contents"]
        assert [k["Key"].startswith("drplan/wide/template-") for k in keys] == [True]


def test_the_commands_register_in_the_drplan_group_with_examples_that_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import re
    import shlex

    import drplan.cli as cli_module

    monkeypatch.setitem(cli_module.COMMAND_MODULES, "deploy", "drplan.cli.sfn")
    monkeypatch.setitem(cli_module.COMMAND_MODULES, "start", "drplan.cli.sfn")
    monkeypatch.setitem(cli_module.COMMAND_MODULES, "approve", "drplan.cli.sfn")
    group = cli_module.cli
    for name in ("deploy", "start", "approve"):
        shown = CliRunner().invoke(group, [name, "--help"], terminal_width=100)
        assert shown.exit_code == 0, shown.output
        block = shown.stdout.split("\n  Examples:\n", 1)[1].split("\n\n", 1)[0]
        examples = [line.strip() for line in re.sub(r"\\\n\s*", "", block).splitlines()]
        assert examples and all(e.startswith(f"drplan {name} ") for e in examples)
        command = group.all_commands[name]
        for line in examples:
            command.make_context(name, shlex.split(line)[2:])  # raises on an unknown option
        opts = {opt for p in command.params for opt in (*p.opts, *getattr(p, "secondary_opts", []))}
        assert {"--color", "--no-color", "-q", "--quiet", "-v", "--verbose"} <= opts
    missing = CliRunner().invoke(
        group, ["start", "missing.json", "--engine", "stepfunctions", "--stack-name", "x"]
    )
    assert missing.exit_code == 2 and "'missing.json' is not a file" in missing.stderr
    neither = CliRunner().invoke(group, ["start", "missing.json", "--engine", "stepfunctions"])
    assert (
        neither.exit_code == 2
        and "give one of --state-machine, --stack-name or --follow-only" in neither.stderr
    )


def test_start_never_replaces_the_journal_of_another_run(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, tiny())
    state = tmp_path / "state"
    local = state / "runs" / "0a0a0a0a"
    local.mkdir(parents=True)
    header = {"kind": "run.started", "run_id": "0a0a0a0a", "time": "2026-01-01T00:00:00+00:00"}
    (local / "journal.jsonl").write_text(
        json.dumps({**header, "data": {"plan": "tiny"}}) + "\n", encoding="utf-8"
    )
    with mock_aws(config=SFN):
        seed_table()
        machine = create_machine(plan, "drill")
        args = [str(plan), "--engine", "stepfunctions", "--state-machine", machine, "--state-dir", str(state)]
        result = CliRunner().invoke(start, [*args, "--run-id", "0a0a0a0a", "--poll-interval", "0.2"])
        bad = CliRunner().invoke(start, [*args, "--run-id", "NOT-HEX"])
        executions = boto3.client("stepfunctions", region_name=REGION).list_executions(
            stateMachineArn=machine
        )
        # Following an execution never replaces a local run's journal either.
        started = boto3.client("stepfunctions", region_name=REGION).start_execution(
            stateMachineArn=machine,
            name="0a0a0a0a",
            input=json.dumps({"run_id": "0a0a0a0a", "created": "2026-01-01T00:00:00Z"}),
        )["executionArn"]
        follow = CliRunner().invoke(
            start,
            [str(plan), "--engine", "stepfunctions", "--follow-only", started, "--state-dir", str(state)],
        )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        deadline = time.monotonic() + 60
        while sfn.describe_execution(executionArn=started)["status"] == "RUNNING":  # let it end in peace
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert executions["executions"] == []
    assert "refusing to replace its journal" in str(follow.exception)
    assert isinstance(result.exception, UsageError), result.output
    assert "run 0a0a0a0a is already in" in str(result.exception)
    assert "started execution" not in result.output  # refused before anything started
    assert json.loads((local / "journal.jsonl").read_text(encoding="utf-8"))["data"] == {"plan": "tiny"}
    assert bad.exit_code == 2 and "8 lowercase hex digits" in bad.output
