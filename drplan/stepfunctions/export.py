"""``drplan export stepfunctions``: a plan, prepared exactly as a local run prepares it, into the
state machine's definition, its role's policy and a CloudFormation template (the three files).

The plan goes through drplan's own :func:`~drplan.engine.prepare.prepare` with a stand-in run id
(:data:`~drplan.stepfunctions.builder.RUN_ID_MARKER`), so every drill name is the one a local drill
with the same run id would use (``drill.name_suffix``, shortened to AWS's limits by the actions'
own ``isolate``); the state machine puts the execution's run id in the marker's place.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import networkx as nx

from drplan.engine.prepare import prepare
from drplan.engine.records import RunOptions
from drplan.engine.schedule import Limits, scheduling_priority
from drplan.errors import DrplanError
from drplan.model import Mode, Plan
from drplan.stepfunctions.approval import ManualApproval, approval_topic
from drplan.stepfunctions.asl import Semaphore, width
from drplan.stepfunctions.builder import RUN_ID_MARKER, Names, Path, Scope, Untranslatable, Values
from drplan.stepfunctions.calls import Route, calls_function_name, route_of, unrelocatable
from drplan.stepfunctions.checks import CHECKS, checks_function_name, function_timeout
from drplan.stepfunctions.definition import Shape, build_definition, semaphore_slots
from drplan.stepfunctions.parts import (
    DEFINITION_LIMIT,
    EVENT_BUDGET,
    SIZE_BUDGET,
    STATE_BUDGET,
    Split,
    TooLargeForOnePart,
    part_definition,
    split,
    state_bytes,
    step_sizes,
)
from drplan.stepfunctions.tasks import StepInfo, Translation, poll_waits
from drplan.stepfunctions.translations import TRANSLATIONS

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

    def __init__(self, plan: str, why: str) -> None:
        super().__init__(
            f"{plan}: cannot export to Step Functions: {why}",
            hint="docs/stepfunctions.md#limits says what fits and how a plan is split into child executions",
        )


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
    #: The parts' definitions, by part name (``part-1`` ...), when the plan runs as child executions.
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    rollback: bool = False  # a recovery that rolls back when a step fails
    checks_function: str | None = None  # the Lambda function checks try with, when there are any
    #: The Lambda function that makes the calls of steps in another Region, when there are any.
    calls_function: str | None = None
    #: The steps whose AWS calls go to another Region or account, and how (drplan.stepfunctions.calls).
    routes: dict[str, Route] = field(default_factory=dict)

    def definition_text(self) -> str:
        return json.dumps(self.definition, indent=2) + "\n"

    def size(self) -> int:
        """The definition's size as Step Functions counts it (minified)."""
        return _size(self.definition)

    def states(self) -> int:
        return _count_states(self.definition)

    def files(self) -> list[tuple[str, str]]:
        """(file name, text) of the three files the command writes."""
        return [
            (DEFINITION_FILE, self.definition_text()),
            *((part_file(name), json.dumps(d, indent=2) + "\n") for name, d in self.parts.items()),
            (POLICY_FILE, json.dumps(self.policy, indent=2) + "\n"),
            (TEMPLATE_FILE, json.dumps(self.template, indent=2) + "\n"),
        ]


#: Why an action without a translation has none, where there is more to say than "not yet".
UNTRANSLATED = {
    "command": "a program on the machine that runs drplan: no state machine can run it",
}


def part_file(name: str) -> str:
    """The file of a part's definition: ``part-1.asl.json`` ..."""
    return f"{name}.asl.json"


def _size(definition: Mapping[str, Any]) -> int:
    return len(json.dumps(definition, separators=(",", ":")).encode("utf-8"))


def _count_states(node: Any) -> int:
    if isinstance(node, Mapping):
        states = node.get("States")
        own = len(states) if isinstance(states, Mapping) else 0
        return own + sum(_count_states(v) for v in node.values())
    if isinstance(node, list):
        return sum(_count_states(v) for v in node)
    return 0


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def sid_of(index: int, key: str) -> str:
    """The step's name in the state's JSON document: plain identifier characters only."""
    return f"s{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", key.replace(".", "__"))


