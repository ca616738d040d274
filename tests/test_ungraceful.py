"""``--ungraceful``: a recovery for a primary Region that is down runs each step's ungraceful variant
(an Aurora global database failover instead of its planned switchover), as ARC's ungraceful mode,
and the dry run says so for each step it changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drplan.actions import registry
from drplan.cli import cli
from drplan.dryrun import build_dry_run
from drplan.engine.prepare import prepare
from drplan.model import build_plan

ROOT = Path(__file__).resolve().parents[1]


def two_region_plan() -> dict[str, Any]:
    return {
        "drplan": 1,
        "name": "orders",
        "regions": {"primary": "us-east-1", "recovery": "us-west-2"},
        "aws": {"region": "${regions.recovery}", "account_id": "123456789012"},
        "objectives": {"rto": "PT1H"},
        "services": {
            "db": {
                "steps": [
                    {
                        "id": "switch",
                        "uses": "aws.rds.switchover_global_cluster",
                        "with": {"global_cluster": "orders-global", "target_cluster": "orders-west"},
                        "estimate": "PT5M",
                    },
                    {
                        "id": "ready",
                        "uses": "check.tcp",
                        "with": {"host": "${db.switch.endpoint}", "port": 5432},
                    },
                ]
            }
        },
    }


def test_the_switchover_becomes_a_failover_only_when_ungraceful() -> None:
    plan = build_plan(two_region_plan())
    graceful = prepare(plan, "recover", registry())
    ungraceful = prepare(plan, "recover", registry(), ungraceful=True)
    assert graceful.steps["db.switch"].action.name == "aws.rds.switchover_global_cluster"
    assert ungraceful.steps["db.switch"].action.name == "aws.rds.failover_global_cluster"
    # Steps without a variant, parameters and the graph are the same either way.
    assert ungraceful.steps["db.ready"].action.name == "check.tcp"
    assert ungraceful.steps["db.switch"].params == graceful.steps["db.switch"].params
    assert set(ungraceful.graph.graph.edges) == set(graceful.graph.graph.edges)


def test_only_the_switchover_declares_an_ungraceful_variant() -> None:
    variants = {name: a.ungraceful for name, a in registry().items() if a.ungraceful}
    assert variants == {"aws.rds.switchover_global_cluster": "aws.rds.failover_global_cluster"}
    for variant in variants.values():
        assert variant in registry()  # a variant names a real action, with the same parameters
    switch, fail = (
        registry()["aws.rds.switchover_global_cluster"],
        registry()["aws.rds.failover_global_cluster"],
    )
    assert switch.params_schema == fail.params_schema or (
        set(switch.params_schema["properties"]) == set(fail.params_schema["properties"])  # type: ignore[index]
    )
    assert set(switch.outputs) <= set(fail.outputs)  # what later steps reference stays there


def test_the_dry_run_names_the_variant_and_what_it_replaces() -> None:
    plan = build_plan(two_region_plan())
    dry = build_dry_run(plan, "recover", ungraceful=True)
    (switch,) = [s for s in dry.steps if s.key == "db.switch"]
    assert (switch.uses, switch.instead_of) == (
        "aws.rds.failover_global_cluster",
        "aws.rds.switchover_global_cluster",
    )
    assert "Fail over Aurora global database" in switch.what
    plain = build_dry_run(plan, "recover")
    assert all(s.instead_of is None for s in plain.steps)


def test_plan_ungraceful_shows_it_in_text_and_json(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(two_region_plan()), encoding="utf-8")
    runner = CliRunner()
    text = runner.invoke(cli, ["plan", str(path), "--ungraceful"])
    assert text.exit_code == 0, text.output
    assert (
        "uses aws.rds.failover_global_cluster (--ungraceful, instead of aws.rds.switchover_global_cluster)"
        in text.stdout
    )
    doc = json.loads(runner.invoke(cli, ["plan", str(path), "--ungraceful", "--format", "json"]).stdout)
    steps = {s["key"]: s for s in doc["steps"]}
    assert steps["db.switch"]["instead_of"] == "aws.rds.switchover_global_cluster"
    assert steps["db.ready"]["instead_of"] is None
    graceful = json.loads(runner.invoke(cli, ["plan", str(path), "--format", "json"]).stdout)
    assert {s["key"]: s["uses"] for s in graceful["steps"]}[
        "db.switch"
    ] == "aws.rds.switchover_global_cluster"


def test_recover_and_drill_take_the_option() -> None:
    for name in ("recover", "drill", "resume"):
        command = cli.all_commands[name]
        assert any("--ungraceful" in p.opts for p in command.params), name


@pytest.mark.slow
@pytest.mark.parametrize("ungraceful", [False, True], ids=["graceful", "ungraceful"])
def test_a_sandbox_recovery_runs_the_variant_the_dry_run_named(tmp_path: Path, ungraceful: bool) -> None:
    """End to end in the sandbox (which emulates both Aurora calls): the journal's header records
    the choice and the step's recovery point says which call ran; the failover measures its lag."""
    data = two_region_plan()
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    args = [sys.executable, "-m", "drplan", "recover", str(path), "--sandbox", "--yes"]
    done = subprocess.run(
        [*args, "--ungraceful"] if ungraceful else args,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    shown = (
        "uses aws.rds.failover_global_cluster (--ungraceful, instead of aws.rds.switchover_global_cluster)"
    )
    assert (shown in done.stderr) is ungraceful
    (journal,) = (tmp_path / ".drplan" / "runs").glob("*/journal.jsonl")
    events = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    started = next(e for e in events if e["kind"] == "run.started")
    assert bool(started["data"].get("ungraceful")) is ungraceful
    handle = next(
        e["data"]["handle"] for e in events if e.get("step") == "db.switch" and "handle" in e["data"]
    )
    assert ("failover" in handle["recovery_point"]["id"]) is ungraceful
    assert ("replication_lag_seconds" in handle) is ungraceful
