"""``manual`` steps in a state machine: an approval through a task token.

A local run asks at the terminal (or takes ``--approve STEP``). An execution in AWS has no
terminal: the step publishes a message to the stack's **SNS topic** and waits for its task token
(``arn:aws:states:::sns:publish.waitForTaskToken``). People subscribe to the topic (email, chat,
a pager); the message says which step of which run, the instructions, the role (and its contact
from the plan), and the commands that approve or reject it. ``drplan approve RUN_ID STEP`` finds the
token in the execution's history (the ``TaskScheduled`` event holds the resolved parameters, so
the token is in the message attribute ``drplan.task_token``) and answers with ``SendTaskSuccess``
(the approver's identity, recorded as the step's ``approved_by`` output, as a local run records
it) or ``SendTaskFailure`` (the step fails, its dependents are skipped).

Why SNS: the integration needs nothing beyond what the stack deploys (the topic), a topic is how
people are told (an email subscription needs no code), and moto's interpreter runs it (its
``StateTaskServiceSns`` supports ``waitForTaskToken``), so the tests execute it. The topic's ARN is
worked out at run time from the execution's own ARN (partition, region, account), so the
definition runs unchanged from the template, from ``definition.asl.json`` and in moto.

The step's ``timeout`` is the task's ``TimeoutSeconds``: an approval nobody answers fails the step
with its own message. The step's timer (which also covers retries, see
:mod:`drplan.stepfunctions.asl`) waits :data:`TIMER_GRACE` seconds more, so that message wins.
"""

from __future__ import annotations

import re
from typing import Any

from drplan.durations import humanize
from drplan.errors import UsageError
from drplan.model import Mode, Plan
from drplan.stepfunctions.builder import Path, Scope, State, Untranslatable, goto, role
from drplan.stepfunctions.tasks import (
    THROTTLE_RETRY,
    ApprovalTopic,
    StepInfo,
    Translation,
    choice,
    fail,
    pass_state,
)

INTEGRATION = "arn:aws:states:::sns:publish.waitForTaskToken"

#: The message attributes the approval carries (``email-json``, SQS and Lambda subscribers see them).
TOKEN_ATTRIBUTE = "drplan.task_token"
STEP_ATTRIBUTE = "drplan.step"
RUN_ATTRIBUTE = "drplan.run_id"

#: The error a rejection fails the step with (``drplan approve --reject``: the cause says who
#: rejected it and why).
REJECTED = "drplan.Rejected"

#: The history role of the state that waits (``drplan:approval KEY``).
ROLE = "approval"

#: Seconds the step's timer waits beyond the approval's own timeout.
TIMER_GRACE = 5

#: SNS errors worth publishing again (as Step Functions names them: ``SNS.<code>Exception``).
SNS_TRANSIENT = ["SNS.ThrottledException", "SNS.InternalErrorException", "SNS.KMSThrottlingException"]

#: ``approved_by`` when the task token was answered without saying who (``aws stepfunctions
#: send-task-success`` by hand): recorded as such, never guessed.
UNKNOWN_APPROVER = (
    "unknown: SendTaskSuccess without approved_by (not drplan approve); CloudTrail names the caller"
)

#: SNS caps a subject at 100 characters.
_SUBJECT_KEY = 50


