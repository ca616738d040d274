"""``report.md``: what was mapped onto which block, what ARC cannot run and why, the stages, the
failback workflow, the associated alarms, what the request does not hold, and the predicted
duration of ARC's structure beside drplan's own scheduler (same step estimates)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drplan.durations import humanize

if TYPE_CHECKING:
    from drplan.arcswitch.export import ArcExport
    from drplan.arcswitch.structure import Makespan


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _percent(part: float, whole: float) -> str:
    return f" (+{(part / whole) * 100:.0f}%)" if whole > 0 and part > 0 else ""


def _workflow(workflow: Mapping[str, Any]) -> str:
    return f"*{workflow['workflowTargetAction']}* {workflow['workflowTargetRegion']}"


def render(exported: ArcExport) -> str:
    s = exported.settings
    request = exported.request
    mapped, whole, failback = exported.mapped, exported.whole, exported.failback
    workflows = request["workflows"]
    if failback is not None:
        shape = (
            f"two workflows: the recovery, {_workflow(workflows[0])}, of {len(mapped.stages)} stage(s), and the "
            f"failback, {_workflow(workflows[1])}, of {len(failback.stages)} stage(s)"
        )
    else:
        shape = (
            f"one workflow, the recovery, {_workflow(workflows[0])}, of {len(mapped.stages)} stage(s); no "
            "failback workflow (below)"
        )
    lines = [
        f"# ARC Region switch export of plan `{exported.plan.name}`",
        "",
        f"ARC plan `{request['name']}`: {s.approach}, Regions {s.primary_region} (primary) and "
        f"{s.recovery_region} (recovery); {shape}. "
        f"{len(exported.blocks)} of {len(exported.blocks) + len(exported.unmapped)} steps of the recovery are "
        "ARC execution blocks; the others cannot run in ARC (below).",
        "",
        "## Mapped steps",
        "",
    ]
    if exported.blocks:
        stage_of = {k: n for n, stage in enumerate(mapped.stages, start=1) for k in stage}
        lines += [
            "| step | action | ARC block | stage | differences from the drplan step |",
            "| --- | --- | --- | --- | --- |",
        ]
        for key, block in exported.blocks.items():
            caveats = "; ".join(block.caveats) or "none"
            lines.append(
                f"| `{key}` | `{exported.uses[key]}` | {block.block_type} | {stage_of[key]} | {_cell(caveats)} |"
            )
    else:
        lines.append("None.")
    lines += ["", "## Steps ARC cannot run", ""]
    if exported.unmapped:
        lines += [
            "Run these outside the ARC plan (with `drplan recover`, or by hand): each before the ARC steps that "
            "wait for it (an ARC approval in front of those can hold the plan until it is done), the others "
            "after the ARC plan.",
            "",
            "| step | action | why | ARC steps that wait for it |",
            "| --- | --- | --- | --- |",
        ]
        for key, why in exported.unmapped.items():
            waiting = ", ".join(f"`{k}`" for k in exported.waiting.get(key, ())) or "none"
            lines.append(f"| `{key}` | `{exported.uses[key]}` | {_cell(why)} | {waiting} |")
    else:
        lines.append("None: every step of the recovery is an ARC block.")
    if exported.skipped:
        lines += ["", "Not part of a recovery (so not exported):", ""]
        lines += [f"- `{key}`: {why}" for key, why in exported.skipped.items()]
    lines += ["", "## Stages", ""]
    lines += _stages(mapped, exported.durations)
    lines += _failback(exported)
    lines += _alarms(exported)
    lines += [
        "",
        "## Not in the request",
        "",
        "- **Triggers** (`triggers`, and alarms of the type `trigger`): they start the plan by themselves when "
        "an alarm changes state. A drplan plan never starts a recovery by itself, and an alarm that says the "
        "recovered service is healthy is no condition to fail over on.",
        "- **A post-recovery workflow** (`postRecovery`): a drplan plan does not say which work follows a "
        "recovery (ARC's RdsCreateCrossRegionReplica block, made for such workflows, has no drplan action to "
        "come from).",
        "- **A report configuration** (`reportConfiguration`): the S3 bucket for ARC's execution reports is "
        "not something a drplan plan says.",
        "- **Child plans** (ARCRegionSwitchPlan blocks): no step runs another plan, and the export does not "
        "split the plan into several.",
    ]
    lines += [
        "",
        "## Predicted duration",
        "",
        "The same step estimates, three ways: drplan's own scheduler (a step starts when its predecessors "
        "are done, within the plan's parallelism: `drplan plan`), the critical path (no structure of stages "
        "is faster), and ARC's stages one after the other (each as long as its longest step). ARC's own time "
        "between steps is not included.",
        "",
        "| graph | steps | drplan's scheduler | critical path | ARC stages | ARC's extra time |",
        "| --- | --- | --- | --- | --- | --- |",
        _row("exported (the mapped steps, in their order)", mapped),
        _row("whole recovery, were every step an ARC block", whole),
    ]
    if failback is not None:
        lines.append(_row("failback workflow (its steps, in the same order)", failback))
    if exported.unmapped:
        lines += [
            "",
            f"The exported ARC plan runs only the mapped steps: the {len(exported.unmapped)} other step(s) take "
            "their own time outside it.",
        ]
    return "\n".join(lines) + "\n"


def _failback(exported: ArcExport) -> list[str]:
    lines = ["", "## Failback workflow", ""]
    failback = exported.failback
    target = exported.settings.primary_region
    if failback is None:
        lines.append(
            f"Not written: no block but approvals acts on the way back to {target} (the reasons are below). "
            "Add the failback in ARC's console or with `UpdatePlan`."
        )
    else:
        lines.append(
            f"The way back: *activate* {target} again, with the blocks that act in both directions, in the "
            "recovery's order. A block that names its resource in both Regions is the same block in both "
            "workflows: ARC acts on the Region each workflow targets. A block that comes after one that "
            "cannot act on the way back is left out too, so traffic never moves back before what it waited "
            "for in the recovery. The steps ARC cannot run are not in it: what they did in the recovery is "
            "neither undone nor redone."
        )
    if not exported.blocks:
        return lines
    stage_of = {k: n for n, stage in enumerate(failback.stages, start=1) for k in stage} if failback else {}
    lines += ["", "| step | ARC block | failback stage | on the way back |", "| --- | --- | --- | --- |"]
    for key, block in exported.blocks.items():
        if key in stage_of:
            stage, what = str(stage_of[key]), block.back_note
        else:
            stage, what = "not in it", exported.not_back.get(key, block.back_note)
        lines.append(f"| `{key}` | {block.block_type} | {stage} | {_cell(what)} |")
    if failback is not None:
        lines += ["", "Stages of the failback:", ""]
        lines += _stages(failback, exported.durations)
    return lines


def _alarms(exported: ArcExport) -> list[str]:
    lines = ["", "## Associated alarms", ""]
    if exported.alarms:
        lines += [
            "The alarms the plan's `check.cloudwatch_alarm` steps wait for, as the ARC plan's application "
            "health alarms (`associatedAlarms`, type applicationHealth): ARC shows them beside executions "
            "and measures the actual recovery time with them.",
            "",
            "| name | alarm | from |",
            "| --- | --- | --- |",
        ]
        for name, alarm in exported.alarms.items():
            steps = ", ".join(f"`{k}`" for k in alarm.steps)
            lines.append(f"| `{name}` | `{alarm.entry['resourceIdentifier']}` | {steps} |")
    else:
        lines.append("None: no `check.cloudwatch_alarm` step names an alarm ARC can hold.")
    if exported.not_associated:
        lines += ["", "Not associated:", ""]
        lines += [f"- `{key}`: {why}" for key, why in exported.not_associated.items()]
    return lines


def _row(label: str, m: Makespan) -> str:
    extra = f"{humanize(m.extra)}{_percent(m.extra, m.drplan)}" if m.extra > 0 else "none"
    return f"| {label} | {m.steps} | {humanize(m.drplan)} | {humanize(m.critical)} | {humanize(m.arc)} | {extra} |"


def _stages(m: Makespan, durations: Mapping[str, float]) -> list[str]:
    if not m.stages:
        return ["None."]
    out = []
    for n, stage in enumerate(m.stages, start=1):
        longest = max(durations[k] for k in stage)
        steps = ", ".join(f"`{k}` ({humanize(durations[k])})" for k in stage)
        kind = "Parallel block" if len(stage) > 1 else "one block"
        out.append(f"{n}. {kind}, {humanize(longest)}: {steps}")
    return out
