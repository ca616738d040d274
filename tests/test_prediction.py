"""The predicted RTO models the run's limits: it simulates the scheduler that really runs.

The arithmetic of each case is written out, so a reader can check the figures without drplan.
"""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from drplan.actions import registry
from drplan.cli import cli
from drplan.engine.schedule import Limits, simulate
from drplan.graph import analyse, compile_graph
from drplan.model import build_plan

ROLE = "arn:aws:iam::123456789012:role/backup"


def backup_plan(restores: int, *, parallelism: int | None = None, restore: str = "PT30M") -> dict[str, Any]:
    """``restores`` services, each an AWS Backup restore (``restore`` long) then a 1-minute check."""
    services = {
        f"db{i}": {
            "steps": [
                {
                    "id": "restore",
                    "uses": "aws.backup.restore",
                    "with": {
                        "vault": "vault",
                        "resource_arn": f"arn:aws:rds:us-east-1:123456789012:db:db{i}",
                        "target": f"db{i}-restored",
                        "iam_role_arn": ROLE,
                    },
                    "estimate": restore,
                },
                {
                    "id": "ok",
                    "uses": "check.tcp",
                    "with": {"host": f"${{db{i}.restore.endpoint}}", "port": 5432},
                    "estimate": "PT1M",
                },
            ]
        }
        for i in range(restores)
    }
    data: dict[str, Any] = {
        "drplan": 1,
        "name": "limits",
        "aws": {"region": "us-east-1"},
        "services": services,
    }
    if parallelism is not None:
        data["run"] = {"parallelism": parallelism}
    return data


def test_three_restores_two_at_a_time() -> None:
    """Parallelism 2, three 30-minute restores, each followed by a 1-minute check.

    t=0   db0.restore and db1.restore start (2 slots; each has 31 min left to the end).
    t=30  both finish. db2.restore (31 min left) outranks the checks (1 min): it takes the first
          free slot, db0.ok the second.  t=31: db0.ok done, db1.ok starts; t=32 done.
    t=60  db2.restore finishes, db2.ok runs 60-61.
    Makespan 61 min; the critical path alone is 31 min.
    """
    plan = build_plan(backup_plan(3))
    rg = compile_graph(plan, "recover")
    analysis = analyse(rg, registry(), Limits(parallelism=2, per_action={"aws.backup.restore": 10}))
    minutes = {
        k: (t.start.total_seconds() / 60, t.finish.total_seconds() / 60) for k, t in analysis.steps.items()
    }
    assert minutes == {
        "db0.restore": (0, 30),
        "db0.ok": (30, 31),
        "db1.restore": (0, 30),
        "db1.ok": (31, 32),
        "db2.restore": (30, 60),
        "db2.ok": (60, 61),
    }
    assert analysis.predicted_rto.total_seconds() == 61 * 60
    assert analysis.critical_rto.total_seconds() == 31 * 60
    assert analysis.limited


def test_per_action_limit_binds_before_parallelism() -> None:
    """AWS Backup's 10 concurrent restore jobs with parallelism 16: 25 restores of 45 minutes run in
    three rounds (10, 10, 5), whatever the parallelism: 3 x 45 + 1 = 136 minutes; critical path 46."""
    plan = build_plan(backup_plan(25, restore="PT45M"))
    analysis = analyse(compile_graph(plan, "recover"), registry())  # the run's own limits
    assert analysis.limits.per_action["aws.backup.restore"] == 10
    assert analysis.limits.parallelism == 16
    assert analysis.predicted_rto.total_seconds() == 136 * 60
    assert analysis.critical_rto.total_seconds() == 46 * 60


def test_prediction_is_the_schedulers_simulated_makespan() -> None:
    """The figure ``analyse`` reports is the ReadyQueue's own simulation, not a second model."""
    plan = build_plan(backup_plan(7))
    rg = compile_graph(plan, "recover")
    limits = Limits(parallelism=3, per_action={"aws.backup.restore": 2})
    analysis = analyse(rg, registry(), limits)
    durations = {k: t.duration.total_seconds() for k, t in analysis.steps.items()}
    group_of = {k: rg.step(k).uses for k in rg.graph}
    schedule = simulate(rg.graph, durations, limits=limits, group_of=group_of)
    assert analysis.predicted_rto.total_seconds() == schedule.makespan
    # Two restores at a time, 7 restores: four rounds of 30 minutes, the last check after it.
    assert schedule.makespan == 4 * 30 * 60 + 60


