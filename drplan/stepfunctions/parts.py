"""Plans beyond one execution's quotas, run as child executions.

One Standard execution holds at most 25,000 history events, and its definition at most 1 MiB. A
plan whose definition or worst-case history would not fit is split into *parts*, each a state
machine of its own (``NAME-part-N``) that the main state machine starts with
``states:startExecution.sync:2`` and waits for. The main machine keeps everything about the run as a
whole: the run id and creation time, the records of every step (passed to each part, merged back
from each), the verdict, and a drill's cleanup deadline.

**How a plan is split** (:func:`split`). The weakly connected components of the graph (steps no
dependency links, in any direction) are independent: parts made of whole components run side by
side, in one Parallel, and lose nothing of the local scheduler's order. Components are packed into
parts in plan order until a part's budget is reached. A component that alone is over the budget is
cut along a topological order into consecutive slices (each slice is convex: a step between two of
its steps is in it too), run one after the other: a step in one slice then waits for the whole of
the slice before it, not only for its own predecessors. That is the one place the split costs
order, and the exporter notes it.

**A part's budget**: the definition size of its steps as :class:`~drplan.stepfunctions.asl.Encoder`
writes them (:func:`step_sizes`) within 80 % of the limit, and the history events its steps can
write at the most — each step's fixed events plus, for a step that polls, 13 per poll for as many
polls as fit in its timeout (``Translation.history_events``) — within 20,000 of the 25,000. The export
builds each part and splits again with a smaller budget when one comes out over 1 MiB anyway.
Whatever the split, the records of every step travel in the main execution's state
(:func:`state_bytes`): that bounds the largest plan that exports.

**A part's machine** (:func:`part_definition`) runs one phase per execution, named in its input:
``steps`` (its steps, from the records of the steps before it) or ``cleanup`` (a drill's undo of its
steps, or a recovery's rollback, dependents first). It hands back only its own records and always succeeds when its steps
ran, whatever their outcome, so the main machine judges the run; an execution that fails (an
unexpected error) fails the main machine's steps or cleanup like a crash inside one machine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from drplan.engine.records import RunOptions
from drplan.model import Mode
from drplan.stepfunctions.asl import (
    Encoder,
    Fork,
    Leaf,
    Semaphore,
    Series,
    Tree,
    decompose,
    rollback_block,
    step_block,
    undo_block,
)
from drplan.stepfunctions.builder import Names, Path, Scope, machine, merge_expression, role
from drplan.stepfunctions.tasks import StepInfo, Translation, choice, pass_state

#: Step Functions' quotas (docs/stepfunctions.md#limits).
DEFINITION_LIMIT = 1024 * 1024  # bytes of a definition
HISTORY_LIMIT = 25_000  # events of an execution's history
#: What a part may use of them: the rest is the part's own fixed states and events, and the margin
#: for what the worst case does not count (waiting for a semaphore's slot, coordination polling).
SIZE_BUDGET = int(DEFINITION_LIMIT * 0.8)
EVENT_BUDGET = HISTORY_LIMIT - 5_000

#: The records of every step travel in the main execution's state, whose size AWS limits to 256 KiB,
#: twice: the verdict copies them, and a part's result carries its input (every record before it)
#: beside its own.
STATE_LIMIT = 256 * 1024
RECORD_COPIES = 2
#: What a step's record takes besides its state name (sid) and key, calibrated on a drill of six
#: DynamoDB restores in moto (13- and 9-character sids and keys): the state at its verdict held
#: 4,982 bytes, 830 a step for two copies of a 285-byte record (table name, ARN, backup ARN) and
#: a 37-byte cleanup record, with the JSON around them.
RECORD_BASE = 340
UNDO_RECORD = 45
#: What the records may use of the state: the rest is the run, the working area and headroom.
STATE_BUDGET = int(STATE_LIMIT * 0.9)

#: What Step Functions calls a refused or failed call to start or follow a part that may succeed
#: when made again (throttling, the account's open executions at their quota, a service error).
PART_TRANSIENT = [
    "StepFunctions.ThrottlingException",
    "StepFunctions.ExecutionLimitExceededException",
    "StepFunctions.SdkClientException",
    "StepFunctions.AWSStepFunctionsException",
]
PART_RETRY: dict[str, Any] = {
    "IntervalSeconds": 2,
    "MaxAttempts": 8,
    "BackoffRate": 2.0,
    "MaxDelaySeconds": 60,
    "JitterStrategy": "FULL",
}
START_CHILD = "arn:aws:states:::states:startExecution.sync:2"


class TooLargeForOnePart(ValueError):
    """One step alone is over a part's budget: no split helps."""

    def __init__(self, key: str, what: str) -> None:
        super().__init__(f"step {key} alone {what}")
        self.key = key