def topic_name(plan: Plan, mode: Mode) -> str:
    """The approvals topic's default name (SNS allows letters, digits, ``-`` and ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"drplan-{plan.name}-{mode}-approvals")[:256]


def approval_topic(plan: Plan, mode: Mode, name: str | None = None) -> ApprovalTopic:
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", name):
        raise UsageError(f"{name!r} is not an SNS topic name (letters, digits, `-` and `_`, at most 256)")
    contacts = {c.role: f"{c.name} <{c.contact}>" for c in plan.contacts}
    return ApprovalTopic(name or topic_name(plan, mode), plan.name, contacts)


def topic_arn(topic: str) -> Path:
    """The topic's ARN from the execution's (``arn:PARTITION:states:REGION:ACCOUNT:execution:...``)."""
    part = "States.ArrayGetItem(States.StringSplit($.run.execution, ':'), {})"
    return Path(
        f"States.Format('arn:{{}}:sns:{{}}:{{}}:{topic}', {part.format(1)}, {part.format(3)}, {part.format(4)})"
    )


class ManualApproval(Translation):
    action = "manual"
    understood = frozenset({"instructions", "role"})
    timer_grace = TIMER_GRACE

    def check(self, info: StepInfo) -> None:
        super().check(info)
        if info.approvals is None:
            raise Untranslatable("the export was not given an approvals topic")
        self.literal(info, "role")

    def waits(self, info: StepInfo) -> None:
        return None  # waits for its task token

    def work(self, info: StepInfo, scope: Scope) -> str:
        assert info.approvals is not None
        key, timeout = info.key, max(1, round(info.timeout))
        named = scope.add(
            info.label("approved"), pass_state({"approved_by": Path("$.w.answer.approved_by")}, None)
        )
        unnamed = scope.add(
            info.label("approved (approver unknown)"), pass_state({"approved_by": UNKNOWN_APPROVER}, None)
        )
        who = scope.add(
            info.label("approver named?"),
            choice(
                [
                    {"Variable": "$.w.answer.approved_by", "IsPresent": False, "Next": unnamed},
                    {"Variable": "$.w.answer.approved_by", "IsString": True, "Next": named},
                ],
                unnamed,
            ),
        )
        unanswered = scope.add(
            info.label("not answered"),
            fail(f"nobody approved or rejected the step within its timeout ({humanize(info.timeout)})"),
        )
        ask = scope.add(
            info.label("wait for approval"),
            role(self._task(info, timeout, who, unanswered), ROLE, key),
        )
        return scope.add(info.label("approval request"), pass_state(self._texts(info), ask, result="$.w.ask"))

    def _task(self, info: StepInfo, timeout: int, then: str, unanswered: str) -> State:
        args = ", ".join(
            [
                "$.w.ask.head",
                "$.w.ask.instructions",
                "$.w.ask.approve",
                "$.run.id",
                "$.w.ask.step",
                "$.run.execution",
                "$.w.ask.reject",
                "$.run.id",
                "$.w.ask.step",
                "$.run.execution",
                "$.w.ask.tail",
            ]
        )
        parameters: dict[str, Any] = {
            "TopicArn.$": "$.w.ask.topic",
            "Subject.$": "States.Format('{}{}', $.w.ask.subject, $.run.id)",
            "Message.$": f"States.Format('{'{}' * 11}', {args})",
            "MessageAttributes": {
                TOKEN_ATTRIBUTE: {"DataType": "String", "StringValue.$": "$$.Task.Token"},
                STEP_ATTRIBUTE: {"DataType": "String", "StringValue": info.key},
                RUN_ATTRIBUTE: {"DataType": "String", "StringValue.$": "$.run.id"},
            },
        }
        state: State = {
            "Type": "Task",
            "Resource": INTEGRATION,
            "Parameters": parameters,
            "TimeoutSeconds": timeout,
            "ResultPath": "$.w.answer",
            "Retry": [{"ErrorEquals": SNS_TRANSIENT, **THROTTLE_RETRY}],
            "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.w.error", "Next": unanswered}],
        }
        return goto(state, then)

    def _texts(self, info: StepInfo) -> dict[str, Any]:
        """The message's pieces. The instructions are any text: they go in as an argument of
        ``States.Format``, never inside its format string (which cannot hold quotes or braces)."""
        assert info.approvals is not None
        topic = info.approvals
        what = "recovery" if info.mode == "recover" else "drill"
        head = f"drplan: step {info.key} of plan {topic.plan} ({what}) waits for approval.\n\n"
        who = info.params.get("role")
        if who:
            contact = topic.contacts.get(str(who))
            head += f"Role: {who}" + (f" ({contact})" if contact else "") + "\n"
        timeout = humanize(info.timeout)
        return {
            "topic": topic_arn(topic.name),
            "subject": f"drplan: approval needed for {info.key[:_SUBJECT_KEY]} in run ",
            "head": head + "Instructions: ",
            "instructions": info.v(info.params["instructions"]),
            "approve": "\n\nApprove:  drplan approve ",
            "step": f" {info.key} --execution-arn ",
            "reject": "\nReject:   drplan approve ",
            "tail": ' --reject --reason "..."\n\n'
            f"Unanswered within {timeout} (the step's timeout), the step fails and the steps that "
            "depend on it are skipped.\n",
        }
