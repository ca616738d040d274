"""Manual steps on Step Functions: an approval through a task token, answered by ``drplan approve``.

The exported state machine runs in moto's interpreter (``execute_state_machine``): the manual step
publishes its message to the approvals topic (``sns:publish.waitForTaskToken``) and waits; the
execution stays RUNNING and the next step does not start until ``drplan approve`` finds the token
in the history and answers it. moto cannot start a second execution in a region once one has
waited for a task token (it deep-copies the backend, whose finished executions hold locks), so each
test runs one execution.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from drplan.cli.sfn import COMMANDS
from drplan.engine.events import Event
from drplan.engine.records import RunOptions
from drplan.errors import DrplanError, UsageError
from drplan.model import build_plan
from drplan.pipeline import load_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.approval import TIMER_GRACE, UNKNOWN_APPROVER
from drplan.stepfunctions.approve import _ended, approvals, execution_of
from drplan.stepfunctions.follow import Follower, start_execution
from drplan.stepfunctions.history import read_machine
from tests.runs import plan_data
from tests.test_stepfunctions import _called, _grants, lint_definition, lint_template

REGION = "us-east-1"
ACCOUNT = "123456789012"
SFN: Any = {"stepfunctions": {"execute_state_machine": True}}
FAST = RunOptions(poll_initial=1, poll_max=1, retry_delay=2, undo_timeout=120)
ONE_MACHINE = 10**9  # see tests/test_stepfunctions.py
RUN_ID = "0a1b2c3d"
approve = COMMANDS[2]


@pytest.fixture(autouse=True)
def _empty_aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "aws-config"
    empty.write_text("", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))


@pytest.fixture(autouse=True)
def _quiet_moto() -> Iterator[None]:
    logger = logging.getLogger("moto")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture
def _moto_keeps_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2's SendTaskFailure handler passes the error on but drops the ``cause`` (its
    ``responses.py``); Step Functions keeps it. Pass it on, as AWS does."""
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return EmptyResult()

    monkeypatch.setattr(StepFunctionResponse, "send_task_failure", send_task_failure)


def gated(timeout: str = "PT2M", retries: int = 0, after: str = "PT1S") -> dict[str, Any]:
    """A wait, then a manual approval, then a wait that depends on it; a step beside them."""
    manual: dict[str, Any] = {
        "id": "approve",
        "uses": "manual",
        "timeout": timeout,
        "with": {"instructions": "Check the restored {orders}: 'yes' if they look right", "role": "dba"},
    }
    if retries:
        manual["retries"] = retries
    return plan_data(
        {
            "db": {"steps": [{"id": "settle", "uses": "wait", "with": {"duration": "PT1S"}}]},
            "gate": {"depends_on": ["db"], "steps": [manual]},
            "web": {
                "depends_on": ["gate"],
                "steps": [{"id": "go", "uses": "wait", "with": {"duration": after}}],
            },
            "side": {"steps": [{"id": "beside", "uses": "wait", "with": {"duration": "PT1S"}}]},
        },
        name="gated",
        contacts=[{"role": "dba", "name": "Jane Roe", "contact": "jane@example.com"}],
    )


def write_plan(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def deploy_as_the_template_does(plan_path: Path) -> tuple[str, str]:
    """The approvals topic (with an SQS subscriber, to read what people are sent) and the state
    machine, as the template creates them: (state machine ARN, queue URL)."""
    plan, _ = load_plan(str(plan_path))
    exported = export_plan(plan, "recover", options=FAST, history_budget=ONE_MACHINE)
    assert exported.approvals_topic == "drplan-gated-recover-approvals"
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name=exported.approvals_topic)["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="approvers")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    machine = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name="drplan-gated-recover",
        definition=json.dumps(exported.definition),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/drplan",
    )["stateMachineArn"]
    return str(machine), str(queue)


def wait_for_approval(sfn: Any, execution: str, key: str = "gate.approve", limit: float = 60) -> None:
    """Until the step has asked for approval (its TaskScheduled event is in the history)."""
    started = time.monotonic()
    while key not in approvals(sfn, execution)[1]:
        assert time.monotonic() - started < limit, "the manual step never asked for approval"
        time.sleep(0.2)


def wait_until_ended(sfn: Any, execution: str, limit: float = 60) -> dict[str, Any]:
    started = time.monotonic()
    while True:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return dict(described)
        assert time.monotonic() - started < limit, "the execution did not end"
        time.sleep(0.2)