@dataclass(frozen=True)
class Part:
    number: int  # from 1
    keys: tuple[str, ...]  # in plan order

    @property
    def name(self) -> str:
        return f"part-{self.number}"


@dataclass(frozen=True)
class Split:
    """How a plan runs as child executions: the parts, and the order the main machine starts them
    in (a tree whose leaves are the parts' names)."""

    parts: tuple[Part, ...]
    tree: Tree
    sliced: tuple[str, ...] = ()  # steps of components cut into slices (they wait for whole slices)

    def part(self, name: str) -> Part:
        return self.parts[int(name.removeprefix("part-")) - 1]


def state_bytes(sids: Mapping[str, str], *, undone: bool) -> int:
    """About how much of the main execution's state the records of the steps take (every copy),
    ``sids`` by step key: ``undone``, a drill's cleanup or a recovery's rollback writes a second
    record per step."""
    one = sum(
        len(sid) + len(key) + RECORD_BASE + ((len(sid) + UNDO_RECORD) if undone else 0)
        for key, sid in sids.items()
    )
    return RECORD_COPIES * one


def step_sizes(
    infos: Mapping[str, StepInfo],
    translations: Mapping[str, Translation],
    graph: nx.DiGraph,
    mode: Mode,
    coordination: str,
    options: RunOptions,
    slots: Mapping[str, tuple[Semaphore, ...]],
    *,
    rollback: bool = False,
) -> dict[str, int]:
    """Each step's share of a definition, in bytes: its block as the encoder writes it (and, in a
    drill or a recovery that rolls back, its undo), minified, plus its share of the joins around it."""
    sizes: dict[str, int] = {}
    undoes = mode == "drill" or rollback
    steps = Encoder(infos, translations, graph, "s", step_block, coordination, options, slots)
    block = undo_block if mode == "drill" else rollback_block
    undos = Encoder(infos, translations, graph.reverse(copy=False), "u", block, coordination, options)
    for key in infos:
        scope = Scope(Names())
        steps.block(steps, key, scope, "next")
        if undoes:
            undos.block(undos, key, scope, "next")
        # Joins, hand-backs and coordination: about 120 bytes a step, twice when it is undone too.
        sizes[key] = len(json.dumps(scope.states, separators=(",", ":"))) + (240 if undoes else 120)
    return sizes


