"""``drplan plan``: the dry run as text (people), JSON (committed and diffed) or Markdown (PR comments).

``FORMATS`` maps a format name to a function ``(dry_run) -> str``; the CLI offers its keys as
``--format`` choices. Every format is deterministic: no timestamp unless the dry run carries one
(``--date``).

The JSON document is versioned (``format_version``) and written with sorted keys. Every duration
is given twice, as ISO 8601 (``"start": "PT25M"``) and in seconds (``"start_seconds": 1500``).
It deliberately omits the drplan version, so upgrading drplan does not change committed files;
``format_version`` changes when the document's shape does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.dryrun import DryRun, PlannedStep, ServiceOutcome, Status, offset
from drplan.durations import format_duration, humanize

JSON_FORMAT_VERSION = "1.2"  # 1.1: limits, critical_path_rto next to predicted_rto; 1.2: steps[].instead_of

MODE_WORDS = {"recover": "real recovery", "drill": "drill"}
STATUS_WORDS: dict[Status, str] = {
    "met": "met",
    "missed": "MISSED",
    "no-objective": "no objective",
    "not-run": "not run",
}
ONLY_WORDS = {"recover": "only in real recoveries", "drill": "only in drills"}
CHANGE_WORDS = {"drill_with": "drill_with", "renamed": "drill: renamed", "removed": "drill: removed"}


# --- shared with the runbook ----------------------------------------------------------------------


def value_text(value: Any) -> str:
    """A parameter value on one line: strings as written (references stay ``${...}``), else JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell (GitHub unescapes ``\\|`` even inside code spans)."""
    return text.replace("|", "\\|").replace("\n", " ")


def md_code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def timestamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def objective_words(outcome: ServiceOutcome) -> str:
    if outcome.objective is None:
        return "-"
    tail = " (plan)" if outcome.objective_from == "plan" else ""
    return humanize(outcome.objective) + tail


def verdict_sentence(dry: DryRun) -> str:
    predicted = humanize(dry.predicted_rto)
    if dry.verdict == "missed":
        parts = []
        for who in dry.missed:
            if who == "plan":
                assert dry.objective is not None
                parts.append(f"the plan ({predicted} > {humanize(dry.objective)})")
            else:
                s = next(o for o in dry.services if o.service == who)
                assert s.predicted is not None and s.objective is not None
                parts.append(f"{who} ({humanize(s.predicted)} > {humanize(s.objective)})")
        count = len(parts)
        return f"MISSED: {count} objective{'s' if count != 1 else ''} would be missed: {', '.join(parts)}"
    if dry.verdict == "met":
        target = f", objective {humanize(dry.objective)}" if dry.objective is not None else ""
        return f"every objective would be met (predicted RTO {predicted}{target})"
    return f"no RTO objective to check (predicted RTO {predicted})"


def predicted_words(predicted: timedelta | None, critical: timedelta | None) -> str:
    """``37h 40m (critical path 54m)`` when the run's limits make it slower, else ``54m``."""
    if predicted is None:
        return "-"
    if critical is not None and predicted > critical:
        return f"{humanize(predicted)} (critical path {humanize(critical)})"
    return humanize(predicted)


def limits_sentence(dry: DryRun) -> str:
    """Why the prediction is longer than the critical path, or that the limits cost nothing."""
    if not dry.limited:
        return f"The run's limits ({dry.limits.describe()}) make no step wait."
    return (
        f"With the run's limits ({dry.limits.describe()}) steps wait for a slot: "
        f"{humanize(dry.predicted_rto)}, against {humanize(dry.critical_rto)} for the critical path alone; "
        "objectives are judged on the former."
    )


def preflight_sentence(dry: DryRun) -> str:
    """``Preflight: 2 errors (a.restore, b.dns), 1 warning.`` — what makes ``--preflight`` exit 1."""
    errors = [s.key for s in dry.steps if any(p.status == "error" for p in s.preflight or ())]
    warnings = [s.key for s in dry.steps if any(p.status == "warning" for p in s.preflight or ())]
    if not errors and not warnings:
        return "Preflight: every step checked out against AWS."
    parts = []
    if errors:
        parts.append(f"{len(errors)} step(s) with errors ({', '.join(errors)}): a run would fail or refuse")
    if warnings:
        parts.append(f"{len(warnings)} with warnings ({', '.join(warnings)})")
    return "Preflight: " + "; ".join(parts) + "."


def critical_words(dry: DryRun) -> str:
    return " → ".join(f"{k} ({humanize(dry.step(k).duration)})" for k in dry.critical_path)


def _duration_words(step: PlannedStep) -> str:
    return humanize(step.duration) + (" (action default)" if step.defaulted else "")


# --- text -------------------------------------------------------------------------------------


