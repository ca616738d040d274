"""Write drill evidence: report.json, report.md, report.html, junit.xml and metrics.prom.

Every file is rendered from the one report document (:func:`drplan.evidence.build_report`), so
they cannot disagree. They are written even when the drill failed or was interrupted: that is
when an auditor needs them most.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from drplan.durations import humanize
from drplan.report.junit import Case, Suite, to_xml


def _d(seconds: float | None) -> str:
    return humanize(seconds) if seconds is not None else "-"


def _met(value: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "-"}[value]


def objective_rows(report: dict[str, Any]) -> list[list[str]]:
    """Rows of the objectives table: service, kind, objective, predicted, measured, verdict."""
    rows = []
    for scope, obj in [("plan", report["objectives"]["plan"])] + [
        (s["id"], s) for s in report["objectives"]["services"]
    ]:
        for kind in ("rto", "rpo"):
            o = obj[kind]
            if o["objective_seconds"] is None and o["measured_seconds"] is None:
                continue
            rows.append(
                [
                    scope,
                    kind.upper(),
                    _d(o["objective_seconds"]),
                    _d(o["predicted_seconds"]),
                    _d(o["measured_seconds"]),
                    _met(o["met"]),
                ]
            )
    return rows


def objectives_text(report: dict[str, Any]) -> str:
    header = ["scope", "", "objective", "predicted", "measured", "verdict"]
    rows = [header, *objective_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return (
        "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)
        + "\n"
    )


def _verdict_line(report: dict[str, Any]) -> str:
    v = report["verdict"]
    if v["passed"]:
        return f"PASSED: the {report['run']['mode']} of {report['plan']['name']} met every objective and left nothing behind."
    return "FAILED: " + "; ".join(v["reasons"]) + "."


def to_markdown(report: dict[str, Any], mermaid: str | None) -> str:
    run, plan, env = report["run"], report["plan"], report["environment"]
    out = [
        f"# {'Drill' if run['mode'] == 'drill' else 'Recovery'} report: {plan['name']}",
        "",
        f"**{_verdict_line(report)}**",
        "",
        f"Run `{run['id']}` · started {run['started']} · took {_d(run['duration_seconds'])} · exit code {run['exit_code']}"
        + (" · sandbox" if env["sandbox"] else ""),
        "",
        f"Plan `{plan['path']}` (sha256 `{plan['sha256'][:12]}`"
        + (f", commit `{plan['git_commit'][:12]}`" if plan.get("git_commit") else "")
        + ")"
        f" · account {env['account']} · region {env['region']} · run by {env['user']} on {env['host']} · drplan {env['drplan_version']}",
        "",
        "## Objectives",
        "",
        "| scope | objective | target | predicted | measured | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    out += [f"| {' | '.join(row)} |" for row in objective_rows(report)]
    recent = [s for s in report["objectives"]["services"] if s.get("recent_rto")]
    if recent:
        out += [
            "",
            "Measured RTO of each service over the last drills (oldest first), next to its prediction:",
            "",
            "| service | predicted | earlier drills | this drill |",
            "| --- | --- | --- | --- |",
        ]
        for s in recent:
            earlier = ", ".join(_d(r["rto_seconds"]) for r in s["recent_rto"])
            out.append(
                f"| {s['id']} | {_d(s['rto']['predicted_seconds'])} | {earlier} | {_d(s['rto']['measured_seconds'])} |"
            )
    out += [
        "",
        "## Timeline",
        "",
        "| step | status | start | duration | predicted | attempts | detail |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in report["steps"]:
        detail = (s["error"] or s["reason"] or "").replace("|", "\\|")
        start = f"+{_d(s['offset_seconds'])}" if s["offset_seconds"] is not None else "-"
        out.append(
            f"| `{s['key']}` | {s['status']} | {start} | {_d(s['duration_seconds'])} | {_d(s['predicted_seconds'])} | {s['attempts']} | {detail} |"
        )
    if report["skipped"]:
        out += ["", "Not run in this mode:", ""] + [
            f"- `{s['key']}`: {s['reason']}" for s in report["skipped"]
        ]
    if report["recovery_points"]:
        out += [
            "",
            "## Recovery points used",
            "",
            "| step | recovery point | created | age (RPO) | objective |",
            "| --- | --- | --- | --- | --- |",
        ]
        for p in report["recovery_points"]:
            out.append(
                f"| `{p['step']}` | `{p['id']}` | {p['created']} | {_d(p['age_seconds'])} | {_d(p['rpo_objective_seconds'])} |"
            )
    cleanup = report["cleanup"]
    out += [
        "",
        "## Cleanup",
        "",
        f"Status: **{cleanup['status']}**" + (f" ({cleanup['reason']})" if cleanup.get("reason") else ""),
        "",
    ]
    if cleanup["resources"]:
        out += ["| resource | id | step | deleted and verified |", "| --- | --- | --- | --- |"]
        for r in cleanup["resources"]:
            gone = r.get("verified_gone_at") or ("yes" if r.get("deleted") else "NO")
            out.append(f"| {r['kind']} | `{r['id']}` | `{r['step']}` | {gone} |")
    if mermaid:
        out += ["", "## Recovery graph", "", "```mermaid", mermaid.rstrip(), "```"]
    out += ["", f"Journal: `{run['journal']}`", ""]
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}
th{background:#f3f3f3}.pass{color:#1a7f37}.fail{color:#cf222e}code{font-size:13px}.verdict{font-size:1.3em;font-weight:600}"""


