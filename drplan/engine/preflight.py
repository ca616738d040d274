"""Preflight: read-only checks of every step against AWS before anything changes.

Runs each action's :meth:`~drplan.actions.base.Action.preflight` in parallel, through a session
that refuses any call that is not a Describe/List/Get (see :class:`drplan.aws.AwsSession`), so a
preflight provably changes nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from drplan.actions.base import PreflightResult
from drplan.aws import AwsAccess, describe_error
from drplan.engine.prepare import Prepared, PreparedStep
from drplan.engine.records import RunOptions
from drplan.engine.signals import Stop
from drplan.engine.worker import StepContexts, resolve


@dataclass
class PreflightReport:
    results: dict[str, list[PreflightResult]] = field(default_factory=dict)

    def worst(self, key: str) -> str:
        statuses = {r.status for r in self.results.get(key, [])}
        return "error" if "error" in statuses else "warning" if "warning" in statuses else "ok"

    @property
    def ok(self) -> bool:
        return all(self.worst(k) != "error" for k in self.results)

    def collisions(self) -> list[str]:
        """Target names that already exist, or could not be checked (what makes a drill refuse)."""
        return [
            f"{key}: {r.message}"
            for key, results in self.results.items()
            for r in results
            if r.status == "error" and (r.name is not None or not r.checked)
        ]


def _has_reference(value: object) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_reference(v) for v in value)
    return False


def _creates_anything(step: PreparedStep) -> bool:
    """Whether the step makes a resource of a name it declares (a restore), rather than only change
    or read existing ones (a promotion, a capacity, a check). Unknown: assume it does."""
    try:
        return any(t.creates for t in step.action.targets(step.params))
    except Exception:
        return True


def _assume(aws: AwsAccess, role: str, region: str | None) -> tuple[bool, str, dict[str, Any]]:
    """Can ``role`` (a step's own, often in a DR account) be assumed from here, with its external
    ID? Asked of STS as that role: (yes or no, what to say, facts)."""
    try:
        who = aws.client("sts", region=aws.region_of(region), role_arn=role).get_caller_identity()
    except Exception as exc:
        return False, f"cannot assume role {role}: {describe_error(exc)}", {"role": role}
    return True, f"assumes role {role} (account {who.get('Account')})", {"role": role, "as": who.get("Arn")}


def run_preflight(prepared: Prepared, aws: AwsAccess, options: RunOptions | None = None) -> PreflightReport:
    contexts = StepContexts(prepared, aws, options or RunOptions(), Stop(), None)
    roles: dict[tuple[str, str | None], tuple[bool, str, dict[str, Any]]] = {}  # one STS question each

    def check(key: str) -> tuple[str, list[PreflightResult]]:
        step = prepared.steps[key]
        ctx = contexts.for_step(key, resolve(step.params, {}, strict=False))
        role = step.step.role_arn
        if not role:
            return key, _action_preflight(step, ctx)
        where = (role, step.step.region)
        if where not in roles:
            roles[where] = _assume(aws, role, step.step.region)
        assumed, message, facts = roles[where]
        if not assumed:
            # Every call of the step would fail the same way. A step that creates names cannot have
            # them checked either, so a drill refuses, as for any name it could not check.
            return key, [PreflightResult("error", message, facts, checked=not _creates_anything(step))]
        return key, [PreflightResult("ok", message, facts), *_action_preflight(step, ctx)]

    def _action_preflight(step: PreparedStep, ctx: Any) -> list[PreflightResult]:
        try:
            return list(step.action.preflight(ctx))
        except Exception as exc:
            if _has_reference(ctx.params):
                # What it would look up comes from an earlier step's output, unknown before the run:
                # not a name anyone else can hold (the earlier step makes it), so no refusal.
                return [
                    PreflightResult(
                        "warning",
                        "not checked before the run: its parameters use an earlier step's output "
                        f"({describe_error(exc)})",
                    )
                ]
            if not _creates_anything(step):
                # AWS would not answer (access denied, an endpoint down): an error the run will meet
                # too, but no name the step makes could be taken, so it does not stop a drill.
                return [PreflightResult("error", f"could not check: {describe_error(exc)}")]
            # Could not look: for a drill that means the isolated names are not known to be free.
            return [PreflightResult("error", f"preflight failed: {describe_error(exc)}", checked=False)]

    report = PreflightReport()
    with ThreadPoolExecutor(max_workers=max(1, min(16, prepared.limits.parallelism or 16))) as pool:
        for key, results in pool.map(check, prepared.order()):
            report.results[key] = results
    return report
