"""The sandbox's seeders: one per action, registered by name, and the only place that seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import ROOT

from drplan.actions import registry
from drplan.aws import AwsSession
from drplan.model import build_plan
from drplan.sandbox.seed import seed_plan
from drplan.sandbox.seeders import SEEDERS, SeedContext, register
from tests.runs import one_step

#: AWS actions the sandbox cannot seed: moto has no ARC (Route 53 Application Recovery Controller).
UNSEEDED = {"aws.arc.set_routing_control"}


def test_every_seeder_belongs_to_an_action_and_every_restore_has_one():
    actions = registry()
    assert set(SEEDERS) <= set(actions)
    restores = {
        name for name, action in actions.items() if action.family not in ("check", "manual", "control")
    }
    assert restores - UNSEEDED <= set(SEEDERS)
    # Every action that reads or changes AWS has one (checks of AWS state and Lambda steps too).
    aws = {name for name, action in actions.items() if action.iam}
    assert aws - UNSEEDED == {name for name in SEEDERS}


def test_production_action_code_knows_nothing_of_the_sandbox():
    """Seeders use the actions' helpers, never the other way round."""
    for path in sorted((ROOT / "drplan" / "actions").rglob("*.py")):
        text = path.read_text(encoding="utf-8").lower()
        assert "sandbox" not in text and "seed" not in text, path.relative_to(ROOT)


def test_drplans_own_seeders_cannot_be_replaced():
    with pytest.raises(ValueError, match=r"aws\.rds\.restore_snapshot"):
        register("aws.rds.restore_snapshot", lambda ctx: None)


@dataclass
class FakeSandbox:
    """What seed_plan uses of a sandbox (no emulator: the seeder under test makes no calls)."""

    plan: Any
    seed_state: dict[str, Any] = field(default_factory=dict)
    backup: Any = None

    def session(self, *, region: str | None = None, read_only: bool = False) -> AwsSession:
        return AwsSession(region=region or "us-east-1")


def test_a_registered_seeder_is_called_for_each_mode_with_the_plans_own_parameters(monkeypatch):
    """A plugin action's seeder: registered by name, called with the recovery's and then the drill's
    parameters (not isolated), sharing the sandbox's seed_state."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def seed_wait(ctx: SeedContext) -> None:
        seen.append((ctx.mode, dict(ctx.params)))
        ctx.seed_state["calls"] = ctx.seed_state.get("calls", 0) + 1

    monkeypatch.setitem(SEEDERS, "wait", None)  # so that the test leaves no seeder behind
    register("wait", seed_wait)
    plan = build_plan(one_step("wait", {"duration": "PT1M"}, drill_with={"duration": "PT2M"}))
    sandbox = FakeSandbox(plan)
    seed_plan(sandbox)
    assert seen == [("recover", {"duration": "PT1M"}), ("drill", {"duration": "PT2M"})]
    assert sandbox.seed_state == {"calls": 2}


def test_seed_context_of_a_step_context_keeps_every_field():
    from drplan.actions.base import StepContext

    plan = build_plan(one_step("wait", {"duration": "PT1M"}))
    step = next(iter(plan.steps()))
    now = datetime.now(timezone.utc)
    ctx = StepContext(step, step.params, "recover", "r1", plan, AwsSession(), plan.objectives_of("svc"), now)
    state: dict[str, Any] = {}
    seeding = SeedContext.of(ctx, state)
    assert isinstance(seeding, StepContext) and seeding.seed_state is state
    assert (seeding.step, seeding.params, seeding.run_id, seeding.aws) == (
        ctx.step,
        ctx.params,
        "r1",
        ctx.aws,
    )


def test_seeder_modules_mirror_the_action_packages():
    actions = {p.name for p in (ROOT / "drplan" / "actions").iterdir() if (p / "__init__.py").exists()}
    seeders = {p.stem for p in (ROOT / "drplan" / "sandbox" / "seeders").glob("*.py")} - {
        "__init__",
        "context",
    }
    assert seeders == actions


def test_a_drill_in_another_region_finds_its_sources_there(monkeypatch):
    """drill.region other than aws.region: the drill restores from what is in the drill's region,
    so the sandbox seeds there too (and in the plan's region, for recoveries)."""
    seen: list[tuple[str, str | None]] = []

    def seed_wait(ctx: SeedContext) -> None:
        seen.append((ctx.mode, ctx.aws.region))

    monkeypatch.setitem(SEEDERS, "wait", None)
    register("wait", seed_wait)
    data = one_step("wait", {"duration": "PT1M"})
    data["aws"] = {"region": "us-east-1"}
    data["drill"] = {"region": "eu-west-1"}
    seed_plan(FakeSandbox(build_plan(data)))
    assert seen == [("recover", "us-east-1"), ("drill", "eu-west-1")]
    seen.clear()
    data["services"]["svc"]["steps"][0]["region"] = "eu-central-1"  # a step's own region wins
    seed_plan(FakeSandbox(build_plan(data)))
    assert seen == [("recover", "eu-central-1")]
