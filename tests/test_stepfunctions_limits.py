"""Parallelism and per-action limits inside an exported state machine: semaphores.

Where the plan's graph could run more steps at once than ``run.parallelism`` (or more steps of an
action than its concurrency limit), each step takes a slot of a counter in the coordination table
before it starts and gives it back once its record is written, whatever happened. Executed in
moto's interpreter: the step start/end events of the history (the states drplan's follower reads as
``step.started`` and the record) never show more steps at once than the limit, a failed, retried,
timed-out or skipped step does not keep a slot, and the counters are back at zero at the end.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import networkx as nx
import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.asl import width
from drplan.stepfunctions.history import most_at_once, read_machine
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    SFN,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    aws_state,
    execute,
    lint_definition,
    lint_template,
    n_shape,
    records,
    restore,
    seed,
    statuses,
)


@pytest.fixture(autouse=True)
def _atomic_updates(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """DynamoDB applies a conditional update atomically; moto checks the condition and writes the item
    without a lock, and its interpreter runs Parallel branches in threads. The semaphore relies on
    DynamoDB's atomicity, so the emulator is given it."""
    lock = threading.Lock()
    original = DynamoDBBackend.update_item

    def update_item(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "update_item", update_item)
    yield


def waits(n: int, seconds: int = 2) -> dict[str, Any]:
    return {
        f"w{i}": {"steps": [{"id": "w", "uses": "wait", "with": {"duration": f"PT{seconds}S"}}]}
        for i in range(n)
    }


def counters(table: str) -> dict[str, int]:
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=table)["Items"]
    return {i["id"]["S"].split("#slots#")[1]: int(i["n"]["N"]) for i in items if "#slots#" in i["id"]["S"]}


# --- when a semaphore is needed ----------------------------------------------------------------------------


def test_width_is_the_most_steps_no_dependency_orders() -> None:
    chain = nx.DiGraph([("a", "b"), ("b", "c")])
    assert width(chain) == 1
    diamond = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    assert width(diamond) == 2
    n = nx.DiGraph([("a", "c"), ("b", "c"), ("b", "d")])
    assert width(n) == 2
    apart = nx.DiGraph([("a", "b"), ("c", "d"), ("e", "f")])
    assert width(apart) == 3
    assert width(apart, ["a", "b"]) == 1  # ordered through the graph
    assert width(nx.DiGraph([("a", "x"), ("x", "b")]), ["a", "b"]) == 1  # through a step not counted
    assert width(apart, ["a", "c"]) == 2


def test_a_plan_within_its_limits_exports_the_same_definition() -> None:
    """No cost when not needed: a graph that cannot exceed the limits gets no semaphore at all."""
    data = plan_data(waits(4), run={"parallelism": 4}, name="four")
    within = export_plan(build_plan(data), "recover")
    unlimited = export_plan(build_plan(data), "recover", parallelism=1000)
    assert within.definition == unlimited.definition
    assert within.shape.semaphores == () and within.coordination_table is None
    assert "slot" not in json.dumps(within.definition)
    assert not any("dynamodb:UpdateItem" in s["Action"] for s in within.policy["Statement"])
    # A chain of 6 steps under a parallelism of 1 cannot run two at once either.
    step = {"id": "w", "uses": "wait", "with": {"duration": "PT1S"}}
    chain = {f"c{i}": {"steps": [step], **({"depends_on": [f"c{i - 1}"]} if i else {})} for i in range(6)}
    assert export_plan(build_plan(plan_data(chain)), "recover", parallelism=1).shape.semaphores == ()


def test_limits_the_graph_could_exceed_become_semaphores_that_lint() -> None:
    data = plan_data(
        {**waits(3), "db": {"steps": [restore("restore", "orders", "orders-restored")]}},
        run={"parallelism": 2},
        name="limited",
    )
    for mode in ("recover", "drill"):
        exported = export_plan(build_plan(data), mode, limit_overrides={"wait": 1})
        by_name = {sem.name: (sem.limit, members) for sem, members in exported.shape.semaphores}
        assert by_name == {
            "wait": (1, ("w0.w", "w1.w", "w2.w")),
            "run": (2, ("w0.w", "w1.w", "w2.w", "db.restore")),
        }
        assert exported.coordination_table == "drplan-limited-coordination"
        assert lint_definition(exported.definition) == []
        assert lint_template(exported.template) == []
        (coordination,) = [s for s in exported.policy["Statement"] if s["Sid"] == "CoordinationRecords"]
        assert "dynamodb:UpdateItem" in coordination["Action"]
        assert any("takes one of 2 slots" in note for note in exported.notes), exported.notes
        assert any("wait steps could run at once, over its limit of 1" in n for n in exported.notes)


