"""Seed the sandbox from the plan: what each step restores from must exist, with real data.

Each action's seeder (:mod:`drplan.sandbox.seeders`) knows what its step restores from; this
module walks the plan and calls them. Actions without a seeder (checks, waits, commands, and
plugin actions that registered none) get nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from drplan.actions import registry
from drplan.aws import describe_error
from drplan.model import Mode
from drplan.sandbox.seeders import SEEDERS, SeedContext
from drplan.sandbox.seeders.context import SEEDING

if TYPE_CHECKING:
    from drplan.sandbox import Sandbox


def seed_plan(sandbox: Sandbox) -> list[str]:
    """Everything the plan refers to, for both modes: what recoveries restore from, and what drills
    use instead (``drill_with``: a drill Auto Scaling group, a drill hosted zone, another vault).

    A value that is a reference (``${...}``) names something an earlier step makes, so there is
    nothing to seed for it. A seeder that fails does not stop the sandbox: the step will then fail
    in the run as it would against AWS, and the problems are returned for the output."""
    sandbox.seed_state[SEEDING] = {}
    try:
        return _seed(sandbox)
    finally:
        sandbox.seed_state.pop(SEEDING, None)


def _seed(sandbox: Sandbox) -> list[str]:
    problems: list[str] = []
    plan = sandbox.plan
    actions = registry()  # loads plugin actions, which register their seeders
    started = datetime.now(timezone.utc)
    for step in plan.steps():
        seeder = SEEDERS.get(step.uses)
        if step.uses not in actions or seeder is None:
            continue
        passes: list[tuple[Mode, Mapping[str, Any]]] = [("recover", step.params)]
        if step.drill_params or (not step.region and plan.drill.region not in (None, plan.aws.region)):
            # What a drill uses instead, or where it looks for it: a drill in another region
            # restores from what is there.
            passes.append(("drill", step.params_for("drill")))
        for mode, params in passes:
            region = step.region or (plan.drill.region if mode == "drill" else None) or plan.aws.region
            context = SeedContext(
                step=step,
                params=params,
                mode=mode,
                run_id="sandbox-seed",
                plan=plan,
                aws=sandbox.session(region=region or "us-east-1"),
                objectives=plan.objectives_of(step.service),
                started_at=started,
                seed_state=sandbox.seed_state,
                backup=sandbox.backup,
            )
            try:
                seeder(context)
            except Exception as exc:
                problems.append(
                    f"the sandbox could not seed what {step.key} uses ({mode}): {describe_error(exc)}"
                )
    return problems