def to_html(report: dict[str, Any], svg: str | None) -> str:
    run, plan, env = report["run"], report["plan"], report["environment"]
    e = html.escape
    cls = "pass" if report["verdict"]["passed"] else "fail"

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>drplan {e(run["mode"])} report: {e(plan["name"])}</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{'Drill' if run['mode'] == 'drill' else 'Recovery'} report: {e(plan['name'])}</h1>",
        f'<p class="verdict {cls}">{e(_verdict_line(report))}</p>',
        f"<p>Run <code>{e(run['id'])}</code>, started {e(run['started'])}, took {e(_d(run['duration_seconds']))}; "
        f"account {e(str(env['account']))}, region {e(str(env['region']))}; run by {e(str(env['user']))} on {e(str(env['host']))}"
        + (" (sandbox)" if env["sandbox"] else "")
        + f". Plan <code>{e(plan['path'])}</code> sha256 <code>{e(plan['sha256'][:12])}</code>.</p>",
        "<h2>Objectives</h2>",
        table(["scope", "objective", "target", "predicted", "measured", "verdict"], objective_rows(report)),
        "<h2>Timeline</h2>",
        table(
            ["step", "status", "start", "duration", "predicted", "attempts", "detail"],
            [
                [
                    s["key"],
                    s["status"],
                    f"+{_d(s['offset_seconds'])}" if s["offset_seconds"] is not None else "-",
                    _d(s["duration_seconds"]),
                    _d(s["predicted_seconds"]),
                    s["attempts"],
                    s["error"] or s["reason"] or "",
                ]
                for s in report["steps"]
            ],
        ),
    ]
    if report["recovery_points"]:
        parts += [
            "<h2>Recovery points used</h2>",
            table(
                ["step", "recovery point", "created", "age", "RPO objective"],
                [
                    [p["step"], p["id"], p["created"], _d(p["age_seconds"]), _d(p["rpo_objective_seconds"])]
                    for p in report["recovery_points"]
                ],
            ),
        ]
    cleanup = report["cleanup"]
    parts += [
        f"<h2>Cleanup: {e(cleanup['status'])}</h2>",
        table(
            ["resource", "id", "step", "deleted and verified"],
            [
                [
                    r["kind"],
                    r["id"],
                    r["step"],
                    r.get("verified_gone_at") or ("yes" if r.get("deleted") else "NO"),
                ]
                for r in cleanup["resources"]
            ],
        ),
    ]
    if svg:
        parts += ["<h2>Recovery graph</h2>", svg[svg.find("<svg") :] if "<svg" in svg else ""]
    parts += ["</body></html>", ""]
    return "\n".join(parts)


