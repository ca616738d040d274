"""Write drill evidence: report.json, report.md, report.html, junit.xml and metrics.prom.

Every file is rendered from the one report document (:func:`drplan.evidence.build_report`), so
they cannot disagree. They are written even when the drill failed or was interrupted: that is
when an auditor needs them most.

report.md and report.html come from one template source, ``templates/report.j2``: what the report
says and in which order, written once. It never writes markup itself; it calls the macros of a
*dialect*, ``templates/markdown.j2`` or ``templates/html.j2`` (title, heading, paragraph, table and
row, list, code, strong, banner, graph), which the entry templates ``report.md.j2`` and
``report.html.j2`` import before including it. A fact added to report.j2 therefore reaches both
renderings, and a dialect cannot drop one. This was chosen over one template switching on the
output format at every line (two documents interleaved) and over two templates sharing only a data
layer (the order, the wording and what is shown would drift apart again, as the hand-written
renderers did: the HTML lacked the commit, the version, the exit code, the skipped steps and the
journal).

Escaping is the dialect's: HTML is rendered with autoescaping on (every value is escaped unless a
macro made it markup); Markdown escapes through ``md_text`` and ``md_code`` (table pipes, ``<``,
line breaks), which every value passes through. Autoescaping is decided when a template is
compiled, so each dialect has its own Jinja environment over the same package templates.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, PackageLoader, StrictUndefined
from jinja2.bccache import Bucket
from markupsafe import Markup, escape

from drplan.durations import humanize
from drplan.report.junit import Case, Suite, to_xml


def _d(seconds: float | None) -> str:
    return humanize(seconds) if seconds is not None else "-"


def _met(value: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "-"}[value]


def objective_entries(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each judged objective, the plan's first: scope, kind (RTO/RPO), objective, predicted,
    measured (seconds or None), met (True, False, None) and cause (what made it missed)."""
    entries = []
    for scope, obj in [("plan", report["objectives"]["plan"])] + [
        (s["id"], s) for s in report["objectives"]["services"]
    ]:
        for kind in ("rto", "rpo"):
            o = obj[kind]
            if o["objective_seconds"] is None and o["measured_seconds"] is None:
                continue
            entries.append(
                {
                    "scope": scope,
                    "kind": kind.upper(),
                    "objective": o["objective_seconds"],
                    "predicted": o["predicted_seconds"],
                    "measured": o["measured_seconds"],
                    "met": o["met"],
                    "cause": o.get("cause"),
                }
            )
    return entries


def objective_rows(report: dict[str, Any]) -> list[list[str]]:
    """Rows of the objectives table: service, kind, objective, predicted, measured, verdict."""
    return [
        [e["scope"], e["kind"], _d(e["objective"]), _d(e["predicted"]), _d(e["measured"]), _met(e["met"])]
        for e in objective_entries(report)
    ]


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


# --- report.md and report.html: one template source, two dialects -----------------------------------

_CODE_SPAN = re.compile(r"(`[^`\n]+`)")


def _md_text(value: Any) -> str:
    """Plain text for Markdown: `code spans` kept as written; outside them, what Markdown would
    misread is escaped: a pipe (a table cell's end), ``<`` (an HTML tag) and line breaks."""
    parts = _CODE_SPAN.split(str(value))
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a code span: only its pipes (GFM ends the table cell at one, even in code)
            out.append(part.replace("|", "\\|"))
        else:
            out.append(part.replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<"))
    return "".join(out).replace("\r\n", "\n").replace("\n", "<br>")


def _md_code(value: Any) -> str:
    """A Markdown code span of any text: fenced with more backticks than it contains."""
    text = " ".join(str(value).splitlines()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _html_text(value: Any) -> Markup:
    """Plain text for HTML, escaped; the `code spans` of reasons and causes become <code>."""
    escaped = str(escape(str(value)))
    return Markup(_CODE_SPAN.sub(lambda m: f"<code>{m.group(1)[1:-1]}</code>", escaped).replace("\n", "<br>"))


class _CompiledTemplates(FileSystemBytecodeCache):
    """The report templates as Jinja compiled them, kept on disk between runs: compiling the six
    of them took ~0.13 s of every drill, rendering them ~2 ms. Jinja reuses a template's code only
    while its source is unchanged (it keeps the source's checksum with it); the file's name also
    holds what else the code depends on (the dialect's autoescaping, the syntax options, Jinja's
    and Python's versions), so two dialects, two installations or an upgrade never share one.
    Best effort: a cache that cannot be read or written only means compiling, as without one."""

    def __init__(self, directory: Path, dialect: str, settings: tuple[Any, ...] = ()) -> None:
        super().__init__(str(directory), f"{dialect}-%s.jinja")
        from jinja2 import __version__ as jinja_version

        self._salt = repr((dialect, settings, jinja_version, sys.version_info[:2]))

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        return super().get_cache_key(name, f"{self._salt}|{filename}")

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable or damaged: compiled again, and written over
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _template_cache(dialect: str, env: Environment) -> _CompiledTemplates | None:
    """Where the compiled templates are kept: the user's cache directory (``$XDG_CACHE_HOME``, else
    ``~/.cache``), ``drplan/templates``, readable by the user alone; None when there is none."""
    try:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        directory = root / "drplan" / "templates"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        found = directory.stat()
    except (OSError, RuntimeError):  # no home, a read-only file system
        return None
    if hasattr(os, "getuid") and (found.st_uid != os.getuid() or found.st_mode & 0o022):
        return None  # code another user could write is never loaded
    settings = (env.autoescape, env.trim_blocks, env.lstrip_blocks, env.keep_trailing_newline)
    return _CompiledTemplates(directory, dialect, settings)


@cache
def _environment(dialect: str) -> Environment:
    """One environment per dialect over the same templates: autoescaping is decided when a
    template is compiled, and report.j2 must be escaped as HTML in one and not in the other."""
    env = Environment(
        loader=PackageLoader("drplan.report", "templates"),
        autoescape=dialect == "html",
        undefined=StrictUndefined,  # a field the report lacks is an error, never an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.bytecode_cache = _template_cache(dialect, env)
    env.filters.update(duration=_d, met=_met, md_text=_md_text, md_code=_md_code, html_text=_html_text)
    return env


def _render(dialect: str, report: dict[str, Any], mermaid: str | None, svg: str | None) -> str:
    template = _environment(dialect).get_template(f"report.{dialect}.j2")
    return template.render(
        report=report,
        objectives=objective_entries(report),
        verdict_line=_verdict_line(report),
        mermaid=mermaid,
        svg=svg[svg.find("<svg") :] if svg and "<svg" in svg else None,
    )


def to_markdown(report: dict[str, Any], *, mermaid: str | None = None, svg: str | None = None) -> str:
    """report.md (GitHub-flavoured Markdown; the recovery graph as Mermaid)."""
    return re.sub(r"\n{3,}", "\n\n", _render("md", report, mermaid, None)).strip() + "\n"


def to_html(report: dict[str, Any], *, mermaid: str | None = None, svg: str | None = None) -> str:
    """report.html (one standalone page; the recovery graph as SVG, or its Mermaid source)."""
    return _render("html", report, mermaid, svg)


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
        ("report.md", to_markdown(report, mermaid=mermaid).encode("utf-8")),
        ("report.html", to_html(report, mermaid=mermaid, svg=svg).encode("utf-8")),
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
