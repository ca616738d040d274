"""Exported state machines in moto's Step Functions interpreter: makespan against the critical path
and against drplan's own scheduler, and what the encoding costs in transitions.

Plans of ``wait`` steps (seconds-scale waits, so makespans are dominated by the plan, not by the
emulator) in three shapes:

- ``diamond``: a -> (b, c) -> d, series-parallel: nested Parallel states, no coordination;
- ``N``: a->c, b->c, b->d, the smallest graph that is not series-parallel: one branch per step,
  waiting through coordination records (DynamoDB items polled with the local polling intervals);
- ``layered-12``: 12 steps in 3 random layers (the first seed whose graph is not series-parallel):
  structured where it can be, coordinated where it must;
- ``6 wide, parallelism 2``: 6 independent steps under ``run.parallelism: 2``: each step takes a
  slot of a semaphore (a counter item, conditional updates) before it starts, and a step that finds
  none polls again (at once, then after 5 s, growing 1.5x to 15 s). Its baseline is the lower bound
  within the limit (the larger of the critical path and the total work over the parallelism), which
  drplan's scheduler reaches; the note gives the most steps seen running at once.

For each: the **critical path** (the baseline: no engine beats it), drplan's **local scheduler**
running the same plan for real (threads, real waits) and the **exported state machine** executed
by moto (``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})``), with the
machine's default timings (first poll of a coordination record right away, then after 5 s, growing
1.5x to 15 s). The makespan of an execution is measured in its history, from the first step's
start to the last step's end. Notes give the history's events and state transitions (Step
Functions bills transitions and caps a history at 25,000 events), and the definition's size.

moto's interpreter is slow per transition (tens of ms, more on a loaded machine), far slower than
the waits: its figures are an upper bound of the encoding's cost, not a forecast of AWS's.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import Context, Row

ORDER = 70
TITLE = "Step Functions export: makespan in moto vs the critical path and vs drplan's scheduler"
WAIT = 2  # seconds each wait step lasts
REGION = "us-east-1"


def _plan(
    name: str,
    edges: list[tuple[str, str]],
    nodes: list[str],
    seconds: Mapping[str, int],
    parallelism: int | None = None,
) -> dict[str, Any]:
    """One service per step, ordered by ``after`` (``service.step``)."""
    services: dict[str, Any] = {}
    for node in nodes:
        after = [f"{u}.w" for u, v in edges if v == node]
        step: dict[str, Any] = {
            "id": "w",
            "uses": "wait",
            "with": {"duration": f"PT{seconds[node]}S"},
            "after": after,
        }
        services[node] = {"steps": [step]}
    run = {"run": {"parallelism": parallelism}} if parallelism else {}
    return {"drplan": 1, "name": name, "aws": {"region": REGION}, **run, "services": services}


def _layered(n: int, seed: int) -> tuple[list[str], list[tuple[str, str]], dict[str, int]]:
    """``n`` steps in layers of 4, each waiting for 1-2 steps of the layer before; waits of 1-3 s."""
    rng = random.Random(seed)
    nodes = [f"s{i}" for i in range(n)]
    layers = [nodes[i : i + 4] for i in range(0, n, 4)]
    edges = [
        (u, v)
        for before, layer in itertools.pairwise(layers)
        for v in layer
        for u in rng.sample(before, rng.randint(1, 2))
    ]
    return nodes, edges, {k: rng.randint(1, 3) for k in nodes}


def shapes() -> dict[str, dict[str, Any]]:
    import networkx as nx

    from drplan.stepfunctions.asl import decompose, general_parts

    out = {
        "diamond": _plan(
            "diamond",
            [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
            list("abcd"),
            dict.fromkeys("abcd", WAIT),
        ),
        "N": _plan("nshape", [("a", "c"), ("b", "c"), ("b", "d")], list("abcd"), dict.fromkeys("abcd", WAIT)),
    }
    for seed in range(1, 100):  # the first random 12-step plan that is not series-parallel
        nodes, edges, seconds = _layered(12, seed)
        graph = nx.DiGraph(edges)
        graph.add_nodes_from(nodes)
        if general_parts(decompose(graph, {k: i for i, k in enumerate(nodes)})):
            out[f"layered-12 (seed {seed})"] = _plan("layered", edges, nodes, seconds)
            break
    wide = [f"p{i}" for i in range(6)]
    out["6 wide, parallelism 2"] = _plan("wide", [], wide, dict.fromkeys(wide, WAIT), parallelism=2)
    return out


def critical_path(data: dict[str, Any]) -> float:
    from drplan.actions import registry
    from drplan.engine.prepare import prepare
    from drplan.engine.schedule import critical_path_length
    from drplan.model import build_plan

    prepared = prepare(build_plan(data), "recover", registry())
    return critical_path_length(
        prepared.graph.graph, {k: s.estimate.total_seconds() for k, s in prepared.steps.items()}
    )


def lower_bound(data: dict[str, Any]) -> float:
    """No engine within ``run.parallelism`` beats the larger of the critical path and the total
    work over the parallelism."""
    parallelism = int(data.get("run", {}).get("parallelism") or 0)
    if not parallelism:
        return critical_path(data)
    work = sum(
        float(step["with"]["duration"][2:-1]) for svc in data["services"].values() for step in svc["steps"]
    )
    return max(critical_path(data), work / parallelism)


@contextlib.contextmanager
def atomic_updates() -> Iterator[None]:
    """DynamoDB applies a conditional update atomically; moto does not lock, and its interpreter runs
    branches in threads: the semaphore's counter is given the atomicity DynamoDB has."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.Lock()
    original = DynamoDBBackend.update_item

    def update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoDBBackend.update_item = original  # type: ignore[method-assign]