def to_junit(report: dict[str, Any]) -> str:
    plan = report["plan"]["name"]
    steps = Suite(name=f"drplan {report['run']['mode']} {plan}: steps", timestamp=report["run"]["started"])
    for s in report["steps"]:
        case = Case(name=s["key"], classname=f"{plan}.{s['service']}", time=s["duration_seconds"] or 0.0)
        if s["status"] == "failed":
            case.failure = s["error"] or "failed"
        elif s["status"] == "unverified":
            case.skipped = "not verifiable here: " + (s["reason"] or "")
        elif s["status"] != "succeeded":
            case.skipped = s["reason"] or s["status"]
        steps.cases.append(case)
    for s in report["skipped"]:
        steps.cases.append(
            Case(name=s["key"], classname=f"{plan}.{s['key'].split('.')[0]}", skipped=s["reason"])
        )
    objectives = Suite(
        name=f"drplan {report['run']['mode']} {plan}: objectives", timestamp=report["run"]["started"]
    )
    for scope, obj in [("plan", report["objectives"]["plan"])] + [
        (s["id"], s) for s in report["objectives"]["services"]
    ]:
        for kind in ("rto", "rpo"):
            o = obj[kind]
            if o["objective_seconds"] is None:
                continue
            case = Case(
                name=f"{scope} {kind.upper()} <= {_d(o['objective_seconds'])}",
                classname=f"{plan}.objectives",
                time=0.0,  # an RPO is an age, not time spent: the measurement is in the name and message
            )
            if o["met"] is False:
                case.failure = f"measured {_d(o['measured_seconds'])}, objective {_d(o['objective_seconds'])}"
            elif o["met"] is None:
                case.skipped = "not measured in this run"
            objectives.cases.append(case)
    cleanup = Suite(name=f"drplan {report['run']['mode']} {plan}: cleanup")
    if report["cleanup"]["status"] != "not applicable":
        case = Case(name="everything created was deleted", classname=f"{plan}.cleanup")
        if report["cleanup"]["status"] == "incomplete":
            left = [r["id"] for r in report["cleanup"]["resources"] if not r.get("deleted")]
            case.failure = "resources remain: " + ", ".join(left)
        elif report["cleanup"]["status"] == "skipped":
            case.skipped = report["cleanup"].get("reason") or "skipped"
        cleanup.cases.append(case)
    return to_xml([steps, objectives, cleanup], name=f"drplan {plan}")