def steps_entered(sfn: Any, execution: str) -> set[str]:
    """The steps whose ``drplan:step`` state the execution has entered."""
    definition = sfn.describe_state_machine_for_execution(executionArn=execution)["definition"]
    roles = read_machine(definition).roles
    entered = set()
    for event in sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]:
        name = event.get("stateEnteredEventDetails", {}).get("name")
        role = roles.get(name) if name else None
        if role is not None and role.kind == "step" and role.key:
            entered.add(role.key)
    return entered


def records(described: dict[str, Any]) -> dict[str, Any]:
    text = described.get("output") if described["status"] == "SUCCEEDED" else described.get("cause")
    return dict(json.loads(str(text))["steps"])


@dataclass
class Answered:
    exit_code: int
    output: str


def invoke(args: list[str]) -> Answered:
    """``drplan approve ARGS``: the exit code and message ``drplan.cli.main`` turns it into (the
    command is called directly: its COMMAND_MODULES entry is not this module's)."""
    result = CliRunner().invoke(approve, args)
    if isinstance(result.exception, DrplanError):
        return Answered(result.exception.exit_code, f"{result.output}drplan: error: {result.exception}")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Answered(result.exit_code, result.output)


# --- the export --------------------------------------------------------------------------------------


def test_a_manual_step_exports_as_a_task_token_wait_that_lints_and_the_role_may_publish() -> None:
    plan = build_plan(gated(timeout="PT20M"))
    for mode in ("recover", "drill"):
        exported = export_plan(plan, mode)
        assert lint_definition(exported.definition) == [], mode
        assert lint_template(exported.template) == [], mode
        text = json.dumps(exported.definition)
        assert "arn:aws:states:::sns:publish.waitForTaskToken" in text
        topic = f"drplan-gated-{mode}-approvals"
        assert exported.approvals_topic == topic
        # Least privilege: sns:Publish on the approvals topic only, and every call granted.
        statements = exported.policy["Statement"]
        publish = [s for s in statements if "sns:Publish" in s["Action"]]
        assert publish == [
            {
                "Sid": "Approvals",
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": f"arn:aws:sns:us-east-1:*:{topic}",
            }
        ]
        granted = {a for s in statements for a in s["Action"]}
        assert all(any(_grants(a, c) for a in granted) for c in _called(exported.definition))
        resources = exported.template["Resources"]
        assert resources["ApprovalsTopic"]["Properties"]["TopicName"] == topic
        assert "ApprovalsTopic" in resources["StateMachine"]["DependsOn"]
        assert exported.template["Outputs"]["ApprovalsTopicArn"]["Value"] == {"Ref": "ApprovalsTopic"}
        assert any("drplan approve RUN_ID STEP" in n for n in exported.notes)
    # The step's timeout is the task's; the step's timer waits a little longer, so an unanswered
    # approval ends with its own message.
    task = _find(exported.definition, lambda s: s.get("Comment") == "drplan:approval gate.approve")
    assert task["TimeoutSeconds"] == 20 * 60
    timer = _find(
        exported.definition, lambda s: s.get("Type") == "Wait" and s.get("Next") == "gate.approve timed out"
    )
    assert timer["Seconds"] == 20 * 60 + TIMER_GRACE


def test_an_approvals_topic_must_be_an_sns_name() -> None:
    with pytest.raises(UsageError, match="is not an SNS topic name"):
        export_plan(build_plan(gated()), "recover", approvals_topic="ops{'x'}")
    exported = export_plan(build_plan(gated()), "recover", approvals_topic="ops-approvals")
    assert ":sns:{}:{}:ops-approvals'" in json.dumps(exported.definition)  # the ARN the task publishes to
    assert exported.template["Resources"]["ApprovalsTopic"]["Properties"]["TopicName"] == "ops-approvals"


def test_a_plan_without_manual_steps_gets_no_topic_and_no_publish() -> None:
    data = gated()
    del data["services"]["gate"]
    data["services"]["web"]["depends_on"] = ["db"]
    exported = export_plan(build_plan(data), "recover")
    assert exported.approvals_topic is None
    assert "ApprovalsTopic" not in exported.template["Resources"]
    assert not [s for s in exported.policy["Statement"] if "sns:Publish" in s["Action"]]


def _find(node: Any, match: Any) -> dict[str, Any]:
    if isinstance(node, dict):
        if match(node):
            return node
        for value in node.values():
            try:
                return _find(value, match)
            except LookupError:
                pass
    elif isinstance(node, list):
        for value in node:
            try:
                return _find(value, match)
            except LookupError:
                pass
    raise LookupError("no such state")