def split(
    graph: nx.DiGraph,
    order: Mapping[str, int],
    sizes: Mapping[str, int],
    events: Mapping[str, int],
    *,
    size_budget: int = SIZE_BUDGET,
    event_budget: int = EVENT_BUDGET,
) -> Split:
    """Parts within the budgets (see the module's docstring). Raises :class:`TooLargeForOnePart`
    when one step alone is over a budget."""
    for key in sorted(graph.nodes, key=order.__getitem__):
        if sizes[key] > size_budget:
            raise TooLargeForOnePart(
                key, f"takes {sizes[key]} bytes of definition, over a part's {size_budget}"
            )
        if events[key] > event_budget:
            raise TooLargeForOnePart(
                key,
                f"could write {events[key]} history events (polling until its timeout), over a part's "
                f"{event_budget}: shorten its timeout",
            )

    def cost(keys: Sequence[str]) -> tuple[int, int]:
        return sum(sizes[k] for k in keys), sum(events[k] for k in keys)

    def fits(keys: Sequence[str]) -> bool:
        size, count = cost(keys)
        return size <= size_budget and count <= event_budget

    components = sorted(
        (sorted(c, key=order.__getitem__) for c in nx.weakly_connected_components(graph)),
        key=lambda c: order[c[0]],
    )
    packed: list[list[str]] = []  # parts of whole components, side by side
    sliced: list[list[list[str]]] = []  # components over the budget: their slices, in order
    for component in components:
        if not fits(component):
            sliced.append(_slices(graph, component, order, fits))
        elif packed and fits(packed[-1] + component):
            packed[-1].extend(component)
        else:
            packed.append(list(component))
    parts: list[Part] = []

    def new(keys: list[str]) -> Leaf:
        part = Part(len(parts) + 1, tuple(sorted(keys, key=order.__getitem__)))
        parts.append(part)
        return Leaf(part.name)

    branches: list[Tree] = [new(keys) for keys in packed]
    for slices in sliced:
        branches.append(Series(tuple(new(keys) for keys in slices)))
    tree = branches[0] if len(branches) == 1 else Fork(tuple(branches))
    steps_sliced = tuple(k for slices in sliced for keys in slices for k in keys)
    return Split(tuple(parts), tree, steps_sliced)


def _slices(graph: nx.DiGraph, component: list[str], order: Mapping[str, int], fits: Any) -> list[list[str]]:
    """Consecutive slices of a topological order of ``component`` (plan order among ties), each as
    large as fits."""
    ordered = list(nx.lexicographical_topological_sort(graph.subgraph(component), key=order.__getitem__))
    slices: list[list[str]] = [[]]
    for key in ordered:
        if slices[-1] and not fits([*slices[-1], key]):
            slices.append([])
        slices[-1].append(key)
    return slices


def reversed_tree(tree: Tree) -> Tree:
    """The order a drill's cleanup starts the parts in: slices last first (dependents first)."""
    if isinstance(tree, Series):
        return Series(tuple(reversed_tree(t) for t in reversed(tree.parts)))
    if isinstance(tree, Fork):
        return Fork(tuple(reversed_tree(t) for t in tree.parts))
    return tree


# --- a part's machine --------------------------------------------------------------------------------


def part_definition(
    part: Part,
    mode: Mode,
    graph: nx.DiGraph,
    infos: Mapping[str, StepInfo],
    translations: Mapping[str, Translation],
    *,
    plan_name: str,
    coordination: str,
    options: RunOptions,
    slots: Mapping[str, tuple[Semaphore, ...]],
    order: Mapping[str, int],
    rollback: bool = False,
    names: Names | None = None,
) -> dict[str, Any]:
    """The state machine of one part: its steps (input ``phase`` ``steps``) or a drill's cleanup of
    them, or a recovery's rollback (``cleanup``), from the run and the records in the input; the
    output is the part's own records, ``{"s": ...}`` or ``{"u": ...}``. ``names``: the registry
    shared by all parts, so that a state name shortened to 80 characters stays unique across them
    (the follower merges their states by name)."""
    top = Scope(names or Names())
    own = {infos[k].sid: k for k in part.keys}
    steps_out = top.add(
        "Records of the part", pass_state({"s": {sid: Path(f"$.s.{sid}") for sid in own}}, None)
    )
    steps = Encoder(infos, translations, graph, "s", step_block, coordination, options, slots)
    tree = decompose(graph.subgraph(part.keys), order)
    assert tree is not None
    steps_start = top.add(
        "Steps",
        pass_state({"run": Path("$.run"), "s": Path("$.s"), "w": {}}, steps.encode(tree, top, steps_out)),
    )
    rules: list[dict[str, Any]] = []
    if mode == "drill" or rollback:
        reverse = graph.reverse(copy=True)
        block = undo_block if mode == "drill" else rollback_block
        undos = Encoder(infos, translations, reverse, "u", block, coordination, options)
        cleanup_out = top.add(
            "Cleanup records of the part", pass_state({"u": {sid: Path(f"$.u.{sid}") for sid in own}}, None)
        )
        cleanup_tree = decompose(reverse.subgraph(part.keys), order)
        assert cleanup_tree is not None
        cleanup_start = top.add(
            "Cleanup",
            pass_state(
                {"run": Path("$.run"), "s": Path("$.s"), "u": {}, "w": {}},
                undos.encode(cleanup_tree, top, cleanup_out),
            ),
        )
        rules.append({"Variable": "$.phase", "StringEquals": "cleanup", "Next": cleanup_start})
    first = top.add("Phase", choice(rules, steps_start) if rules else {"Type": "Pass", "Next": steps_start})
    comment = (
        f"drplan {mode} of plan {plan_name}, {part.name} ({len(part.keys)} steps): started by the main "
        "state machine (startExecution.sync:2); see docs/stepfunctions.md#child-executions"
    )
    return machine(top, first, comment)