def format_text(dry: DryRun) -> str:
    plan = dry.plan
    out = [f"Dry run of plan {plan.name} ({MODE_WORDS[dry.mode]}): nothing is changed."]
    out.append(f"Plan: {plan.path}" + (f" (sha256 {plan.sha256[:12]})" if plan.sha256 else ""))
    if dry.suffix is not None:
        out.append(f"Drill names end in {dry.suffix}; cleanup: {plan.drill.cleanup}.")
    if dry.generated_at is not None:
        out.append(f"Generated: {timestamp(dry.generated_at)}")
    out.append("")
    out.append("Steps, in the order they would start (* = on the critical path):")
    out.append("")
    width = max((len(f"{offset(s.start)} → {offset(s.finish)}") for s in dry.steps), default=0)
    for s in dry.steps:
        when = f"{offset(s.start)} → {offset(s.finish)}".ljust(width)
        title = f'  "{s.title}"' if s.step.name else ""
        out.append(f"wave {s.wave}  {when}  {'*' if s.critical else ' '} {s.key}{title}")
        pad = "      "
        out.append(pad + s.what)
        if s.step.description:
            out.append(pad + s.step.description)
        uses = f"uses {s.uses}" + (f" (--ungraceful, instead of {s.instead_of})" if s.instead_of else "")
        facts = [uses, f"takes {_duration_words(s)}"]
        facts.append(f"timeout {humanize(s.timeout)}" + (" (default)" if s.step.timeout is None else ""))
        if s.step.retries:
            facts.append(f"retries {s.step.retries}")
        if s.step.only:
            facts.append(ONLY_WORDS[s.step.only])
        out.append(pad + ", ".join(facts))
        if s.waits_for:
            out.append(pad + "waits for " + ", ".join(s.waits_for))
        for name, value in s.params.items():
            note = f"  ({CHANGE_WORDS[s.changes[name]]})" if name in s.changes else ""
            out.append(f"{pad}{name}: {value_text(value)}{note}")
        for name, change in s.changes.items():
            if change == "removed":
                out.append(f"{pad}{name}: -  ({CHANGE_WORDS[change]})")
        for p in s.preflight or ():
            out.append(f"{pad}preflight {p.status}: {p.message}")
        out.append("")
    if not dry.steps:
        out += ["  (no step runs in this mode)", ""]
    if dry.skipped:
        out.append(f"Not run in a {MODE_WORDS[dry.mode]}:")
        for k in dry.skipped:
            title = f' "{k.title}"' if k.step.name else ""
            out.append(f"  - {k.key}{title}: {k.reason}")
        out.append("")
    out.append("Recovery time objectives (predicted from the estimates, within the run's limits):")
    rows = [("service", "tier", "predicted", "objective", "result")]
    for o in dry.services:
        predicted = predicted_words(o.predicted, o.critical)
        rows.append((o.service, str(o.tier or "-"), predicted, objective_words(o), STATUS_WORDS[o.status]))
    plan_objective = humanize(dry.objective) if dry.objective is not None else "-"
    plan_predicted = predicted_words(dry.predicted_rto, dry.critical_rto)
    rows.append(("plan", "", plan_predicted, plan_objective, STATUS_WORDS[dry.plan_status]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    out.append("")
    if dry.critical_path:
        out.append(f"Critical path ({humanize(dry.critical_rto)}): {critical_words(dry)}")
    out.append(limits_sentence(dry))
    if any(s.preflight is not None for s in dry.steps):
        out.append(preflight_sentence(dry))
    out.append(f"Verdict: {verdict_sentence(dry)}.")
    return "\n".join(out) + "\n"


# --- json -------------------------------------------------------------------------------------


def _seconds(value: timedelta) -> int | float:
    total = value.total_seconds()
    return int(total) if total == int(total) else total


def _durations(**values: timedelta | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        out[name] = format_duration(value) if value is not None else None
        out[f"{name}_seconds"] = _seconds(value) if value is not None else None
    return out


def _step_json(s: PlannedStep) -> dict[str, Any]:
    step = s.step
    doc: dict[str, Any] = {
        "key": s.key,
        "service": s.service,
        "id": step.id,
        "name": step.name,
        "description": step.description,
        "uses": s.uses,
        "instead_of": s.instead_of,
        "family": s.family,
        "what": s.what,
        "params": dict(s.params),
        "drill_changes": dict(s.changes),
        "wave": s.wave,
        "critical": s.critical,
        "duration_source": "action-default" if s.defaulted else "estimate",
        "retries": step.retries,
        "only": step.only,
        "region": step.region,
        "waits_for": list(s.waits_for),
        **_durations(start=s.start, finish=s.finish, duration=s.duration, slack=s.slack),
        **_durations(estimate=step.estimate, timeout=s.timeout),
        "timeout_source": "plan" if step.timeout is not None else "default",
    }
    if s.preflight is not None:
        doc["preflight"] = [
            {"status": p.status, "message": p.message, "facts": dict(p.facts)} for p in s.preflight
        ]
    return doc


def dry_run_document(dry: DryRun) -> dict[str, Any]:
    plan = dry.plan
    doc: dict[str, Any] = {
        "format_version": JSON_FORMAT_VERSION,
        "kind": "drplan.plan",
        "plan": {"name": plan.name, "path": plan.path, "sha256": plan.sha256 or None, "owner": plan.owner},
        "mode": dry.mode,
        "drill": (
            {"name_suffix": dry.suffix, "cleanup": plan.drill.cleanup, "region": plan.drill.region}
            if dry.suffix is not None
            else None
        ),
        "steps": [_step_json(s) for s in dry.steps],
        "skipped": [
            {"key": k.key, "uses": k.step.uses, "reason": k.reason, "what": k.what} for k in dry.skipped
        ],
        "waves": [list(w) for w in dry.waves],
        "critical_path": list(dry.critical_path),
        "services": [
            {
                "service": o.service,
                "tier": o.tier,
                "status": o.status,
                "objective_from": o.objective_from,
                "critical_path": list(o.path),
                **_durations(predicted_rto=o.predicted, critical_path_rto=o.critical, objective=o.objective),
            }
            for o in dry.services
        ],
        "plan_rto": {
            "status": dry.plan_status,
            **_durations(
                predicted_rto=dry.predicted_rto, critical_path_rto=dry.critical_rto, objective=dry.objective
            ),
        },
        "limits": {"parallelism": dry.limits.parallelism, "per_action": dict(dry.limits.per_action)},
        "missed": dry.missed,
        "verdict": dry.verdict,
    }
    if dry.generated_at is not None:
        doc["generated_at"] = timestamp(dry.generated_at)
    return doc


def format_json(dry: DryRun) -> str:
    return json.dumps(dry_run_document(dry), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- markdown ---------------------------------------------------------------------------------

_MARKS: dict[Status, str] = {
    "met": "✅ met",
    "missed": "❌ **missed**",
    "no-objective": "no objective",
    "not-run": "not run",
}


def format_markdown(dry: DryRun) -> str:
    plan = dry.plan
    icon = {"met": "✅", "missed": "❌", "unchecked": "⚪"}[dry.verdict]
    out = [f"### drplan plan: `{plan.name}` ({MODE_WORDS[dry.mode]})", ""]
    out.append(f"{icon} **{verdict_sentence(dry)}.**")
    out.append("")
    source = f"`{plan.path}`" + (f" (sha256 `{plan.sha256[:12]}`)" if plan.sha256 else "")
    extra = f"; drill names end in `{dry.suffix}`" if dry.suffix is not None else ""
    out.append(f"Dry run of {source}: nothing was changed{extra}.")
    if dry.generated_at is not None:
        out.append(f"Generated {timestamp(dry.generated_at)}.")
    out += ["", "| service | tier | predicted RTO | objective | result |", "| --- | --- | --- | --- | --- |"]
    for o in dry.services:
        predicted = predicted_words(o.predicted, o.critical)
        cells = [md_cell(o.service), str(o.tier or ""), predicted, objective_words(o), _MARKS[o.status]]
        out.append("| " + " | ".join(cells) + " |")
    plan_objective = humanize(dry.objective) if dry.objective is not None else "-"
    out.append(
        f"| **plan** | | **{predicted_words(dry.predicted_rto, dry.critical_rto)}** | {plan_objective} | "
        f"{_MARKS[dry.plan_status]} |"
    )
    if dry.critical_path:
        out += ["", f"Critical path ({humanize(dry.critical_rto)}): {md_cell(critical_words(dry))}"]
    if dry.limited:
        out += ["", md_cell(limits_sentence(dry))]
    out += ["", "| wave | start | finish | step | what it does |", "| --- | --- | --- | --- | --- |"]
    for s in dry.steps:
        key = f"**{s.key}** 🔺" if s.critical else s.key
        what = s.what + (" *(action default duration)*" if s.defaulted else "")
        notes = [f"preflight {p.status}: {p.message}" for p in s.preflight or ()]
        if notes:
            what += "<br>" + "<br>".join(notes)
        cells = [str(s.wave), offset(s.start), offset(s.finish), md_cell(key), md_cell(what)]
        out.append("| " + " | ".join(cells) + " |")
    if dry.critical_path:
        out += ["", "🔺 on the critical path."]
    if dry.skipped:
        out += ["", f"Not run in a {MODE_WORDS[dry.mode]}:", ""]
        out += [f"- {md_code(k.key)}: {k.reason}" for k in dry.skipped]
    with_params = [s for s in dry.steps if s.params]
    if with_params:
        out += ["", "<details><summary>Parameters</summary>", ""]
        for s in with_params:
            out.append(f"- {md_code(s.key)} ({md_code(s.uses)})")
            for name, value in s.params.items():
                note = f" *({CHANGE_WORDS[s.changes[name]]})*" if name in s.changes else ""
                out.append(f"  - {name}: {md_code(value_text(value))}{note}")
            out += [f"  - {name}: *({CHANGE_WORDS[c]})*" for name, c in s.changes.items() if c == "removed"]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


FORMATS: Mapping[str, Callable[[DryRun], str]] = {
    "text": format_text,
    "json": format_json,
    "markdown": format_markdown,
}
