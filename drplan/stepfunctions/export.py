"""``drplan export stepfunctions``: a plan, prepared exactly as a local run prepares it, into the
state machine's definition, its role's policy and a CloudFormation template (the three files).

The plan goes through drplan's own :func:`~drplan.engine.prepare.prepare` with a stand-in run id
(:data:`~drplan.stepfunctions.builder.RUN_ID_MARKER`), so every drill name is the one a local drill
with the same run id would use (``drill.name_suffix``, shortened to AWS's limits by the actions'
own ``isolate``); the state machine puts the execution's run id in the marker's place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drplan.engine.prepare import prepare
from drplan.engine.records import RunOptions
from drplan.engine.schedule import simulate
from drplan.errors import DrplanError
from drplan.model import Mode, Plan
from drplan.stepfunctions.approval import ManualApproval, approval_topic
from drplan.stepfunctions.builder import RUN_ID_MARKER, Path, Untranslatable, Values
from drplan.stepfunctions.definition import Shape, build_definition
from drplan.stepfunctions.tasks import StepInfo
from drplan.stepfunctions.translations import TRANSLATIONS

#: Step Functions' limit on a definition (docs/stepfunctions.md#limits).
DEFINITION_LIMIT = 1024 * 1024  # bytes of the definition

DEFINITION_FILE = "definition.asl.json"
POLICY_FILE = "policy.json"
TEMPLATE_FILE = "template.json"


class ExportRefused(DrplanError):
    """The plan has steps the exporter cannot translate exactly; nothing is written."""

    def __init__(self, plan: str, problems: list[tuple[str, str, str]]) -> None:
        lines = "\n".join(f"  {key} ({uses}): {why}" for key, uses, why in problems)
        super().__init__(
            f"{plan}: cannot export to Step Functions, {len(problems)} step(s) have no exact translation:\n{lines}",
            hint="docs/stepfunctions.md lists the actions the exporter translates",
        )
        self.problems = problems


class ExportTooLarge(DrplanError):
    """The definition would be over Step Functions' size limit: AWS would refuse to create it."""

    def __init__(self, plan: str, size: int) -> None:
        super().__init__(
            f"{plan}: the state machine's definition would be {size} bytes, over Step Functions' limit of "
            f"{DEFINITION_LIMIT} bytes (1 MiB)",
            hint="split the plan into smaller plans; splitting into child executions is not built yet "
            "(docs/stepfunctions.md#limits)",
        )
        self.size = size


@dataclass
class Exported:
    plan: Plan
    mode: Mode
    definition: dict[str, Any]
    policy: dict[str, Any]
    template: dict[str, Any]
    shape: Shape
    sids: dict[str, str]
    coordination_table: str | None
    notes: list[str] = field(default_factory=list)
    approvals_topic: str | None = None  # the SNS topic manual steps ask through, when there are any

    def definition_text(self) -> str:
        return json.dumps(self.definition, indent=2) + "\n"

    def size(self) -> int:
        """The definition's size as Step Functions counts it (minified)."""
        return len(json.dumps(self.definition, separators=(",", ":")).encode("utf-8"))

    def states(self) -> int:
        return _count_states(self.definition)

    def files(self) -> list[tuple[str, str]]:
        """(file name, text) of the three files the command writes."""
        return [
            (DEFINITION_FILE, self.definition_text()),
            (POLICY_FILE, json.dumps(self.policy, indent=2) + "\n"),
            (TEMPLATE_FILE, json.dumps(self.template, indent=2) + "\n"),
        ]


def _count_states(node: Any) -> int:
    if isinstance(node, Mapping):
        states = node.get("States")
        own = len(states) if isinstance(states, Mapping) else 0
        return own + sum(_count_states(v) for v in node.values())
    if isinstance(node, list):
        return sum(_count_states(v) for v in node)
    return 0


def sid_of(index: int, key: str) -> str:
    """The step's name in the state's JSON document: plain identifier characters only."""
    return f"s{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", key.replace(".", "__"))


def default_table(plan: Plan) -> str:
    return f"drplan-{plan.name}-coordination"[:255]