# --- the main machine's side ---------------------------------------------------------------------------


def encode_parts(
    split_: Split, tree: Tree, infos: Mapping[str, StepInfo], scope: Scope, then: str, phase: str
) -> str:
    """The main machine's states that start the parts of ``tree`` (``phase`` ``steps`` or
    ``cleanup``) and merge the records each hands back into ``$.s`` (or ``$.u``)."""
    rec = "s" if phase == "steps" else "u"

    def keep(merged: str) -> dict[str, Any]:
        if rec == "s":
            return {"run": Path("$.run"), "s": Path(merged)}
        return {"run": Path("$.run"), "s": Path("$.s"), "u": Path(merged)}

    def own(t: Tree) -> list[str]:
        if isinstance(t, Leaf):
            return [infos[k].sid for k in split_.part(t.key).keys]
        assert isinstance(t, (Series, Fork))
        return [sid for p in t.parts for sid in own(p)]

    def encode(t: Tree, sc: Scope, nxt: str) -> str:
        if isinstance(t, Leaf):
            part = split_.part(t.key)
            merge = sc.add(
                f"{part.name} {phase} records",
                pass_state(keep(merge_expression(f"$.{rec}", ["$.w.part.v"])), nxt),
            )
            task = {
                "Type": "Task",
                "Resource": START_CHILD,
                "Parameters": {
                    "StateMachineArn.$": f"States.Format('{{}}-{part.name}', $$.StateMachine.Id)",
                    "Name.$": f"States.Format('{{}}-{part.name}-{phase}', $.run.id)",
                    "Input": {
                        "phase": phase,
                        "run.$": "$.run",
                        "s.$": "$.s",
                        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
                    },
                },
                "ResultSelector": {"v.$": f"$.Output.{rec}"},
                "ResultPath": "$.w.part",
                # Starting the part again is safe: the same name and input is the same execution.
                "Retry": [{"ErrorEquals": PART_TRANSIENT, **PART_RETRY}],
                "Next": merge,
            }
            return sc.add(f"{part.name} {phase}", role(task, "part", f"{part.name} {phase}"))
        if isinstance(t, Series):
            start = nxt
            for p in reversed(t.parts):
                start = encode(p, sc, start)
            return start
        assert isinstance(t, Fork)
        branches = []
        for p in t.parts:
            branch = sc.branch()
            out = branch.add(
                f"{_first(p)} {phase} hand back",
                pass_state({sid: Path(f"$.{rec}.{sid}") for sid in own(p)}, None),
            )
            branches.append(machine(branch, encode(p, branch, out)))
        merged = merge_expression(f"$.{rec}", [f"$.w.par[{i}]" for i in range(len(branches))])
        join = sc.add(f"{_first(t)} {phase} join", pass_state(keep(merged), nxt))
        return sc.add(
            f"{_first(t)} {phase} side by side",
            {"Type": "Parallel", "Branches": branches, "ResultPath": "$.w.par", "Next": join},
        )

    return encode(tree, scope, then)


def _first(tree: Tree) -> str:
    while not isinstance(tree, Leaf):
        assert isinstance(tree, (Series, Fork))
        tree = tree.parts[0]
    return tree.key