def local_makespan(data: dict[str, Any]) -> float:
    """drplan's own runner, real waits (no AWS call is made by wait steps)."""
    from drplan.actions import registry
    from drplan.aws import AwsSession
    from drplan.engine.events import EventBus
    from drplan.engine.prepare import prepare
    from drplan.engine.records import RunOptions
    from drplan.engine.runner import Runner
    from drplan.model import build_plan

    prepared = prepare(build_plan(data), "recover", registry(), run_id="b3nch000")
    runner = Runner(prepared, AwsSession(region=REGION), EventBus("b3nch000"), RunOptions(poll_initial=0.05))
    outcome = runner.run()
    starts = [r.started for r in outcome.records.values() if r.started is not None]
    ends = [r.finished for r in outcome.records.values() if r.finished is not None]
    return max(ends) - min(starts)


def exported_run(data: dict[str, Any], history_budget: int | None = None) -> dict[str, Any]:
    """One execution in moto; ``history_budget``: split the plan into child executions at this
    budget (the exporter's own default is 20,000 events)."""
    import boto3
    from moto import mock_aws

    from drplan.model import build_plan
    from drplan.stepfunctions import export_plan
    from drplan.stepfunctions.history import child_executions

    budget = {"history_budget": history_budget} if history_budget else {}
    exported = export_plan(build_plan(data), "recover", **budget)
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    with (
        atomic_updates(),
        moto_starts_child_executions(),
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
    ):
        if exported.coordination_table:
            boto3.client("dynamodb", region_name=REGION).create_table(
                TableName=exported.coordination_table,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = create_machines(sfn, exported, "bench")["stateMachineArn"]
        execution = sfn.start_execution(
            stateMachineArn=arn, input=json.dumps({"run_id": "b3nch000", "created": "2026-01-01T00:00:00Z"})
        )["executionArn"]
        while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
            time.sleep(0.1)
        status = sfn.describe_execution(executionArn=execution)["status"]
        events = _history(sfn, execution)
        main_events = len(events)
        for child in child_executions(events):  # a plan split into parts: their steps' events
            events += _history(sfn, child)
    starts: list[datetime] = []
    ends: list[datetime] = []
    for event in events:
        details = event.get("stateEnteredEventDetails")
        if not details:
            continue
        if details["name"].endswith(".w wait"):
            starts.append(event["timestamp"])
        elif details["name"].endswith(".w succeeded"):
            ends.append(event["timestamp"])
    from drplan.stepfunctions.history import most_at_once

    return {
        "status": status,
        "parts": len(exported.parts),
        "main_events": main_events,
        "makespan": (max(ends) - min(starts)).total_seconds() if starts and ends else float("nan"),
        "events": len(events),
        "transitions": sum(1 for e in events if "stateEnteredEventDetails" in e),
        "size": exported.size(),
        "coordinated": len(exported.shape.coordinated),
        "semaphores": ", ".join(f"{sem.name} {sem.limit}" for sem, _ in exported.shape.semaphores),
        "most": most_at_once(exported.definition, events),
    }


def _history(sfn: Any, execution: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


@contextlib.contextmanager
def moto_starts_child_executions() -> Iterator[None]:
    """The tests' fixes of moto's startExecution.sync:2 (tests/moto_child_executions.py)."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.moto_child_executions import moto_starts_child_executions as fixes

    with fixes():
        yield


def create_machines(sfn: Any, exported: Any, name: str) -> dict[str, Any]:
    """The export's main machine and its parts (tests/moto_child_executions.py)."""
    from tests.moto_child_executions import create_machines as create

    return create(sfn, exported, name)


def split_plan() -> dict[str, Any]:
    """The N (a->c, b->c, b->d) and an independent chain x->y, 2 s waits."""
    return _plan(
        "split",
        [("a", "c"), ("b", "c"), ("b", "d"), ("x", "y")],
        ["a", "b", "c", "d", "x", "y"],
        dict.fromkeys("abcdxy", WAIT),
    )


#: Waits do not poll: 75 events each at most, so parts of 150 hold two steps: the chain x->y in
#: one, the N in two slices (a, b) then (c, d).
SPLIT_BUDGET = 150


def run(ctx: Context) -> Iterator[Row]:
    for name, data in shapes().items():
        ctx.log(f"  {name}: critical path, local run, exported run in moto")
        cp = lower_bound(data)
        local = local_makespan(data)
        exported = exported_run(data)
        steps = len(data["services"])
        note = (
            f"{exported['status']}; local scheduler {local:.1f} s; {exported['transitions']} transitions, "
            f"{exported['events']} events ({exported['events'] / steps:.0f} a step); definition "
            f"{exported['size'] / 1024:.0f} KiB; {exported['coordinated']} coordinated step(s)"
        )
        if exported["semaphores"]:
            note += f"; semaphore {exported['semaphores']}, at most {exported['most']} step(s) seen at once"
        yield Row(
            f"exported {name} ({steps} wait steps), makespan in moto",
            exported["makespan"],
            "s",
            baseline=cp,
            baseline_name="lower bound within the limit" if data.get("run") else "critical path",
            note=note,
        )
    ctx.log("  N and a chain, one machine and as child executions")
    data = split_plan()
    cp = critical_path(data)
    whole = exported_run(data)
    parts = exported_run(data, history_budget=SPLIT_BUDGET)
    yield Row(
        f"exported N and a chain as {parts['parts']} parts (child executions), makespan in moto",
        parts["makespan"],
        "s",
        baseline=cp,
        baseline_name="critical path",
        note=(
            f"{parts['status']}; the same plan in one machine: {whole['makespan']:.1f} s; "
            f"{parts['events']} events ({parts['main_events']} in the main history) against {whole['events']}. "
            "A part starts with StartExecution and ends when moto's .sync check (every 0.5 s) sees it "
            "ended; on AWS a part's end arrives through EventBridge"
        ),
    )


if __name__ == "__main__":
    for row in run(Context(quick=True)):
        ratio = f" ({row.value / row.baseline:.2f}x {row.baseline_name})" if row.baseline else ""
        print(f"{row.name}: {row.value:.1f} {row.unit}{ratio}; {row.note}", file=sys.stdout)
