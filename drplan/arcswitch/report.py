"""``report.md``: what was mapped onto which block, what ARC cannot run and why, the stages, and
the predicted duration of ARC's structure beside drplan's own scheduler (same step estimates)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from drplan.durations import humanize

if TYPE_CHECKING:
    from drplan.arcswitch.export import ArcExport
    from drplan.arcswitch.structure import Makespan


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _percent(part: float, whole: float) -> str:
    return f" (+{(part / whole) * 100:.0f}%)" if whole > 0 and part > 0 else ""


def render(exported: ArcExport) -> str:
    s = exported.settings
    request = exported.request
    mapped, whole = exported.mapped, exported.whole
    lines = [
        f"# ARC Region switch export of plan `{exported.plan.name}`",
        "",
        f"ARC plan `{request['name']}`: {s.approach}, Regions {s.primary_region} (primary) and "
        f"{s.recovery_region} (recovery); one workflow, *{request['workflows'][0]['workflowTargetAction']}* "
        f"{request['workflows'][0]['workflowTargetRegion']}, of {len(mapped.stages)} stage(s). "
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
    if exported.unmapped:
        lines += [
            "",
            f"The exported ARC plan runs only the mapped steps: the {len(exported.unmapped)} other step(s) take "
            "their own time outside it.",
        ]
    return "\n".join(lines) + "\n"


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
