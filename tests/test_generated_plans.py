"""Generated plans: whatever ``drplan validate`` accepts, every other command handles.

Hypothesis draws plans over the plan model (tests/generated/plans.py: every built-in action,
random dependency graphs through ``depends_on``, ``after`` and ``${service.step.output}``
references, objectives, estimates, timeouts, ``only``, ``drill_with``, ``run.parallelism``,
drill suffixes), keeps those ``drplan validate`` accepts, and checks the contract in
tests/generated/contract.py:

- ``plan`` (text, json, markdown), ``graph`` (dot, mermaid) and ``docs``, in both modes, render
  without raising; exit 0, or 1 only when an objective would be missed;
- a sandbox drill exits 0, 1 or 3, with no internal error or traceback, and its last line says
  ``(exit N)`` (marked ``slow``). Checks there get a timeout of at most 15 seconds and steps at
  most 2 retries (``for_drill``): a check the sandbox answers but that cannot pass polls until its
  timeout, and retries back off exponentially.

Plans whose only errors are missed objectives (DR301/DR302) are rendered too: ``plan``,
``graph`` and ``docs`` are documented to show them. Every plan the property ever broke is
minimised and kept in tests/generated/found/ (see its README.md); ``test_found_*`` runs the same
contract over each, as plain regression tests.

By default the runs are reproducible (derandomized) and small enough for CI (about a minute on
two cores; the drill part is ``slow``). To explore more::

    DRPLAN_GENERATED_EXAMPLES=2000 DRPLAN_GENERATED_DRILLS=100 DRPLAN_GENERATED_SEED=$RANDOM \\
        python -m pytest tests/test_generated_plans.py -s

- ``DRPLAN_GENERATED_EXAMPLES``: plans rendered (default 60);
- ``DRPLAN_GENERATED_DRILLS``: plans drilled in the sandbox (default 5);
- ``DRPLAN_GENERATED_SEED``: a seed instead of the fixed derandomized one (print it to replay);
- ``DRPLAN_GENERATED_SHRINK=1``: shrink a failing drill to a minimal plan (slow: every attempt is
  a drill; rendering failures always shrink);
- ``DRPLAN_GENERATED_DRILL_TIMEOUT``: seconds one drill may take (default 120).

A failure prints the plan as JSON ("Falsifying example" and the note above it); save it to
tests/generated/found/<short-name>.json to keep it as a regression test.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from generated import contract
from generated.plans import ACTIONS, OUTPUT_KINDS, for_drill, plans
from hypothesis import HealthCheck, Phase, assume, event, given, note, seed, settings

EXAMPLES = int(os.environ.get("DRPLAN_GENERATED_EXAMPLES", "60"))
DRILLS = int(os.environ.get("DRPLAN_GENERATED_DRILLS", "5"))
SEED = os.environ.get("DRPLAN_GENERATED_SEED")
SHRINK_DRILLS = os.environ.get("DRPLAN_GENERATED_SHRINK") == "1"
FOUND = sorted((Path(__file__).parent / "generated" / "found").glob("*.json"))
#: At least this share of the generated plans must pass validate (fully, or but for missed
#: objectives): below it the generator, not drplan, is what is being tested.
MIN_ACCEPTED = 0.6


def _settings(examples: int, *, shrink: bool = True) -> Any:
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        phases=[*phases, Phase.shrink] if shrink else phases,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        print_blob=SEED is not None,
    )


def _seeded(test: Any) -> Any:
    return seed(int(SEED))(test) if SEED is not None else test


def _show(plan: dict[str, Any]) -> None:
    note("plan.json:\n" + json.dumps(plan, indent=2, ensure_ascii=False))


def _report(counts: Counter[str], what: str) -> str:
    total = sum(counts.values()) or 1
    return f"{what}: " + ", ".join(
        f"{kind} {counts[kind]} ({counts[kind] / total:.0%})" for kind in ("valid", "objective", "rejected")
    )


def test_generated_plans_render() -> None:
    """plan, graph and docs on every generated plan validate accepts."""
    counts: Counter[str] = Counter()

    @_seeded
    @_settings(EXAMPLES)
    @given(plans())
    def render(plan: dict[str, Any]) -> None:
        _show(plan)
        with tempfile.TemporaryDirectory() as tmp:
            path = contract.write_plan(plan, Path(tmp))
            validation = contract.validate(path)
            counts[validation.kind] += 1
            event(f"validate: {validation.kind}")
            if validation.kind == "rejected":
                note("validate: " + "; ".join(validation.errors))
            assume(validation.kind != "rejected")
            contract.check_render(path, validation)

    render()
    summary = _report(counts, "generated plans")
    print(summary)
    accepted = (counts["valid"] + counts["objective"]) / (sum(counts.values()) or 1)
    assert accepted >= MIN_ACCEPTED, f"the generator makes too many invalid plans: {summary}"


@pytest.mark.slow
def test_generated_plans_drill() -> None:
    """A sandbox drill of a generated valid plan ends with 0, 1 or 3, and says so last."""
    counts: Counter[str] = Counter()

    @_seeded
    @_settings(DRILLS, shrink=SHRINK_DRILLS)
    @given(plans().map(for_drill))
    def drill(plan: dict[str, Any]) -> None:
        _show(plan)
        with tempfile.TemporaryDirectory() as tmp:
            path = contract.write_plan(plan, Path(tmp))
            validation = contract.validate(path)
            counts[validation.kind] += 1
            assume(validation.kind == "valid")
            result = contract.check_drill(path, Path(tmp))
            event(f"drill: exit {result.code}")

    drill()
    print(_report(counts, "generated plans (drill)"))


def test_generator_covers_every_action() -> None:
    """Every action ``drplan actions`` lists is drawn by the generator (a new one needs a strategy
    in tests/generated/plans.py), and every output it declares has a kind there."""
    from drplan.actions import registry

    missing = sorted(set(registry()) - set(ACTIONS))
    assert not missing, f"tests/generated/plans.py draws no step of {', '.join(missing)}"
    for name, action in registry().items():
        unknown = set(action.outputs) - set(OUTPUT_KINDS[name])
        assert not unknown, f"{name}: outputs without a kind in OUTPUT_KINDS: {sorted(unknown)}"


@pytest.mark.parametrize("path", FOUND, ids=lambda p: p.stem)
def test_found_render(path: Path) -> None:
    """The render contract on each plan the property once broke."""
    validation = contract.validate(path)
    if validation.kind == "rejected":
        return  # validate refuses it now: the contract asks nothing more
    contract.check_render(path, validation)


@pytest.mark.slow
@pytest.mark.parametrize("path", FOUND, ids=lambda p: p.stem)
def test_found_drill(path: Path, tmp_path: Path) -> None:
    """The drill contract on each plan the property once broke."""
    validation = contract.validate(path)
    if validation.kind != "valid":
        return
    plan = tmp_path / path.name
    plan.write_bytes(path.read_bytes())
    contract.check_drill(plan, tmp_path)