def default_table(plan: Plan) -> str:
    return f"drplan-{plan.name}-coordination"[:255]


#: A part's state machine is the main one's name with ``-part-N`` after it (up to 80 characters).
MACHINE_NAME_ROOM = 80 - len("-part-999")


def default_machine_name(plan: Plan, mode: Mode, *, parts: bool = False) -> str:
    """The template's default name of the state machine; shorter when parts' names follow it."""
    return f"drplan-{plan.name}-{mode}"[: MACHINE_NAME_ROOM if parts else 80]


def export_plan(
    plan: Plan,
    mode: Mode,
    *,
    coordination_table: str | None = None,
    approvals_topic: str | None = None,
    account_id: str | None = None,
    region: str | None = None,
    options: RunOptions | None = None,
    parallelism: int | None = None,
    limit_overrides: Mapping[str, int] | None = None,
    history_budget: int = EVENT_BUDGET,
    rollback_on_failure: bool = False,
) -> Exported:
    """Translate ``plan`` for ``mode``; raises :class:`ExportRefused` naming every step that has no
    exact translation. ``options`` are the local engine's timings the state machine copies (polling
    intervals, retry delay, undo deadline): the defaults of a real run unless given.
    ``approvals_topic`` names the SNS topic manual steps ask through (default
    ``drplan-PLAN-MODE-approvals``). ``parallelism`` and ``limit_overrides`` are the local run's
    ``--parallelism`` and per-action limit overrides: the limits the state machine enforces where
    the graph could exceed them (:func:`semaphores`). ``history_budget``: the history events one
    execution may use (20,000 of AWS's 25,000 by default); a plan whose steps could write more, or
    whose definition is over 1 MiB, runs as child executions (:mod:`~drplan.stepfunctions.parts`).
    ``rollback_on_failure`` (recoveries): a run where a step fails undoes the completed steps, as
    ``drplan recover --rollback-on-failure``; a drill cleans up whatever happened anyway."""
    rollback = rollback_on_failure and mode == "recover"
    from drplan.actions import registry
    from drplan.actions._aws import max_age_of
    from drplan.stepfunctions.iam import role_policy
    from drplan.stepfunctions.template import build_template

    actions = registry()
    prepared = prepare(
        plan, mode, actions, run_id=RUN_ID_MARKER, parallelism=parallelism, limit_overrides=limit_overrides
    )
    order = prepared.order()
    sids = {key: sid_of(i, key) for i, key in enumerate(order)}
    values = Values(sids)
    tags: dict[str, Any] = {k: values.of(v) for k, v in prepared.tags.items()}
    tags["drplan:created"] = Path("$.run.created")
    problems: list[tuple[str, str, str]] = []
    infos: dict[str, StepInfo] = {}
    approvals = approval_topic(plan, mode, approvals_topic)
    checks = (
        checks_function_name(plan, mode)
        if any(s.step.uses in CHECKS for s in prepared.steps.values())
        else ""
    )
    # The Region the machine runs in (the stack's): a step's own `region` elsewhere is reached
    # through the calls function, a step's own `role_arn` through the Tasks' Credentials.
    where = region or (plan.drill.region if mode == "drill" else None) or plan.aws.region
    calls = calls_function_name(plan, mode)
    for key in order:
        step = prepared.steps[key]
        translation = TRANSLATIONS.get(step.step.uses)
        if translation is None:
            why = UNTRANSLATED.get(step.step.uses, "this action has no Step Functions translation yet")
            problems.append((key, step.step.uses, why))
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
            max_age=_seconds(
                max_age_of(step.params.get("max_age"), plan.objectives_of(step.step.service).rpo)
            ),
            checks_function=checks,
            rollback=rollback,
            route=translation.route(route_of(step.step, where, calls), step.params, calls),
        )
        try:
            translation.check(info)
            values.of(step.params)  # every value must be expressible
            if info.route is not None:
                _relocatable(translation, info)
        except Untranslatable as exc:
            problems.append((key, step.step.uses, str(exc)))
            continue
        infos[key] = info
    if problems:
        raise ExportRefused(plan.name, problems)

    undone = mode == "drill" or rollback
    if (size := state_bytes({k: i.sid for k, i in infos.items()}, undone=undone)) > STATE_BUDGET:
        raise ExportTooLarge(
            plan.name,
            f"the records of its {len(infos)} steps would take about {size // 1024} KiB of the execution's "
            f"state (each twice), which Step Functions limits to 256 KiB; split the plan into smaller plans "
            "(docs/stepfunctions.md#limits)",
        )
    graph = prepared.graph.graph
    table = coordination_table or default_table(plan)
    options = options or RunOptions()
    priority = scheduling_priority(prepared.graph.deadlines())(
        graph, {k: s.estimate.total_seconds() for k, s in prepared.steps.items()}
    )
    rank = {key: (-priority.get(key, 0.0), i) for i, key in enumerate(order)}
    limits = semaphores(graph, infos, prepared.limits, options, rank)

    def main_machine(parts_of: Split | None) -> tuple[dict[str, Any], Shape]:
        return build_definition(
            plan,
            mode,
            graph,
            infos,
            TRANSLATIONS,
            coordination=table,
            options=options,
            semaphores=limits,
            split=parts_of,
            rollback=rollback,
        )

    definition, shape = main_machine(None)
    events = {
        key: TRANSLATIONS[info.step.uses].history_events(info, undone=undone) for key, info in infos.items()
    }
    parts: dict[str, dict[str, Any]] = {}
    if _size(definition) > DEFINITION_LIMIT or sum(events.values()) > history_budget:
        order_of = {key: i for i, key in enumerate(infos)}
        slots = semaphore_slots(limits)
        sizes = step_sizes(infos, TRANSLATIONS, graph, mode, table, options, slots, rollback=rollback)
        # The sizes are estimates (a part's coordination polling is not in them): a part built over
        # 1 MiB is split again with a budget shrunk by what the estimate missed.
        size_budget = SIZE_BUDGET
        for _ in range(4):
            try:
                chosen = split(
                    graph, order_of, sizes, events, size_budget=size_budget, event_budget=history_budget
                )
            except TooLargeForOnePart as exc:
                raise ExportTooLarge(plan.name, str(exc)) from exc
            names = Names()  # one registry for every part: a shortened state name names one step
            parts = {
                part.name: part_definition(
                    part,
                    mode,
                    graph,
                    infos,
                    TRANSLATIONS,
                    plan_name=plan.name,
                    coordination=table,
                    options=options,
                    slots=slots,
                    order=order_of,
                    rollback=rollback,
                    names=names,
                )
                for part in chosen.parts
            }
            largest = max(_size(d) for d in parts.values())
            if largest <= DEFINITION_LIMIT:
                break
            size_budget = int(size_budget * DEFINITION_LIMIT / largest * 0.95)
        definition, shape = main_machine(chosen)
    used_table = table if shape.coordinated or shape.semaphores else None
    manual = [k for k, info in infos.items() if info.step.uses == ManualApproval.action]
    topic = approvals.name if manual else None
    counters = bool(shape.semaphores)
    routes = {key: info.route for key, info in infos.items() if info.route is not None}
    relocated = any(r.through_function for r in routes.values())
    policy = role_policy(
        plan,
        mode,
        used_table,
        topic,
        account_id=account_id,
        region=where,
        counters=counters,
        children=default_machine_name(plan, mode, parts=True) if parts else None,
        checks_function=checks or None,
        routes=routes,
    )
    checked = [i.params for i in infos.values() if i.step.uses in CHECKS]
    template = build_template(
        plan,
        mode,
        definition,
        used_table,
        topic,
        counters=counters,
        parts=parts,
        checks=(checks, function_timeout(checked)) if checks else None,
        routes=routes,
    )
    exported = Exported(
        plan,
        mode,
        definition,
        policy,
        template,
        shape,
        sids,
        used_table,
        approvals_topic=topic,
        parts=parts,
        rollback=rollback,
        checks_function=checks or None,
        calls_function=calls if relocated else None,
        routes=routes,
    )
    for name, machine_definition in [("the state machine", definition), *parts.items()]:
        if _size(machine_definition) > DEFINITION_LIMIT:
            raise ExportTooLarge(
                plan.name,
                f"the definition of {name} would be {_size(machine_definition)} bytes, over Step Functions' "
                f"limit of {DEFINITION_LIMIT} bytes (1 MiB)",
            )
    exported.notes.extend(_notes(exported, prepared.skipped, prepared))
    return exported