# --- executed ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_six_independent_steps_run_at_most_two_at_once() -> None:
    data = plan_data(waits(6), run={"parallelism": 2}, name="six")
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    ((sem, members),) = exported.shape.semaphores
    assert (sem.name, sem.limit, len(members)) == ("run", 2, 6)
    with mock_aws(config=SFN):
        described = execute(exported.definition, table=exported.coordination_table)
        left = counters(str(exported.coordination_table))
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert statuses(records(described), exported.sids) == {k: "succeeded" for k in exported.sids}
    assert most_at_once(exported.definition, described["history"]) == 2  # reached, never exceeded
    assert left == {"run": 0}  # every slot given back
    # Each of the three rounds of two takes one wait: at least 3 x 2 s.
    started = next(e["timestamp"] for e in described["history"] if e["type"] == "ExecutionStarted")
    ended = described["history"][-1]["timestamp"]
    assert (ended - started).total_seconds() >= 6


@pytest.mark.slow
def test_a_failed_retried_or_timed_out_step_gives_its_slots_back() -> None:
    """parallelism 2 and at most 1 wait step at once: a restore that fails (after a retry), a wait that
    times out, a step skipped after the failure, and steps after them that could only start if every
    slot came back; the same records as a local run with the same limits."""
    data = plan_data(
        {
            "broken": {"steps": [restore("restore", "no-such-table", "broken-restored", retries=1)]},
            "needs-broken": {
                "depends_on": ["broken"],
                "steps": [{"id": "after", "uses": "wait", "with": {"duration": "PT1S"}}],
            },
            "ok": {"steps": [restore("restore", "carts", "carts-restored")]},
            "slow": {
                "steps": [{"id": "settle", "uses": "wait", "with": {"duration": "PT5S"}, "timeout": "PT1S"}]
            },
            **waits(3, seconds=1),
        },
        run={"parallelism": 2},
        name="leaks",
    )
    limits = {"wait": 1}
    with mock_aws():
        seed(("carts",))
        local = run_plan(data, run_id=RUN_ID, group_limits=limits)
        expected = {k: r.status for k, r in local.outcome.records.items()}
    assert expected == {
        "broken.restore": "failed",
        "needs-broken.after": "skipped",
        "ok.restore": "succeeded",
        "slow.settle": "failed",
        "w0.w": "succeeded",
        "w1.w": "succeeded",
        "w2.w": "succeeded",
    }
    exported = export_plan(
        build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE, limit_overrides=limits
    )
    assert [s.name for s, _ in exported.shape.semaphores] == ["wait", "run"]
    with mock_aws(config=SFN):
        seed(("carts",))
        described = execute(exported.definition, table=exported.coordination_table)
        left = counters(str(exported.coordination_table))
    assert described["status"] == "FAILED" and described["error"] == "drplan.StepFailed"
    doc = records(described)
    assert statuses(doc, exported.sids) == expected
    assert doc["steps"][exported.sids["slow.settle"]]["cause"] == "timed out after 1.0s"
    assert left == {"wait": 0, "run": 0}
    assert most_at_once(exported.definition, described["history"]) <= 2
    # At most one wait step at once (w*, slow.settle; needs-broken.after never started).
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in described["history"] if "stateEnteredEventDetails" in e
    ]
    assert entered.count("broken.restore attempt") == 2
    assert "needs-broken.after run" not in entered  # skipped: no slot taken
    waiting = {"w0.w", "w1.w", "w2.w", "slow.settle"}
    assert most_at_once(exported.definition, described["history"], waiting) == 1


def ranked(n: int) -> dict[str, Any]:
    """``n`` independent one-second waits, their services' RTOs the tighter the later in the plan:
    the local scheduler ranks them in the opposite of the plan's order."""
    step = {"id": "w", "uses": "wait", "with": {"duration": "PT1S"}}
    services = {f"r{i}": {"steps": [step], "objectives": {"rto": f"PT{10 * (n - i)}M"}} for i in range(n)}
    return plan_data(services, run={"parallelism": 1}, name="ranked")