def export_plan(
    plan: Plan,
    mode: Mode,
    *,
    coordination_table: str | None = None,
    approvals_topic: str | None = None,
    account_id: str | None = None,
    region: str | None = None,
    options: RunOptions | None = None,
) -> Exported:
    """Translate ``plan`` for ``mode``; raises :class:`ExportRefused` naming every step that has no
    exact translation. ``options`` are the local engine's timings the state machine copies (polling
    intervals, retry delay, undo deadline): the defaults of a real run unless given.
    ``approvals_topic`` names the SNS topic manual steps ask through (default
    ``drplan-PLAN-MODE-approvals``)."""
    from drplan.actions import registry
    from drplan.stepfunctions.iam import role_policy
    from drplan.stepfunctions.template import build_template

    actions = registry()
    prepared = prepare(plan, mode, actions, run_id=RUN_ID_MARKER)
    order = prepared.order()
    sids = {key: sid_of(i, key) for i, key in enumerate(order)}
    values = Values(sids)
    tags: dict[str, Any] = {k: values.of(v) for k, v in prepared.tags.items()}
    tags["drplan:created"] = Path("$.run.created")
    problems: list[tuple[str, str, str]] = []
    infos: dict[str, StepInfo] = {}
    approvals = approval_topic(plan, mode, approvals_topic)
    for key in order:
        step = prepared.steps[key]
        translation = TRANSLATIONS.get(step.step.uses)
        if translation is None:
            problems.append((key, step.step.uses, "this action has no Step Functions translation yet"))
            continue
        info = StepInfo(
            key=key,
            sid=sids[key],
            step=step.step,
            params=step.params,
            mode=mode,
            values=values,
            tags=tags,
            estimate=step.estimate.total_seconds(),
            timeout=step.timeout.total_seconds(),
            options=options or RunOptions(),
            approvals=approvals,
        )
        try:
            if step.step.region or step.step.role_arn:
                raise Untranslatable("a step's own `region` or `role_arn` is not translated yet")
            translation.check(info)
            values.of(step.params)  # every value must be expressible
        except Untranslatable as exc:
            problems.append((key, step.step.uses, str(exc)))
            continue
        infos[key] = info
    if problems:
        raise ExportRefused(plan.name, problems)

    graph = prepared.graph.graph
    table = coordination_table or default_table(plan)
    definition, shape = build_definition(
        plan, mode, graph, infos, TRANSLATIONS, coordination=table, options=options
    )
    used_table = table if shape.coordinated else None
    manual = [k for k, info in infos.items() if info.step.uses == ManualApproval.action]
    topic = approvals.name if manual else None
    where = region or (plan.drill.region if mode == "drill" else None) or plan.aws.region
    policy = role_policy(plan, mode, used_table, topic, account_id=account_id, region=where)
    template = build_template(plan, mode, definition, used_table, topic)
    exported = Exported(
        plan, mode, definition, policy, template, shape, sids, used_table, approvals_topic=topic
    )
    if exported.size() > DEFINITION_LIMIT:
        raise ExportTooLarge(plan.name, exported.size())
    exported.notes.extend(_notes(exported, prepared.skipped, prepared.limits.parallelism, prepared))
    return exported


def _notes(
    exported: Exported, skipped: Mapping[str, str], parallelism: int | None, prepared: Any
) -> list[str]:
    """What the person exporting should know: steps left out, limits the state machine does not
    enforce, quotas the definition comes near."""
    notes = [f"{key} does not run in a {exported.mode}: {why}" for key, why in skipped.items()]
    if exported.shape.coordinated:
        notes.append(
            f"{len(exported.shape.coordinated)} step(s) are ordered in a way no nesting of Parallel states "
            f"expresses; they wait for each other through the DynamoDB table {exported.coordination_table} "
            "(the template creates it)"
        )
    graph = prepared.graph.graph
    durations = {k: s.estimate.total_seconds() for k, s in prepared.steps.items()}
    schedule = simulate(graph, durations)
    peak = _peak(schedule.start, schedule.finish)
    if parallelism is not None and peak > parallelism:
        notes.append(
            f"Step Functions starts every ready step at once: up to {peak} steps run together where "
            f"local runs start at most {parallelism} (run.parallelism is not enforced yet)"
        )
    for action, limit in sorted(prepared.limits.per_action.items()):
        members = {k for k, s in prepared.steps.items() if s.step.uses == action}
        most = _peak({k: v for k, v in schedule.start.items() if k in members}, schedule.finish)
        if most > limit:
            notes.append(
                f"up to {most} {action} steps may run at once, over its limit of {limit} (AWS's quota): "
                "the state machine does not queue them (not enforced yet)"
            )
    if exported.approvals_topic:
        manual = [k for k, s in prepared.steps.items() if s.step.uses == ManualApproval.action]
        notes.append(
            f"{len(manual)} manual step(s) wait for approval: each publishes a message to the SNS topic "
            f"{exported.approvals_topic} (the template creates it; subscribe the approvers) and waits until "
            "someone answers with drplan approve RUN_ID STEP"
        )
    if exported.plan.drill.faults and exported.mode == "drill":
        notes.append("drill.faults are not rehearsed by the exported state machine")
    return notes


def _peak(start: Mapping[str, float], finish: Mapping[str, float]) -> int:
    events = sorted([(t, 1) for t in start.values()] + [(finish[k], -1) for k in start])
    most = running = 0
    for _, delta in events:
        running += delta
        most = max(most, running)
    return most