def metrics_registry(report: dict[str, Any], *, last_success: str | None = None) -> Any:
    """Prometheus gauges for node_exporter's textfile collector (and the Pushgateway)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    labels = metric_labels(report["plan"]["name"], report["run"]["mode"], report["environment"]["sandbox"])

    def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, (*labels, *extra), registry=registry)

    gauge("drplan_drill_in_progress", "1 while a drill runs (a drill that died leaves it at 1).").labels(
        **labels
    ).set(0)

    gauge("drplan_drill_last_run_timestamp_seconds", "When the last drill started (Unix time).").labels(
        **labels
    ).set(_timestamp(report["run"]["started"]))
    gauge("drplan_drill_success", "1 when the last drill passed (every step and objective), else 0.").labels(
        **labels
    ).set(1 if report["verdict"]["passed"] else 0)
    success = report["run"]["started"] if report["verdict"]["passed"] else last_success
    if success:  # kept across failing drills, so "time since the last success" alerts keep working
        gauge(
            "drplan_drill_last_success_timestamp_seconds", "When the last passing drill started (Unix time)."
        ).labels(**labels).set(_timestamp(success))
    gauge(
        "drplan_drill_duration_seconds", "Wall time of the last drill's steps (cleanup not included)."
    ).labels(**labels).set(report["run"]["duration_seconds"])
    steps = gauge("drplan_drill_steps", "Steps of the last drill by final status.", ("status",))
    for status in ("succeeded", "unverified", "failed", "skipped", "interrupted", "not_started"):
        count = sum(1 for s in report["steps"] if s["status"] == status)
        if status == "skipped":
            count += len(report["skipped"])  # steps that do not run in this mode
        steps.labels(**labels, status=status).set(count)
    measured = gauge(
        "drplan_drill_objective_measured_seconds",
        "Measured RTO/RPO of the last drill.",
        ("service", "objective"),
    )
    target = gauge(
        "drplan_drill_objective_target_seconds", "The RTO/RPO objective.", ("service", "objective")
    )
    predicted = gauge(
        "drplan_drill_rto_predicted_seconds", "RTO predicted from the plan's estimates.", ("service",)
    )
    met = gauge(
        "drplan_drill_objective_met", "1 when the objective was met, 0 when missed.", ("service", "objective")
    )
    for scope, obj in [("_plan", report["objectives"]["plan"])] + [
        (s["id"], s) for s in report["objectives"]["services"]
    ]:
        for kind in ("rto", "rpo"):
            o = obj[kind]
            if o["measured_seconds"] is not None:
                measured.labels(**labels, service=scope, objective=kind).set(o["measured_seconds"])
            if o["objective_seconds"] is not None:
                target.labels(**labels, service=scope, objective=kind).set(o["objective_seconds"])
            if o["met"] is not None:
                met.labels(**labels, service=scope, objective=kind).set(1 if o["met"] else 0)
        if obj["rto"]["predicted_seconds"] is not None:
            predicted.labels(**labels, service=scope).set(obj["rto"]["predicted_seconds"])
    gauge("drplan_drill_cleanup_complete", "1 when the drill left nothing behind.").labels(**labels).set(
        1 if report["cleanup"]["status"] in ("complete", "not applicable") else 0
    )
    return registry


def metric_labels(plan: str, mode: str, sandbox: bool) -> dict[str, str]:
    """Labels of every series: a sandbox drill is its own series (``environment="sandbox"``), so it
    can never reset the "time since the last passing drill" alert of the real one."""
    return {"plan": plan, "mode": mode, "environment": "sandbox" if sandbox else "aws"}


def write_in_progress_metrics(directory: Path, *, plan: str, started: str, sandbox: bool) -> None:
    """metrics.prom for a drill that has started and not finished: in progress, not (yet) a success.
    Written at the start, so a drill killed halfway never leaves the previous drill's success behind."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    labels = metric_labels(plan, "drill", sandbox)
    Gauge(
        "drplan_drill_in_progress",
        "1 while a drill runs (a drill that died leaves it at 1).",
        tuple(labels),
        registry=registry,
    ).labels(**labels).set(1)
    Gauge(
        "drplan_drill_last_run_timestamp_seconds",
        "When the last drill started (Unix time).",
        tuple(labels),
        registry=registry,
    ).labels(**labels).set(_timestamp(started))
    Gauge(
        "drplan_drill_success",
        "1 when the last drill passed (every step and objective), else 0.",
        tuple(labels),
        registry=registry,
    ).labels(**labels).set(0)
    Gauge(
        "drplan_drill_cleanup_complete",
        "1 when the drill left nothing behind.",
        tuple(labels),
        registry=registry,
    ).labels(**labels).set(0)
    directory.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(directory / "metrics.prom"), registry)


def _timestamp(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def write_evidence(
    report: dict[str, Any],
    directory: Path,
    *,
    mermaid: str | None = None,
    svg: str | None = None,
    last_success: str | None = None,
) -> list[Path]:
    """Every file rendered first, then each written whole (a temporary file, then renamed), and
    report.json last: a report.json on disk always comes with the other files, and a disk that
    fills up halfway leaves no report claiming a result the run did not end with."""
    from prometheus_client import generate_latest

    directory.mkdir(parents=True, exist_ok=True)
    files = [
        ("report.md", to_markdown(report, mermaid).encode("utf-8")),
        ("report.html", to_html(report, svg).encode("utf-8")),
        ("junit.xml", to_junit(report).encode("utf-8")),
        ("metrics.prom", generate_latest(metrics_registry(report, last_success=last_success))),
        ("report.json", (json.dumps(report, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")),
    ]
    written = []
    for name, data in files:
        path = directory / name
        tmp = directory / f".{name}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: node_exporter and auditors never read half a file
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        written.append(path)
    return written


def push_metrics(report: dict[str, Any], gateway: str, *, last_success: str | None = None) -> None:
    from prometheus_client import push_to_gateway

    push_to_gateway(
        gateway,
        job="drplan_drill",
        registry=metrics_registry(report, last_success=last_success),
        grouping_key=metric_labels(
            report["plan"]["name"], report["run"]["mode"], report["environment"]["sandbox"]
        ),
    )
