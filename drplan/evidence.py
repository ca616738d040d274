"""Drill evidence: what happened, measured against what was promised, as one versioned document.

Built from the run's records (never re-measured): measured RTO per service is the time from the
drill's start until the service's last step (its checks included) succeeded; measured RPO per
restored resource is the drill's start minus the creation time of the recovery point used. Every
report format (JSON, Markdown, HTML, JUnit, Prometheus) is written from this one document.

What the objectives mean, the same here as in ``validate`` and ``plan`` (docs/drills.md):

- a service's own ``objectives`` override the plan's, and a service without its own takes the
  plan's: its RTO and RPO are judged against that *effective* objective;
- the plan's RTO means "every service back": it is judged on the last service back;
- the plan's RPO is only the default for services that set none: it is judged on those services'
  recovery points, and a service with a looser RPO of its own never fails it.

Every missed objective says what caused it: the step that finished last, or the recovery point and
its age.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drplan import __version__
from drplan.actions import registry
from drplan.actions.base import ENGINE_KEYS, handle_recovery_point
from drplan.durations import humanize
from drplan.graph import analyse

if TYPE_CHECKING:
    from drplan.engine.prepare import Prepared
    from drplan.runs import RunResult

REPORT_FORMAT_VERSION = "1.1"  # 1.1: unverified checks, objective_from and cause, run problems
DONE = ("succeeded", "unverified")


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    return round(value.total_seconds() if hasattr(value, "total_seconds") else float(value), 3)


def build_report(result: RunResult, *, sandbox: bool = False) -> dict[str, Any]:
    prepared = result.prepared
    plan = prepared.plan
    outcome = result.outcome
    start = outcome.started
    analysis = analyse(prepared.graph, registry(), prepared.limits)
    records = outcome.records

    steps = []
    points = []
    for key, rec in records.items():
        p = prepared.steps[key]
        handle = rec.handle or {}
        point = handle_recovery_point(handle)
        entry: dict[str, Any] = {
            "key": key,
            "service": p.step.service,
            "uses": p.action.name,
            "family": p.action.family,
            "status": rec.status,
            "started": _iso(rec.started),
            "finished": _iso(rec.finished),
            "offset_seconds": _seconds(rec.started - start) if rec.started else None,
            "duration_seconds": _seconds(rec.duration),
            "predicted_seconds": _seconds(p.estimate),
            "attempts": rec.attempts,
            "error": rec.error,
            "reason": rec.reason,
            "aws_ids": {k: v for k, v in handle.items() if k not in ENGINE_KEYS and _is_id(k, v)},
            "client_token": f"drplan-{prepared.run_id}-{key}"[:64],
            "resources": [r.to_json() for r in rec.resources],
            "outputs": rec.outputs,
        }
        if point:
            created = point.created
            # "latest" point-in-time restores record the latest restorable time when they start,
            # which can be a moment after the run's start: no data loss, not a negative one.
            # Rounded as reported, and judged on that value: the recovery point's verdict and its
            # service's RPO verdict (judged on the same reported age) can never disagree.
            age = round(max(0.0, start - created.timestamp()), 3)
            objectives = plan.objectives_of(p.step.service)
            rpo = objectives.rpo
            recovery: dict[str, Any] = {
                "step": key,
                "id": point.id,
                "created": point.created.isoformat(),
                "age_seconds": age,
                "rpo_objective_seconds": _seconds(rpo),
                "met": None if rpo is None else age <= rpo.total_seconds(),
            }
            entry["recovery_point"] = recovery
            points.append(recovery)
        steps.append(entry)

    services: list[dict[str, Any]] = []
    inherits_rpo: list[str] = []  # services judged against the plan's RPO (they set none)
    for sid, service in plan.services.items():
        keys = [k for k in records if prepared.steps[k].step.service == sid]
        objectives = plan.objectives_of(sid)
        measured_rto = None
        status = "not exercised"
        rto_cause = None
        if keys:
            statuses = {records[k].status for k in keys}
            status = "succeeded" if statuses <= set(DONE) else "failed"
            if status == "succeeded":
                last = max(keys, key=lambda k: records[k].finished or start)
                measured_rto = (records[last].finished or start) - start
                rto_cause = f"back when `{last}` finished, {humanize(measured_rto)} after the start"
            else:
                bad = [k for k in keys if records[k].status not in DONE]
                rto_cause = f"`{bad[0]}` {records[bad[0]].status}: " + (
                    records[bad[0]].error or records[bad[0]].reason or "no detail"
                )
        service_points = [pt for pt in points if pt["step"] in keys]
        oldest = max(service_points, key=lambda pt: pt["age_seconds"], default=None)
        rpo_cause = (
            f"`{oldest['step']}` restored {oldest['id']}, {humanize(oldest['age_seconds'])} old"
            if oldest
            else None
        )
        if service.objectives.rpo is None and plan.objectives.rpo is not None and service_points:
            inherits_rpo.append(sid)
        services.append(
            {
                "id": sid,
                "tier": service.tier,
                "status": status,
                "steps": keys,
                "rto": _objective(
                    objectives.rto,
                    measured_rto,
                    analysis.service_rto.get(sid),
                    status,
                    source="service" if service.objectives.rto else ("plan" if plan.objectives.rto else None),
                    cause=rto_cause,
                ),
                "rpo": _objective(
                    objectives.rpo,
                    oldest["age_seconds"] if oldest else None,
                    None,
                    status if service_points else "not exercised",
                    source="service" if service.objectives.rpo else ("plan" if plan.objectives.rpo else None),
                    cause=rpo_cause,
                ),
            }
        )

    run_kind = "drill" if prepared.mode == "drill" else "recovery"
    ran_ok = outcome.ok
    plan_status = "succeeded" if ran_ok else ("interrupted" if outcome.interrupted else "failed")
    backs = [s for s in services if s["rto"]["measured_seconds"] is not None]
    last_back = max(backs, key=lambda s: s["rto"]["measured_seconds"], default=None)
    defaults = [s for s in services if s["id"] in inherits_rpo]
    worst_default = max(defaults, key=lambda s: s["rpo"]["measured_seconds"] or 0.0, default=None)
    plan_objectives = {
        "rto": _objective(
            plan.objectives.rto,
            last_back["rto"]["measured_seconds"] if ran_ok and last_back else None,
            analysis.predicted_rto,
            plan_status,
            source="plan" if plan.objectives.rto else None,
            cause=(
                f"every service back when `{last_back['id']}` was: {last_back['rto']['cause']}"
                if ran_ok and last_back
                else f"the {run_kind} {plan_status} before every service was back"
            ),
        ),
        "rpo": _objective(
            plan.objectives.rpo,
            worst_default["rpo"]["measured_seconds"] if worst_default else None,
            None,
            plan_status if defaults else "not exercised",
            source="plan" if plan.objectives.rpo else None,
            cause=(
                f"the default for {', '.join(inherits_rpo)}; oldest: {worst_default['rpo']['cause']}"
                if worst_default
                else None
            ),
        ),
    }

    cleanup = _cleanup(result, records)
    unverified = [
        {"key": k, "reason": records[k].reason or "not verifiable here"} for k in outcome.unverified
    ]
    passed, reasons = _verdict(run_kind, plan_status, services, plan_objectives, cleanup)
    header = result.header
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "kind": "drplan.drill-report" if prepared.mode == "drill" else "drplan.recovery-report",
        "verdict": {"passed": passed, "reasons": reasons, "unverified": unverified},
        "run": {
            "id": result.run_id,
            "mode": prepared.mode,
            "status": plan_status,
            "interrupted": outcome.interrupted,
            "stop_reason": outcome.stop_reason,
            "exit_code": result.exit_code if result.incomplete else (0 if passed else 1),
            "started": _iso(start),
            "finished": _iso(outcome.finished),
            "duration_seconds": round(outcome.finished - start, 3),
            "name_suffix": prepared.suffix or None,
            "parallelism": prepared.limits.parallelism,
            "journal": str(result.directory / "journal.jsonl"),
            "problems": list(result.problems),
        },
        "plan": {
            "name": plan.name,
            "path": plan.path,
            "sha256": plan.sha256,
            "git_commit": header.get("git_commit"),
            "format_version": plan.format_version,
        },
        "environment": {
            "user": header.get("user"),
            "host": header.get("host"),
            "account": header.get("account"),
            "region": header.get("region"),
            "sandbox": sandbox,
            "drplan_version": __version__,
        },
        "objectives": {"plan": plan_objectives, "services": services},
        "steps": steps,
        "skipped": [{"key": k, "reason": r} for k, r in prepared.skipped.items()],
        "recovery_points": points,
        "checks": [
            {"key": s["key"], "status": s["status"], "detail": s["error"] or s["reason"] or "passed"}
            for s in steps
            if s["family"] == "check"
        ],
        "cleanup": cleanup,
    }


def _is_id(key: str, value: Any) -> bool:
    return (
        isinstance(value, (str, int))
        and not isinstance(value, bool)
        and (key.endswith(("id", "arn", "_ids", "token")) or "job" in key)
    )


def _objective(
    objective: Any,
    measured: float | None,
    predicted: Any,
    status: str,
    *,
    source: str | None,
    cause: str | None,
) -> dict[str, Any]:
    target = _seconds(objective)
    met: bool | None
    if target is None:
        met = None
    elif measured is None:
        met = False if status in ("failed", "interrupted") else None
    else:
        met = measured <= target
    return {
        "objective_seconds": target,
        "objective_from": source if target is not None else None,
        "measured_seconds": round(measured, 3) if measured is not None else None,
        "predicted_seconds": _seconds(predicted),
        "met": met,
        "cause": cause if met is False else None,
    }


def _cleanup(result: RunResult, records: dict[str, Any]) -> dict[str, Any]:
    created = [(key, r) for key, rec in records.items() for r in rec.resources]
    if result.prepared.mode != "drill":
        return {"status": "not applicable", "resources": [r.to_json() | {"step": k} for k, r in created]}
    status = "skipped" if result.cleanup_skipped else "incomplete" if result.cleanup_failed else "complete"
    resources = []
    for key, resource in created:
        rec = records[key]
        resources.append(
            {
                **resource.to_json(),
                "step": key,
                "deleted": rec.undone,
                "verified_gone_at": _iso(rec.undone_at),
            }
        )
    return {
        "status": status,
        "reason": result.cleanup_skipped,
        "failed_steps": result.cleanup_failed,
        "resources": resources,
    }


def _verdict(
    run_kind: str,
    status: str,
    services: list[dict[str, Any]],
    plan_objectives: dict[str, Any],
    cleanup: dict[str, Any],
) -> tuple[bool, list[str]]:
    reasons = []
    if status != "succeeded":
        reasons.append(f"the {run_kind} {status}")
    for s in services:
        for kind in ("rto", "rpo"):
            o = s[kind]
            # A service that only inherits the plan's RTO is judged with the plan ("every service back").
            if o["met"] is False and not (kind == "rto" and o["objective_from"] == "plan"):
                reasons.append(f"{s['id']}: {kind.upper()} objective missed ({o['cause']})")
    for kind in ("rto", "rpo"):
        o = plan_objectives[kind]
        if o["met"] is False and not (kind == "rpo" and o["measured_seconds"] is None):
            reasons.append(f"plan: {kind.upper()} objective missed ({o['cause']})")
    if cleanup["status"] == "incomplete":
        reasons.append("cleanup incomplete: resources remain")
    return not reasons, reasons


# --- what the report needs beyond the records ----------------------------------------------------------


def diagrams(prepared: Prepared) -> tuple[str | None, str | None]:
    """Mermaid for the Markdown report; SVG for the HTML report when Graphviz is installed."""
    from drplan.errors import DrplanError
    from drplan.render.dot import render_dot
    from drplan.render.graphviz import render
    from drplan.render.mermaid import render_mermaid

    rg = prepared.graph
    analysis = analyse(rg, registry(), prepared.limits)
    mermaid = render_mermaid(rg, analysis)
    try:
        svg = render(render_dot(rg, analysis, sha256=prepared.plan.sha256), "svg").decode("utf-8")
    except (DrplanError, OSError):  # no Graphviz, or dot failed (killed by a signal): no SVG, still evidence
        svg = None
    return mermaid, svg


def last_success(state_dir: Path, report: dict[str, Any]) -> str | None:
    """When this plan's last passing *real* drill started: recorded on a pass, read back after a
    failure (metrics.prom of a failed drill still carries it for "time since last success" alerts).
    Sandbox drills neither record nor move it: they prove nothing about the real account."""
    marker = state_dir / "plans" / report["plan"]["name"] / "last-success"
    if report["verdict"]["passed"] and not report["environment"]["sandbox"]:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(report["run"]["started"] + "\n", encoding="utf-8")
        return str(report["run"]["started"])
    if report["environment"]["sandbox"]:
        return None
    try:
        return marker.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