def test_plan_and_validate_judge_the_limited_prediction(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The plan sets run.parallelism 2; --parallelism overrides it for the dry run."""
    data = backup_plan(3, parallelism=2)
    data["objectives"] = {"rto": "PT45M"}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    runner = CliRunner()

    planned = runner.invoke(cli, ["plan", str(path), "--format", "json"])
    doc = json.loads(planned.stdout)
    assert doc["plan_rto"]["predicted_rto_seconds"] == 61 * 60
    assert doc["plan_rto"]["critical_path_rto_seconds"] == 31 * 60
    assert doc["plan_rto"]["status"] == "missed"
    assert planned.exit_code == 1

    wider = runner.invoke(cli, ["plan", str(path), "--format", "json", "--parallelism", "3"])
    assert json.loads(wider.stdout)["plan_rto"]["predicted_rto_seconds"] == 31 * 60
    assert wider.exit_code == 0

    validated = runner.invoke(cli, ["validate", str(path)])
    assert validated.exit_code == 1
    assert "DR302" in validated.stdout and "1h 1m" in validated.stdout


def test_a_short_tier_1_service_is_not_starved_by_a_long_chain_without_its_urgency() -> None:
    """Parallelism 1. `payments` (RTO 30 min) is one 20-minute step; `analytics` (RTO 6 h) is a
    chain of two 60-minute steps, the longest remaining path in the plan.

    Critical-path priority would start analytics.load first (120 min left against 20), then
    analytics.index (60 against 20): payments would run 120-140, missing its 30 minutes.
    Least slack: payments must start by 30-20 = 10 min, analytics.load by 360-120 = 240 min, so
    payments runs 0-20 (met), then analytics 20-80 and 80-140 (met: 140 min < 6 h).
    The run and the prediction share the scheduler, so `plan` predicts what the run will do."""

    def wait(step: str, minutes: int, **extra: Any) -> dict[str, Any]:
        return {
            "id": step,
            "uses": "wait",
            "with": {"duration": f"PT{minutes}M"},
            "estimate": f"PT{minutes}M",
            **extra,
        }

    data = {
        "drplan": 1,
        "name": "tiers",
        "aws": {"region": "us-east-1"},
        "run": {"parallelism": 1},
        "services": {
            "analytics": {
                "objectives": {"rto": "PT6H"},
                "steps": [wait("load", 60), wait("index", 60, after=["load"])],
            },
            "payments": {"objectives": {"rto": "PT30M"}, "steps": [wait("restore", 20)]},
        },
    }
    rg = compile_graph(build_plan(data), "recover")
    analysis = analyse(rg, registry(), Limits(parallelism=1))
    minutes = {k: t.finish.total_seconds() / 60 for k, t in analysis.steps.items()}
    assert minutes == {"payments.restore": 20, "analytics.load": 80, "analytics.index": 140}

    durations = {k: 3600.0 for k in ("analytics.load", "analytics.index")} | {"payments.restore": 1200.0}
    by_path = simulate(rg.graph, durations, limits=Limits(parallelism=1))  # critical-path priority
    assert by_path.finish["payments.restore"] / 60 == 140  # after both analytics steps (serial chain)

    assert analysis.service_rto["payments"].total_seconds() / 60 == 20

    result = CliRunner().invoke(cli, ["plan", "-"], input=json.dumps(data))
    assert result.exit_code == 0, result.output


def test_one_shared_rto_schedules_exactly_by_critical_path() -> None:
    """a(0.1 s) -> b(0.2 s) and c(0.3 s): a and c tie on their remaining path (0.3 s), and plan
    order starts a first. "RTO - path" in floating point (3600 - 0.2 - 0.1 against 3600 - 0.3)
    would not tie; with one RTO for every step the scheduler uses the paths themselves."""
    import networkx as nx

    graph = nx.DiGraph([("a", "b")])
    graph.add_node("c")
    durations = {"a": 0.1, "b": 0.2, "c": 0.3}
    order = {"a": 0, "b": 1, "c": 2}
    by_path = simulate(graph, durations, limits=Limits(parallelism=1), order=order)
    shared = simulate(
        graph,
        durations,
        limits=Limits(parallelism=1),
        order=order,
        deadlines=dict.fromkeys(durations, 3600.0),
    )
    assert shared.start == by_path.start and min(by_path.start, key=by_path.start.__getitem__) == "a"
