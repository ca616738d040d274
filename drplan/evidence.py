"""Drill evidence: what happened, measured against what was promised, as one versioned document.

Built from the run's records (never re-measured): measured RTO per service is the time from the
drill's start until the service's last step (its checks included) succeeded; measured RPO per
restored resource is the drill's start minus the creation time of the recovery point used. Each
is compared with its objective and with the RTO the plan predicts from its estimates. Every
report format (JSON, Markdown, HTML, JUnit, Prometheus) is written from this one document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from drplan import __version__
from drplan.actions import registry
from drplan.engine.lifecycle import RunResult
from drplan.graph import analyse

REPORT_FORMAT_VERSION = "1.0"


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    return round(value.total_seconds() if hasattr(value, "total_seconds") else float(value), 3)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]


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
        point = handle.get("recovery_point")
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
            "aws_ids": {
                k: v for k, v in handle.items() if k not in ("resources", "recovery_point") and _is_id(k, v)
            },
            "client_token": f"drplan-{prepared.run_id}-{key}"[:64],
            "resources": [r.to_json() for r in rec.resources],
            "outputs": rec.outputs,
        }
        if point:
            created = datetime.fromisoformat(point["created"])
            # "latest" point-in-time restores record the latest restorable time when they start,
            # which can be a moment after the run's start: no data loss, not a negative one.
            age = max(0.0, start - created.timestamp())
            rpo = plan.objectives_of(p.step.service).rpo
            recovery = {
                "step": key,
                "id": point["id"],
                "created": point["created"],
                "age_seconds": round(age, 3),
                "rpo_objective_seconds": _seconds(rpo),
                "met": None if rpo is None else age <= rpo.total_seconds(),
            }
            entry["recovery_point"] = recovery
            points.append(recovery)
        steps.append(entry)

    services: list[dict[str, Any]] = []
    for sid, service in plan.services.items():
        keys = [k for k in records if prepared.steps[k].step.service == sid]
        objectives = plan.objectives_of(sid)
        measured_rto = None
        status = "not exercised"
        if keys:
            statuses = {records[k].status for k in keys}
            status = "succeeded" if statuses == {"succeeded"} else "failed"
            if status == "succeeded":
                measured_rto = max((records[k].finished or start) - start for k in keys)
        rpos = [pt["age_seconds"] for pt in points if pt["step"] in keys]
        measured_rpo = max(rpos) if rpos else None
        services.append(
            {
                "id": sid,
                "tier": service.tier,
                "status": status,
                "steps": keys,
                "rto": _objective(objectives.rto, measured_rto, analysis.service_rto.get(sid), status),
                "rpo": _objective(objectives.rpo, measured_rpo, None, status if rpos else "not exercised"),
            }
        )

    measured_plan_rto: float | None = max(
        (s["rto"]["measured_seconds"] for s in services if s["rto"]["measured_seconds"] is not None),
        default=None,
    )
    ran_ok = outcome.ok
    plan_status = "succeeded" if ran_ok else ("interrupted" if outcome.interrupted else "failed")
    plan_rpos = [pt["age_seconds"] for pt in points]
    plan_objectives = {
        "rto": _objective(
            plan.objectives.rto, measured_plan_rto if ran_ok else None, analysis.predicted_rto, plan_status
        ),
        "rpo": _objective(
            plan.objectives.rpo,
            max(plan_rpos) if plan_rpos else None,
            None,
            plan_status if plan_rpos else "not exercised",
        ),
    }

    cleanup = _cleanup(result, records)
    verdict = _verdict(plan_status, services, plan_objectives, cleanup)
    header = result.header
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "kind": "drplan.drill-report" if prepared.mode == "drill" else "drplan.recovery-report",
        "verdict": {"passed": verdict.passed, "reasons": list(verdict.reasons)},
        "run": {
            "id": result.run_id,
            "mode": prepared.mode,
            "status": plan_status,
            "interrupted": outcome.interrupted,
            "exit_code": result.exit_code,
            "started": _iso(start),
            "finished": _iso(outcome.finished),
            "duration_seconds": round(outcome.finished - start, 3),
            "name_suffix": prepared.suffix or None,
            "journal": str(result.directory / "journal.jsonl"),
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


def _objective(objective: Any, measured: float | None, predicted: Any, status: str) -> dict[str, Any]:
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
        "measured_seconds": round(measured, 3) if measured is not None else None,
        "predicted_seconds": _seconds(predicted),
        "met": met,
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
    status: str, services: list[dict[str, Any]], plan_objectives: dict[str, Any], cleanup: dict[str, Any]
) -> Verdict:
    reasons = []
    if status != "succeeded":
        reasons.append(f"the drill {status}")
    for s in services:
        for kind in ("rto", "rpo"):
            if s[kind]["met"] is False:
                reasons.append(f"{s['id']}: {kind.upper()} objective missed")
    for kind in ("rto", "rpo"):
        if plan_objectives[kind]["met"] is False:
            reasons.append(f"plan: {kind.upper()} objective missed")
    if cleanup["status"] == "incomplete":
        reasons.append("cleanup incomplete: resources remain")
    return Verdict(not reasons, tuple(reasons))
