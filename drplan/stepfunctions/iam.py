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

A step in another Region (:mod:`drplan.stepfunctions.calls`) makes its calls through the calls
function: its statements go to that function's role (:func:`calls_policy`), and the state
machine's role may only invoke the function. A step with its own ``role_arn`` makes its calls as
that role: drplan's policy already lets the caller assume it (``sts:AssumeRole``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from drplan.iam import POLICY_VERSION, build_policy, partition
from drplan.model import Mode, Plan

if TYPE_CHECKING:
    from drplan.stepfunctions.calls import Route

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
    routes: Mapping[str, Route] | None = None,
) -> dict[str, Any]:
    """``children``: the main state machine's name when the plan runs as child executions (its
    parts are ``<children>-part-N``): the role may start them, follow them and stop them, and
    manage the EventBridge rule Step Functions uses to learn that a child ended. ``routes``: the
    steps whose calls go elsewhere (:mod:`drplan.stepfunctions.calls`); those through the calls
    function are left to its role (:func:`calls_policy`), the machine's may invoke it."""
    elsewhere = _through_function(routes)
    account = account_id or plan.aws.account_id or "*"
    where = region or "*"
    arn = f"arn:{partition(where)}"
    statements = _step_statements(
        _without(plan, set(elsewhere)) if elsewhere else plan, mode, account_id=account_id, region=region
    )
    if elsewhere:
        function = next(iter(elsewhere.values())).function  # one per machine
        statements.append(
            {
                "Sid": "CallsFunction",
                "Effect": "Allow",
                "Action": ["lambda:InvokeFunction"],
                "Resource": f"{arn}:lambda:{where}:{account}:function:{function}",
            }
        )
    return _with_machine_statements(
        statements,
        table,
        approvals_topic,
        account,
        where,
        arn,
        counters,
        children,
        checks_function,
    )


def calls_policy(
    plan: Plan,
    mode: Mode,
    routes: Mapping[str, Route],
    *,
    account_id: str | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The policy of the calls function's role: the statements of the steps whose calls it makes,
    as drplan's own policy scopes them (each in its step's Region, and ``sts:AssumeRole`` on a
    step's ``role_arn``), and the extra calls their translations make, nothing else."""
    keys = set(_through_function(routes))
    return {
        "Version": POLICY_VERSION,
        "Statement": _step_statements(_only(plan, keys), mode, account_id=account_id, region=region),
    }


def _through_function(routes: Mapping[str, Route] | None) -> dict[str, Route]:
    return {key: route for key, route in (routes or {}).items() if route.through_function}


def _only(plan: Plan, keys: set[str]) -> Plan:
    """The plan with only the steps ``keys`` (and no run state: the function keeps none)."""
    services = {
        name: replace(service, steps=tuple(s for s in service.steps if s.key in keys))
        for name, service in plan.services.items()
    }
    return replace(plan, services=services, run=replace(plan.run, state=None))


def _without(plan: Plan, keys: set[str]) -> Plan:
    services = {
        name: replace(service, steps=tuple(s for s in service.steps if s.key not in keys))
        for name, service in plan.services.items()
    }
    return replace(plan, services=services)


def _step_statements(
    plan: Plan, mode: Mode, *, account_id: str | None, region: str | None
) -> list[dict[str, Any]]:
    """drplan's policy for the plan's steps, without what only a local run calls, and the calls
    the translations' fragments make besides (``extra_iam``), in each step's Region."""
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
    return statements


def _with_machine_statements(
    statements: list[dict[str, Any]],
    table: str | None,
    approvals_topic: str | None,
    account: str,
    where: str,
    arn: str,
    counters: bool,
    children: str | None,
    checks_function: str | None,
) -> dict[str, Any]:
    """``statements`` and what only the state machine calls: its coordination table, approvals
    topic, checks function and child executions."""
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