def test_deploy_creates_the_approvals_topic_and_says_to_subscribe(tmp_path: Path) -> None:
    plan_path = write_plan(tmp_path, gated())
    with mock_aws():
        deployed = CliRunner().invoke(COMMANDS[0], [str(plan_path), "--stack-name", "drplan-gated"])
        topics = boto3.client("sns", region_name=REGION).list_topics()["Topics"]
        resources = boto3.client("cloudformation", region_name=REGION).describe_stack_resources(
            StackName="drplan-gated"
        )["StackResources"]
    assert deployed.exit_code == 0, deployed.output
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:drplan-gated-recover-approvals"
    assert [t["TopicArn"] for t in topics] == [topic]
    assert "AWS::SNS::Topic" in {r["ResourceType"] for r in resources}
    assert f"manual steps ask for approval on SNS topic {topic}" in deployed.output
    assert f"aws sns subscribe --topic-arn {topic} --protocol email" in deployed.output


def test_an_approval_is_over_once_a_task_event_of_its_branch_ends_it() -> None:
    events = {
        5: {"id": 5, "type": "TaskScheduled", "previousEventId": 4},
        6: {"id": 6, "type": "TaskStarted", "previousEventId": 5},
        7: {"id": 7, "type": "TaskSubmitted", "previousEventId": 6},
        9: {"id": 9, "type": "TaskSucceeded", "previousEventId": 8},  # another branch's task
    }
    assert not _ended(events, 5)
    events[10] = {"id": 10, "type": "TaskTimedOut", "previousEventId": 7}
    assert _ended(events, 5)


def test_the_execution_of_a_run_is_named_after_it() -> None:
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:drplan-shop"
    assert (
        execution_of(machine, RUN_ID) == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:drplan-shop:{RUN_ID}"
    )


# --- executed in moto ----------------------------------------------------------------------------------


def test_the_execution_waits_at_the_approval_until_drplan_approve(tmp_path: Path) -> None:
    plan_path = write_plan(tmp_path, gated(after="PT3S"))
    state = tmp_path / "state"
    events: list[Event] = []
    with mock_aws(config=SFN):
        machine, queue = deploy_as_the_template_does(plan_path)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        _, execution = start_execution(sfn, machine, run_id=RUN_ID)
        wait_for_approval(sfn, execution)
        time.sleep(1.5)  # long enough for web.go to have started, were it not waiting
        # Waiting: the execution runs, the step after the approval has not started, the one
        # beside it has finished.
        assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
        entered = steps_entered(sfn, execution)
        assert "gate.approve" in entered and "side.beside" in entered
        assert "web.go" not in entered
        # The follower says who must do what.
        plan, _ = load_plan(str(plan_path))
        follower = Follower(sfn, plan, execution, state, [events.append])
        assert follower.poll() is False
        notes = [e.data.get("note") for e in events if e.kind == "step.progress" and e.step == "gate.approve"]
        assert f"waiting for approval: drplan approve {RUN_ID} gate.approve" in notes
        assert follower.projection.records["gate.approve"].status == "running"
        # What the approvers are sent.
        message = json.loads(
            boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=queue)["Messages"][0]["Body"]
        )
        assert message["Subject"] == f"drplan: approval needed for gate.approve in run {RUN_ID}"
        body = message["Message"]
        assert "Check the restored {orders}: 'yes' if they look right" in body
        assert "Role: dba (Jane Roe <jane@example.com>)" in body
        assert f"drplan approve {RUN_ID} gate.approve --execution-arn {execution}\n" in body
        assert "--reject" in body and "Unanswered within 2m" in body
        assert message["MessageAttributes"]["drplan.step"]["Value"] == "gate.approve"

        # Approved from the run index drplan start keeps (no ARN needed on the following machine).
        answered = invoke([RUN_ID, "gate.approve", "--state-dir", str(state), "--region", REGION])
        assert answered.exit_code == 0, answered.output
        assert f"approved gate.approve of run {RUN_ID} as " in answered.output
        # Once the answer is in the history, the approval is over (web.go still runs for 3 s).
        deadline = time.monotonic() + 30
        while not approvals(sfn, execution)[1]["gate.approve"].answered:
            assert time.monotonic() < deadline, "the answer never reached the history"
            time.sleep(0.1)
        twice = invoke([RUN_ID, "gate.approve", "--execution-arn", execution])
        followed = follower.follow(0.2)
        again = invoke([RUN_ID, "gate.approve", "--execution-arn", execution])
    assert followed.status == "SUCCEEDED"
    assert followed.exit_code == 0
    # The evidence says who approved: user@host and the AWS principal, as a local run records it.
    report = followed.result.report
    step = next(s for s in report["steps"] if s["key"] == "gate.approve")
    assert step["status"] == "succeeded"
    approver = step["outputs"]["approved_by"]
    assert "@" in approver and f"arn:aws:sts::{ACCOUNT}:" in approver
    assert any(e.kind == "step.progress" and e.data.get("note") == f"approved by {approver}" for e in events)
    assert {s["key"]: s["status"] for s in report["steps"]}["web.go"] == "succeeded"
    # Nothing waits any more: exit 1, nothing sent.
    assert twice.exit_code == 1, twice.output
    assert "gate.approve is not waiting" in twice.output
    assert again.exit_code == 1
    assert "SUCCEEDED: nothing waits for approval" in again.output