def started_in_order(definition: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """The steps in the order their ``drplan:step`` states were entered (as the follower reads it)."""
    roles = read_machine(definition).roles
    order = []
    for event in sorted(history, key=lambda e: int(e["id"])):
        entered = event.get("stateEnteredEventDetails")
        role = roles.get(entered["name"]) if entered else None
        if role is not None and role.kind == "step" and role.key is not None:
            order.append(role.key)
    return order


def test_a_step_yields_to_the_steps_the_local_scheduler_ranks_before_it() -> None:
    exported = export_plan(build_plan(ranked(4)), "recover")
    ((sem, members),) = exported.shape.semaphores
    assert lint_definition(exported.definition) == []
    by_key = {key: sem.waiter[key] for key in members}
    # r3 has the tightest RTO: it yields to no one; r0 yields to the three others.
    assert sem.ahead == {
        "r3.w": (),
        "r2.w": (by_key["r3.w"],),
        "r1.w": (by_key["r3.w"], by_key["r2.w"]),
        "r0.w": (by_key["r3.w"], by_key["r2.w"], by_key["r1.w"]),
    }
    # Steps a dependency orders never wait at the same time: none yields to the other.
    step = {"id": "w", "uses": "wait", "with": {"duration": "PT1S"}}
    chained = plan_data(
        {"a": {"steps": [step]}, "b": {"steps": [step], "depends_on": ["a"]}, "c": {"steps": [step]}},
        run={"parallelism": 1},
    )
    ((sem, _),) = export_plan(build_plan(chained), "recover").shape.semaphores
    assert sem.waiter["a.w"] not in sem.ahead["b.w"]
    # Steps of the same priority do not yield to each other by their places in the plan: no state,
    # no clause more than before the ranking.
    same = export_plan(build_plan(plan_data(waits(4), run={"parallelism": 1})), "recover")
    ((sem, _),) = same.shape.semaphores
    assert set(sem.ahead.values()) == {()}
    assert "waiting for a slot" not in json.dumps(same.definition)


@pytest.mark.slow
def test_a_freed_slot_goes_to_the_step_the_local_scheduler_would_start() -> None:
    """parallelism 1, five independent steps ranked against the plan's order: all ask at once, so
    any may take the slot first (a race no distributed queue can decide as a local one does); each
    slot after that goes to the waiting step ranked first, as locally."""
    data = ranked(5)
    local = run_plan(data, run_id=RUN_ID)
    expected = [e.step for e in local.events if e.kind == "step.started"]
    assert expected == ["r4.w", "r3.w", "r2.w", "r1.w", "r0.w"]
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        described = execute(exported.definition, table=exported.coordination_table)
        items = boto3.client("dynamodb", region_name=REGION).scan(TableName=str(exported.coordination_table))
    assert described["status"] == "SUCCEEDED", described.get("cause")
    got = started_in_order(exported.definition, described["history"])
    assert got[1:] == [key for key in expected if key != got[0]]
    # The counter is back at 0 and no step is left saying it waits.
    (counter,) = [i for i in items["Items"] if "#slots#" in i["id"]["S"]]
    assert set(counter) == {"id", "n"} and counter["n"] == {"N": "0"}


@pytest.mark.slow
def test_a_drill_one_step_at_a_time_through_coordination_records_leaves_nothing_behind() -> None:
    """The N-shaped plan (coordinated: a->c, b->c, b->d) at parallelism 1: a step waiting for a
    predecessor's record holds no slot, so nothing deadlocks; the cleanup removes every copy."""
    data = n_shape()
    data["run"] = {"parallelism": 1}
    tables = ("orders", "carts", "users", "stock")
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    assert exported.shape.coordinated and [s.name for s, _ in exported.shape.semaphores] == ["run"]
    with mock_aws(config=SFN):
        seed(tables)
        before = aws_state()
        described = execute(exported.definition, table=exported.coordination_table)
        after = aws_state()
        left = counters(str(exported.coordination_table))
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == before
    assert left == {"run": 0}
    assert most_at_once(exported.definition, described["history"]) == 1
    cleanup = records(described)["cleanup"]
    assert {cleanup[exported.sids[k]]["status"] for k in exported.sids} == {"removed"}


@pytest.mark.slow
def test_a_counter_that_cannot_be_written_fails_the_steps_instead_of_hanging() -> None:
    """Without the coordination table no slot can be taken: each step fails with DynamoDB's error
    (its record says so), nothing waits forever."""
    data = plan_data(waits(3, seconds=1), run={"parallelism": 1}, name="notable")
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        described = execute(exported.definition, table=None, timeout=60)
    assert described["status"] == "FAILED"
    doc = records(described)
    assert statuses(doc, exported.sids) == {k: "failed" for k in exported.sids}
    assert {doc["steps"][sid]["error"] for sid in exported.sids.values()} == {
        "DynamoDb.ResourceNotFoundException"
    }


def test_export_and_deploy_take_the_parallelism_from_the_command_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`--parallelism 2` on three independent services adds the semaphore the plan alone (16) does
    not need, and says so."""
    from click.testing import CliRunner

    from drplan.cli import cli

    data = plan_data(
        {name: {"steps": [{"id": "w", "uses": "wait", "with": {"duration": "PT1S"}}]} for name in "abc"}
    )
    plan = tmp_path / "wide.json"
    plan.write_text(json.dumps(data), encoding="utf-8")
    limited = CliRunner().invoke(
        cli, ["export", "stepfunctions", str(plan), "-o", str(tmp_path / "two"), "--parallelism", "2"]
    )
    assert limited.exit_code == 0, limited.output
    assert "each step takes one of 2 slots" in limited.output
    free = CliRunner().invoke(cli, ["export", "stepfunctions", str(plan), "-o", str(tmp_path / "free")])
    assert free.exit_code == 0, free.output

    assert any("take a slot" in s for s in _all_states(tmp_path / "two"))
    assert not any("take a slot" in s for s in _all_states(tmp_path / "free"))
    refused = CliRunner().invoke(cli, ["deploy", str(plan), "--stack-name", "s", "--parallelism", "0"])
    assert refused.exit_code == 2 and "--parallelism" in refused.output


def _all_states(folder) -> list[str]:  # type: ignore[no-untyped-def]
    """Every state name in a definition, nested Parallel branches included."""
    names: list[str] = []

    def walk(machine: Mapping[str, Any]) -> None:
        for name, state in machine.get("States", {}).items():
            names.append(name)
            for branch in state.get("Branches", []):
                walk(branch)

    walk(json.loads((folder / "definition.asl.json").read_text()))
    return names
