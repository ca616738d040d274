"""The policy of the state machine's role: what its Task states call, and nothing more.

It starts from drplan's own least-privilege policy for the plan (:func:`drplan.iam.build_policy`:
each step's IAM actions, scoped to the plan's names, deletions conditioned on drplan's tags),
leaves out what only a local run calls (``sts:GetCallerIdentity`` for the account guard,
``tag:GetResources`` for ``drplan cleanup``), and adds what only the state machine calls:

- each translation's extra calls (:meth:`~drplan.stepfunctions.tasks.Translation.extra_iam`: the
  tags its undo reads before deleting, the item writes AWS checks on a restored table);
- ``GetItem``/``PutItem`` on the coordination table, when the graph needs it (and ``UpdateItem``
  when the definition enforces concurrency limits with counters);
- ``sns:Publish`` on the approvals topic, when the plan has manual steps (the approval's message;
  the answer comes back through ``SendTaskSuccess``, which the approver calls, not the role);
- ``lambda:InvokeFunction`` on the checks function, when the plan has HTTP or TCP checks
  (:mod:`drplan.stepfunctions.checks`);
- starting, following and stopping the parts' executions when the plan runs as child executions
  (:mod:`drplan.stepfunctions.parts`), and the EventBridge rule ``.sync`` integrations use.
"""

from __future__ import annotations

from typing import Any

from drplan.iam import POLICY_VERSION, build_policy, partition
from drplan.model import Mode, Plan

LOCAL_ONLY = frozenset({"sts:GetCallerIdentity", "tag:GetResources"})


def role_policy(
    plan: Plan,
    mode: Mode,
    table: str | None,
    approvals_topic: str | None = None,
    *,
    account_id: str | None = None,
    region: str | None = None,
    counters: bool = False,
    children: str | None = None,
    checks_function: str | None = None,
) -> dict[str, Any]:
    """``children``: the main state machine's name when the plan runs as child executions (its
    parts are ``<children>-part-N``): the role may start them, follow them and stop them, and
    manage the EventBridge rule Step Functions uses to learn that a child ended."""
    from drplan.actions import registry
    from drplan.engine.prepare import prepare_steps
    from drplan.iam import RUN_ID_MARKER
    from drplan.stepfunctions.translations import TRANSLATIONS

    document = build_policy(plan, mode, account_id=account_id, region=region).document
    statements: list[dict[str, Any]] = []
    for statement in document["Statement"]:
        actions = [a for a in statement["Action"] if a not in LOCAL_ONLY]
        if actions:
            statements.append({**statement, "Action": actions})
    account = account_id or plan.aws.account_id or "*"
    where = region or "*"
    arn = f"arn:{partition(where)}"
    extra: dict[str, set[str]] = {}
    steps, _ = prepare_steps(plan, mode, registry(), run_id=RUN_ID_MARKER)
    for prepared in steps.values():
        translation = TRANSLATIONS.get(prepared.step.uses)
        if translation is None:
            continue
        step_region = prepared.step.region or where
        for action, resource in translation.extra_iam(
            prepared.params, f"{arn}:{{service}}:{step_region}:{account}:"
        ):
            extra.setdefault(action, set()).add(resource)
    by_resources: dict[frozenset[str], set[str]] = {}
    for action, where_used in sorted(extra.items()):
        by_resources.setdefault(frozenset(where_used), set()).add(action)
    for n, (arns, calls) in enumerate(sorted(by_resources.items(), key=lambda kv: sorted(kv[1]))):
        statements.append(
            {
                "Sid": f"StateMachineCalls{n + 1}",
                "Effect": "Allow",
                "Action": sorted(calls),
                "Resource": sorted(arns) if len(arns) > 1 else next(iter(arns)),
            }
        )
    if table is not None:
        statements.append(
            {
                "Sid": "CoordinationRecords",
                "Effect": "Allow",
                # UpdateItem: the semaphores' counters, when the definition enforces limits.
                "Action": ["dynamodb:GetItem", "dynamodb:PutItem"]
                + (["dynamodb:UpdateItem"] if counters else []),
                "Resource": f"{arn}:dynamodb:{where}:{account}:table/{table}",
            }
        )
    if approvals_topic is not None:
        statements.append(
            {
                "Sid": "Approvals",
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": f"{arn}:sns:{where}:{account}:{approvals_topic}",
            }
        )
    if checks_function is not None:
        statements.append(
            {
                "Sid": "ChecksFunction",
                "Effect": "Allow",
                "Action": ["lambda:InvokeFunction"],
                "Resource": f"{arn}:lambda:{where}:{account}:function:{checks_function}",
            }
        )
    if children is not None:
        states = f"{arn}:states:{where}:{account}"
        statements += [
            {
                "Sid": "ChildExecutions",
                "Effect": "Allow",
                "Action": ["states:StartExecution"],
                "Resource": f"{states}:stateMachine:{children}-part-*",
            },
            {
                "Sid": "ChildExecutionsFollow",
                "Effect": "Allow",
                "Action": ["states:DescribeExecution", "states:StopExecution"],
                "Resource": f"{states}:execution:{children}-part-*:*",
            },
            {
                "Sid": "ChildExecutionsEvents",
                "Effect": "Allow",
                "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                "Resource": f"{arn}:events:{where}:{account}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
            },
        ]
    return {"Version": POLICY_VERSION, "Statement": statements}