def _relocatable(translation: Translation, info: StepInfo) -> None:
    """Refuse a step with its own ``region`` or ``role_arn`` whose states have a Task that is not an
    ``aws-sdk`` call: only those are relocated (:mod:`drplan.stepfunctions.calls`). The fragments
    are built once, aside, to look."""
    scope = Scope(Names())
    translation.work(info, scope)
    translation.undo(info, scope)
    if translation.remembers(info):
        translation.remember(info, scope, "then")
    why = unrelocatable(scope.states)
    if why is not None:
        raise Untranslatable(f"a step with its own `region` or `role_arn`: {why}")


def _notes(exported: Exported, skipped: Mapping[str, str], prepared: Any) -> list[str]:
    """What the person exporting should know: steps left out, steps that wait through coordination
    records, limits enforced by semaphores, manual steps."""
    notes = [f"{key} does not run in a {exported.mode}: {why}" for key, why in skipped.items()]
    split_ = exported.shape.split
    if split_ is not None:
        notes.append(
            f"the plan is over what one execution holds (1 MiB of definition, 25,000 history events): it runs "
            f"as {len(split_.parts)} child executions, one per part "
            f"({', '.join(part_file(p.name) for p in split_.parts)}), started and awaited by the main state "
            "machine; the template reads every definition from S3: deploy with drplan deploy --s3-bucket "
            "BUCKET, or upload the .asl.json files and give template.json the DefinitionsBucket and "
            "DefinitionsPrefix parameters (docs/stepfunctions.md#child-executions)"
        )
        if split_.sliced:
            notes.append(
                f"{len(split_.sliced)} step(s) of dependency chains too large for one part run in slices one "
                "after another: a step waits for the whole slice before its own, not only for its "
                "predecessors"
            )
    if exported.shape.coordinated:
        notes.append(
            f"{len(exported.shape.coordinated)} step(s) are ordered in a way no nesting of Parallel states "
            f"expresses; they wait for each other through the DynamoDB table {exported.coordination_table} "
            "(the template creates it)"
        )
    for sem, members in exported.shape.semaphores:
        if sem.name == "run":
            notes.append(
                f"up to {width(prepared.graph.graph)} steps could run at once, over run.parallelism "
                f"({sem.limit}): each step takes one of {sem.limit} slots (a counter in the DynamoDB table "
                f"{exported.coordination_table}) before it starts; a step that finds none waits, polling "
                f"every {_intervals(sem)}"
            )
        else:
            notes.append(
                f"up to {width(prepared.graph.graph, members)} {sem.name} steps could run at once, over its "
                f"limit of {sem.limit} (AWS's quota): each takes one of {sem.limit} slots before it starts, "
                f"polling every {_intervals(sem)} when none is free"
            )
    if exported.approvals_topic:
        manual = [k for k, s in prepared.steps.items() if s.step.uses == ManualApproval.action]
        notes.append(
            f"{len(manual)} manual step(s) wait for approval: each publishes a message to the SNS topic "
            f"{exported.approvals_topic} (the template creates it; subscribe the approvers) and waits until "
            "someone answers with drplan approve RUN_ID STEP"
        )
    if exported.checks_function:
        checks = [k for k, s in prepared.steps.items() if s.step.uses in CHECKS]
        notes.append(
            f"{len(checks)} HTTP/TCP check(s) try through the Lambda function {exported.checks_function} "
            "(the template creates it): outside any VPC, it reaches public endpoints only; for services "
            "inside a VPC deploy with drplan deploy --checks-subnet SUBNET --checks-security-group GROUP "
            "(template parameters ChecksSubnetIds, ChecksSecurityGroupIds)"
        )
    relocated = [k for k, r in exported.routes.items() if r.through_function]
    if relocated:
        notes.append(
            f"{len(relocated)} step(s) call AWS in another Region, as a role whose trust policy wants an "
            f"external ID, or at a Route 53 ARC cluster's endpoints: each of their AWS calls is one "
            f"invocation of the Lambda function "
            f"{exported.calls_function} (the template creates it, with a role allowed those steps' calls)"
        )
    roles = sorted({r.role_arn for r in exported.routes.values() if r.role_arn and not r.through_function})
    if roles:
        notes.append(
            f"steps call AWS as another role ({', '.join(roles)}): the state machine's role assumes it "
            "(the Tasks' Credentials), so that role's trust policy must allow the state machine's role"
        )
    if exported.rollback:
        notes.append(
            "a recovery in which a step fails (or that ends by an unexpected error) undoes its completed steps, "
            "dependents first, as drplan recover --rollback-on-failure; the execution then fails with "
            "drplan.StepFailed, or drplan.RollbackIncomplete when something could not be undone"
        )
    if exported.plan.drill.faults and exported.mode == "drill":
        notes.append("drill.faults are not rehearsed by the exported state machine")
    return notes


