"""``drplan export arc-region-switch``: the plan's recovery, prepared as a local run prepares it,
into an ARC Region switch ``CreatePlan`` request, a CloudFormation template and a report.

Steps whose action has a block of the same meaning become blocks (:mod:`~drplan.arcswitch.blocks`);
the others are reported with the reason, and their place in the order is kept (two mapped steps
ordered through an unmapped one stay ordered). The graph of the mapped steps becomes ARC's
stages (:mod:`~drplan.arcswitch.structure`): once for the recovery workflow, and once, of the
blocks that act in both directions, for the failback workflow (the same order, the way back).
The alarms of ``check.cloudwatch_alarm`` steps become the plan's application health alarms
(:mod:`~drplan.arcswitch.alarms`). The request is validated against botocore's model before
anything is written (:mod:`~drplan.arcswitch.request`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from drplan.arcswitch.alarms import Alarm, associated_alarms
from drplan.arcswitch.blocks import Block, Unmappable, translate
from drplan.arcswitch.request import build_request, problems
from drplan.arcswitch.settings import Settings
from drplan.arcswitch.structure import Makespan, makespan, restrict
from drplan.arcswitch.template import build_template
from drplan.engine.prepare import PreparedStep, prepare
from drplan.errors import DrplanError, UsageError
from drplan.model import Plan

REQUEST_FILE = "create-plan.json"
TEMPLATE_FILE = "template.json"
REPORT_FILE = "report.md"


class NothingToExport(DrplanError):
    """No step of the plan maps onto an ARC block: an ARC plan would be empty."""

    def __init__(self, plan: str, unmapped: Mapping[str, str]) -> None:
        lines = "\n".join(f"  {key}: {why}" for key, why in unmapped.items())
        super().__init__(
            f"{plan}: no step maps onto an ARC Region switch execution block:\n{lines}",
            hint="docs/arc-region-switch.md lists the actions that map onto ARC blocks",
        )


class InvalidRequest(DrplanError):
    """The request fails botocore's model of ARC (an ARN given with --arn/--peer, or a bug)."""

    def __init__(self, plan: str, found: list[str]) -> None:
        lines = "\n".join(f"  {p}" for p in found)
        super().__init__(f"{plan}: the CreatePlan request does not pass ARC's API model:\n{lines}")
        self.problems = found


@dataclass
class ArcExport:
    plan: Plan
    settings: Settings
    request: dict[str, Any]
    template: dict[str, Any]
    blocks: dict[str, Block]  # plan order
    unmapped: dict[str, str]  # step -> why ARC cannot run it (plan order)
    uses: dict[str, str]  # step -> its action
    waiting: dict[str, tuple[str, ...]]  # unmapped step -> the first mapped steps that wait for it
    skipped: dict[str, str]  # steps that do not run in a recovery
    durations: dict[str, float]
    mapped: Makespan  # the recovery workflow
    whole: Makespan
    failback: Makespan | None = None  # the failback workflow; None: not written
    not_back: dict[str, str] = field(default_factory=dict)  # mapped step -> why it is not in the failback
    alarms: dict[str, Alarm] = field(default_factory=dict)  # associatedAlarms, by their key
    not_associated: dict[str, str] = field(default_factory=dict)  # alarm or health check step -> why
    notes: list[str] = field(default_factory=list)

    @property
    def back(self) -> dict[str, Block]:
        """The blocks of the failback workflow (plan order)."""
        return {k: b for k, b in self.blocks.items() if k not in self.not_back}

    def report(self) -> str:
        from drplan.arcswitch.report import render

        return render(self)

    def files(self) -> list[tuple[str, str]]:
        """(file name, text) of the three files the command writes."""
        return [
            (REQUEST_FILE, json.dumps(self.request, indent=2) + "\n"),
            (TEMPLATE_FILE, json.dumps(self.template, indent=2) + "\n"),
            (REPORT_FILE, self.report()),
        ]