@pytest.mark.usefixtures("_moto_keeps_the_cause")
def test_a_rejection_fails_the_step_and_skips_its_dependents(tmp_path: Path) -> None:
    plan_path = write_plan(tmp_path, gated())
    with mock_aws(config=SFN):
        machine, _ = deploy_as_the_template_does(plan_path)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        _, execution = start_execution(sfn, machine, run_id=RUN_ID)
        wait_for_approval(sfn, execution)
        wrong = invoke([RUN_ID, "web.go", "--state-machine", machine])
        rejected = invoke(
            [
                RUN_ID,
                "gate.approve",
                "--state-machine",
                machine,
                "--reject",
                "--reason",
                "orders are a day old",
            ]
        )
        described = wait_until_ended(sfn, execution)
    assert wrong.exit_code == 2
    assert (
        "web.go is not a manual step of this state machine (its manual steps: gate.approve)" in wrong.output
    )
    assert rejected.exit_code == 0, rejected.output
    assert "rejected gate.approve" in rejected.output
    assert described["status"] == "FAILED"
    assert described["error"] == "drplan.StepFailed"
    steps = records(described)
    gate = steps["s1_gate__approve"]
    assert gate["status"] == "failed"
    assert gate["error"] == "drplan.Rejected"
    assert gate["cause"].startswith("rejected by ") and gate["cause"].endswith(
        "with drplan approve: orders are a day old"
    )
    assert steps["s2_web__go"] == {
        "status": "skipped",
        "root": "gate.approve",
        "reason": "`gate.approve` did not succeed",
        "out": {},
    }
    assert steps["s3_side__beside"]["status"] == "succeeded"


def test_an_approval_nobody_answers_fails_the_step_at_its_timeout(tmp_path: Path) -> None:
    plan_path = write_plan(tmp_path, gated(timeout="PT3S"))
    with mock_aws(config=SFN):
        machine, _ = deploy_as_the_template_does(plan_path)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        _, execution = start_execution(sfn, machine, run_id=RUN_ID)
        described = wait_until_ended(sfn, execution)
        late = invoke([RUN_ID, "gate.approve", "--execution-arn", execution])
    assert described["status"] == "FAILED"
    steps = records(described)
    assert steps["s1_gate__approve"]["status"] == "failed"
    assert (
        steps["s1_gate__approve"]["cause"] == "nobody approved or rejected the step within its timeout (3.0s)"
    )
    assert steps["s2_web__go"]["status"] == "skipped"
    assert late.exit_code == 1
    assert "FAILED: nothing waits for approval" in late.output


def test_an_answer_that_names_nobody_is_recorded_as_such(tmp_path: Path) -> None:
    """``aws stepfunctions send-task-success`` by hand, without ``approved_by``: the step goes on,
    and its record says the approver is unknown rather than guessing."""
    plan_path = write_plan(tmp_path, gated())
    with mock_aws(config=SFN):
        machine, _ = deploy_as_the_template_does(plan_path)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        _, execution = start_execution(sfn, machine, run_id=RUN_ID)
        wait_for_approval(sfn, execution)
        token = approvals(sfn, execution)[1]["gate.approve"].token
        sfn.send_task_success(taskToken=token, output="{}")
        described = wait_until_ended(sfn, execution)
    assert described["status"] == "SUCCEEDED"
    assert records(described)["s1_gate__approve"]["out"] == {"approved_by": UNKNOWN_APPROVER}


def test_approve_refuses_what_it_cannot_resolve(tmp_path: Path) -> None:
    unknown = invoke([RUN_ID, "gate.approve", "--state-dir", str(tmp_path / "none")])
    assert unknown.exit_code == 2
    assert "pass --execution-arn" in unknown.output
    both = invoke([RUN_ID, "gate.approve", "--stack-name", "s", "--state-machine", "arn:x"])
    assert both.exit_code == 2
    reason = invoke([RUN_ID, "gate.approve", "--reason", "why", "--stack-name", "s"])
    assert reason.exit_code == 2 and "--reason goes with --reject" in reason.output
    other = invoke(
        [RUN_ID, "gate.approve", "--execution-arn", f"arn:aws:states:{REGION}:{ACCOUNT}:execution:m:ffffffff"]
    )
    assert other.exit_code == 2 and "is not the execution of run" in other.output