def _intervals(sem: Semaphore) -> str:
    waits = sem.waits
    return f"{waits[0]} s" if len(waits) == 1 else f"{waits[0]} s growing to {waits[-1]} s"


#: The most steps one step yields to on one semaphore: each is a clause of the conditional update's
#: ``ConditionExpression`` (DynamoDB takes up to 4 KB), about 30 bytes.
MOST_AHEAD = 100


def semaphores(
    graph: nx.DiGraph,
    infos: Mapping[str, StepInfo],
    limits: Limits,
    options: RunOptions,
    rank: Mapping[str, tuple[float, int]] | None = None,
) -> list[tuple[Semaphore, list[str]]]:
    """The limits of a local run (``run.parallelism``, each action's concurrency limit) that the
    graph could exceed whatever the steps' durations (more steps than the limit that no dependency
    orders: :func:`~drplan.stepfunctions.asl.width`), each with the steps that take its slots.
    Action limits come first: a step takes its action's slot, then the run's. A limit the graph
    cannot exceed costs nothing: no semaphore, the definition is unchanged.

    A step that finds every slot taken polls with the local job polling's growing intervals, set by
    the shortest estimate among the steps sharing the semaphore (a slot is given back, at the
    soonest, when the shortest of them ends).

    ``rank``: each step's place in the local scheduler's order (lower first: its priority negated,
    then its place in the plan). A freed slot goes to the waiting step ranked first, as locally: a
    step yields to the members of strictly higher priority that could wait at the same time (no
    dependency orders the two), at most :data:`MOST_AHEAD` of them, the first ranked. Steps of the
    same priority do not yield to each other by their places in the plan: the slot would wait for
    the one placed first to poll again, for no gain against the objectives."""
    keys = list(infos)
    index = {key: i for i, key in enumerate(keys)}
    ordered = {key: nx.ancestors(graph, key) | nx.descendants(graph, key) for key in keys} if rank else {}

    def semaphore(name: str, limit: int, members: list[str]) -> Semaphore:
        shortest = min(infos[k].estimate for k in members)
        waiter = {key: f"w{index[key]}" for key in members}
        ahead: dict[str, tuple[str, ...]] = {}
        if rank:
            by_rank = sorted(members, key=lambda k: rank[k])
            for place, key in enumerate(by_rank):
                before = [k for k in by_rank[:place] if rank[k][0] < rank[key][0] and k not in ordered[key]]
                ahead[key] = tuple(waiter[k] for k in before[:MOST_AHEAD])
        return Semaphore(name, limit, tuple(poll_waits(options, shortest, math.inf)), waiter, ahead)

    out: list[tuple[Semaphore, list[str]]] = []
    for action, limit in sorted(limits.per_action.items()):
        members = [k for k in keys if infos[k].step.uses == action]
        if members and width(graph, members) > limit:
            out.append((semaphore(action, limit, members), members))
    if limits.parallelism is not None and keys and width(graph, keys) > limits.parallelism:
        out.append((semaphore("run", limits.parallelism, keys), keys))
    return out