def export_plan(plan: Plan, settings: Settings) -> ArcExport:
    """The recovery of ``plan`` as an ARC Region switch plan. Raises :class:`UsageError` when an
    input ARC needs is missing (``--approval-role`` for approvals), :class:`NothingToExport` when
    no step maps, :class:`InvalidRequest` when the request fails ARC's model."""
    from drplan.actions import registry

    prepared = prepare(plan, "recover", registry())
    order = {step.key: i for i, step in enumerate(plan.steps())}
    keys = sorted(prepared.steps, key=order.__getitem__)
    uses = {key: prepared.steps[key].step.uses for key in keys}
    manual = [key for key in keys if uses[key] == "manual"]
    if manual and settings.approval_role is None:
        raise UsageError(
            f"cannot export to ARC Region switch: {len(manual)} manual step(s) ({', '.join(manual)}) become ARC "
            "approvals, which need the IAM role approvers use: give --approval-role ARN",
            hint="docs/arc-region-switch.md#the-command",
        )
    blocks: dict[str, Block] = {}
    unmapped: dict[str, str] = {}
    for key in keys:
        try:
            blocks[key] = translate(prepared.steps[key], settings, plan)
        except Unmappable as why:
            unmapped[key] = str(why)
    if not blocks:
        raise NothingToExport(plan.name, unmapped)

    graph = prepared.graph.graph
    durations = {key: prepared.steps[key].estimate.total_seconds() for key in keys}
    group_of: dict[str, str | None] = {key: uses[key] for key in keys}
    mapped_graph = restrict(graph, blocks)
    whole = makespan(graph, durations, order, limits=prepared.limits, group_of=group_of)
    mapped = makespan(mapped_graph, durations, order, limits=prepared.limits, group_of=group_of)
    not_back = _not_back(mapped_graph, blocks, order)
    back_keys = [key for key in blocks if key not in not_back]
    failback = None
    if any(blocks[key].block_type != "ManualApproval" for key in back_keys):
        failback = makespan(
            restrict(graph, back_keys), durations, order, limits=prepared.limits, group_of=group_of
        )
    else:
        for key in back_keys:
            not_back[key] = "no block but approvals would be in the failback workflow, so none is written"
    alarms, not_associated = associated_alarms({k: prepared.steps[k] for k in keys}, settings, plan)
    for alarm in alarms.values():
        for key in alarm.steps:
            if key in unmapped:
                unmapped[key] += f"; its alarm is the plan's application health alarm `{alarm.name}`"
    descriptions = {key: _description(prepared.steps[key]) for key in blocks}
    request = build_request(
        plan,
        settings,
        blocks,
        mapped.stages,
        descriptions,
        back=failback.stages if failback else (),
        alarms=alarms,
    )
    found = problems(request)
    if found:
        raise InvalidRequest(plan.name, found)
    return ArcExport(
        plan=plan,
        settings=settings,
        request=request,
        template=build_template(plan, request),
        blocks=blocks,
        unmapped=unmapped,
        uses=uses,
        waiting={key: _first_after(graph, key, blocks, order) for key in unmapped},
        skipped=dict(prepared.skipped),
        durations=durations,
        mapped=mapped,
        whole=whole,
        failback=failback,
        not_back=not_back,
        alarms=alarms,
        not_associated=not_associated,
    )


def _not_back(mapped: nx.DiGraph, blocks: Mapping[str, Block], order: Mapping[str, int]) -> dict[str, str]:
    """The mapped steps that are not in the failback workflow, and why: a block that does not act on
    the way back, and every block after one in the recovery's order (the failback keeps that order,
    so traffic never moves back before the data and capacity it waited for in the recovery)."""
    out = {key: block.back_note for key, block in blocks.items() if block.back is None}
    for key in nx.lexicographical_topological_sort(mapped, key=order.__getitem__):
        if key in out:
            continue
        before = sorted(
            (p for p in nx.ancestors(mapped, key) if p in blocks and blocks[p].back is None),
            key=order.__getitem__,
        )
        if before:
            names = " and ".join(f"`{p}`" for p in before)
            out[key] = (
                f"it comes after {names} in the recovery, and {'it is' if len(before) == 1 else 'they are'} "
                "not in the failback"
            )
    return dict(sorted(out.items(), key=lambda item: order[item[0]]))


def _description(step: PreparedStep) -> str:
    if step.step.uses == "manual":
        return str(step.params.get("instructions", ""))[:1024] or step.key
    text = step.step.description or step.action.describe(step.params)
    return str(text)[:1024]


def _first_after(
    graph: nx.DiGraph, key: str, mapped: Mapping[str, Block], order: Mapping[str, int]
) -> tuple[str, ...]:
    """The mapped steps that wait for ``key`` with no other mapped step between."""
    later = {k: nx.descendants(graph, k) for k in nx.descendants(graph, key) if k in mapped}
    first = [k for k in later if not any(k in after for other, after in later.items() if other != k)]
    return tuple(sorted(first, key=order.__getitem__))
