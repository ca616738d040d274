"""The recovery graph as Amazon States Language, with the local scheduler's semantics.

**When a step starts.** The local scheduler starts a step the moment all its predecessors are done.
ASL's only join is the end of a Parallel state (it waits for all its branches), so the graph is
decomposed into series and parallel parts, recursively (:func:`decompose`): a set of steps splits
*in parallel* where no step of one part is ordered with any step of another (the connected
components of the comparability graph), and *in series* where every step of one part precedes
every step of the next (the components of the incomparability graph). For a series-parallel
graph this nests Parallel states and sequences with exactly the graph's order: a Parallel ends
when its last branch ends, which is exactly when every step after it may start. A part that splits
neither way contains an "N" (a->c, b->c, b->d: d must not wait for a, c must wait for both) that
no nesting of Parallel states can express. Such a part runs as one Parallel with a branch per
step; each branch waits for its predecessors *inside the part* by polling their coordination
records (a DynamoDB item per step and execution, written when the step ends) and publishes its
own record when it ends. Predecessors outside the part are guaranteed by the structure around it.
The cost is the polling (transitions, and up to one interval of delay per awaited edge), paid only
inside such parts: docs/stepfunctions.md measures it.

**A step** (:meth:`Encoder.step`) is: skipped when a predecessor did not succeed (its record says
so, with the failed step as the root cause); otherwise its attempts race its timeout inside one
Parallel (a Wait that fails the race when the timeout is reached, covering every attempt and
retry delay, like the local deadline); each attempt runs the action's fragment, and a failed
attempt is undone before the next one, after the local engine's growing, jittered delay. The
outcome is the step's record: ``succeeded`` with its outputs, ``failed`` with the error, or
``skipped`` with the reason. A failure never fails the execution's structure: independent
branches carry on, dependents are skipped, exactly like the local runner.

**Limits** (``run.parallelism``, an action's concurrency limit) are enforced only where the graph
could exceed them (:func:`width`): a step then takes a slot of each :class:`Semaphore` (a counter in
the coordination table, a conditional update) before its attempts start, polling while every slot
is taken, and gives the slots back once its record is written, on every path (the race's Catch takes
every error to the record). A freed slot goes to the first step that polls, not by critical-path
priority as in the local scheduler.

**Drills** then clean up whatever happened (also after an unexpected error inside the run): the
undo of every step that may have created something, dependents first (the same decomposition of
the reversed graph), within the local engine's overall undo deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import networkx as nx

from drplan.durations import humanize
from drplan.engine.records import RunOptions
from drplan.stepfunctions.builder import Path, Scope, State, machine, merge_expression, role
from drplan.stepfunctions.tasks import (
    StepInfo,
    Translation,
    choice,
    fail,
    pass_state,
    poll_waits,
    task,
)

DONE = "drplan.Done"
TIMEOUT = "drplan.Timeout"
#: What Step Functions calls a conditional update refused: every slot of the semaphore is taken.
SLOTS_TAKEN = "DynamoDb.ConditionalCheckFailedException"


# --- decomposition --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    key: str


@dataclass(frozen=True)
class Series:
    parts: tuple[Tree, ...]


@dataclass(frozen=True)
class Fork:
    """Parts that run side by side (a Parallel state); none is ordered with another."""

    parts: tuple[Tree, ...]


@dataclass(frozen=True)
class General:
    """Steps no nesting expresses exactly: one branch each, waiting through coordination records."""

    keys: tuple[str, ...]


Tree = Leaf | Series | Fork | General


def decompose(graph: nx.DiGraph, order: Mapping[str, int]) -> Tree | None:
    """The series-parallel decomposition of ``graph`` (None when it is empty). ``order`` (plan order)
    makes the result deterministic."""
    if graph.number_of_nodes() == 0:
        return None
    reach = {key: nx.descendants(graph, key) for key in graph.nodes}

    def comparable(a: str, b: str) -> bool:
        return b in reach[a] or a in reach[b]

    def split(keys: list[str]) -> Tree:
        if len(keys) == 1:
            return Leaf(keys[0])
        apart = _components(keys, comparable)
        if len(apart) > 1:
            return Fork(tuple(split(part) for part in apart))
        chained = _components(keys, lambda a, b: not comparable(a, b))
        if len(chained) > 1:
            # Each part precedes the next entirely: sort by how many of these steps come before.
            chained.sort(key=lambda part: sum(1 for k in keys if part[0] in reach[k]))
            return Series(tuple(split(part) for part in chained))
        return General(tuple(keys))

    return split(sorted(graph.nodes, key=order.__getitem__))


def _components(keys: list[str], linked: Callable[[str, str], bool]) -> list[list[str]]:
    """Connected components of the graph on ``keys`` whose edges are the pairs ``linked``, each in
    the order of ``keys``, ordered by their first member."""
    parent = {k: k for k in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if linked(a, b):
                ra, rb = root(a), root(b)
                if ra != rb:
                    parent[rb] = ra
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(root(k), []).append(k)
    return list(groups.values())


def tree_keys(tree: Tree) -> list[str]:
    if isinstance(tree, Leaf):
        return [tree.key]
    if isinstance(tree, General):
        return list(tree.keys)
    return [k for part in tree.parts for k in tree_keys(part)]


def general_parts(tree: Tree | None) -> list[General]:
    if tree is None or isinstance(tree, Leaf):
        return []
    if isinstance(tree, General):
        return [tree]
    return [g for part in tree.parts for g in general_parts(part)]


# --- concurrency limits --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Semaphore:
    """A limit on how many steps run at once, enforced inside the state machine: ``run.parallelism``
    (``name`` ``run``) or an action's concurrency limit (``name`` the action). A counter item in the
    coordination table counts the slots taken; a step takes one with a conditional update before its
    attempts start and gives it back once its record is written. ``waits`` are the polling intervals
    of a step that found every slot taken (:func:`~drplan.stepfunctions.tasks.poll_waits`).

    Which waiting step gets a freed slot is the local scheduler's choice (the highest priority):
    a step that finds every slot taken says it is waiting (an attribute of the counter item, its
    name in ``waiter``), and a step takes a slot only while none of the steps of higher priority
    that could be waiting at the same time (``ahead``: their attribute names) says so."""

    name: str
    limit: int
    waits: tuple[int, ...]
    #: Step -> the counter item's attribute that says it is waiting (``w`` and its index).
    waiter: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    #: Step -> the attributes of the steps it yields to (of higher priority, not ordered with it).
    ahead: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    def yielded_to(self, key: str) -> bool:
        """Whether some step yields to ``key`` (then ``key`` says when it is waiting)."""
        mine = self.waiter.get(key)
        return mine is not None and any(mine in names for names in self.ahead.values())


def width(graph: nx.DiGraph, among: Sequence[str] | None = None) -> int:
    """The most steps of ``among`` (default: all) that can run at the same time, whatever their
    durations: the largest set of them no two of which are ordered (a maximum antichain of the
    graph's order; Dilworth: its size is the number of steps less a maximum matching of the
    comparability pairs)."""
    keys = list(graph.nodes) if among is None else [k for k in among if k in graph]
    if len(keys) < 2:
        return len(keys)
    wanted = set(keys)
    bipartite = nx.Graph()
    left = [("a", k) for k in keys]
    bipartite.add_nodes_from(left)
    bipartite.add_nodes_from(("b", k) for k in keys)
    for key in keys:
        for later in nx.descendants(graph, key) & wanted:
            bipartite.add_edge(("a", key), ("b", later))
    matching = nx.bipartite.hopcroft_karp_matching(bipartite, top_nodes=left)
    return len(keys) - len(matching) // 2


# --- encoding ---------------------------------------------------------------------------------------


#: How a Block is built: (encoder, key, scope, then) -> first state.
BlockBuilder = Callable[["Encoder", str, Scope, str], str]


@dataclass
class Encoder:
    """Turns a decomposition into states. ``records`` is where each block writes its record:
    ``s`` for the steps, ``u`` for their undo in a drill's cleanup."""

    infos: Mapping[str, StepInfo]
    translations: Mapping[str, Translation]
    graph: nx.DiGraph  # the graph the blocks are ordered by (reversed for cleanup)
    records: str
    block: BlockBuilder
    coordination: str | None = None  # DynamoDB table for General parts and semaphores
    options: RunOptions = field(default_factory=RunOptions)
    #: The semaphores each step takes before it starts, in the order it takes them (an action's
    #: limit before ``run.parallelism``: every step takes them in the same order, so no two steps
    #: can each hold what the other waits for). Steps not here start without one.
    slots: Mapping[str, tuple[Semaphore, ...]] = field(default_factory=dict)

    def encode(self, tree: Tree, scope: Scope, then: str) -> str:
        if isinstance(tree, Leaf):
            return self.block(self, tree.key, scope, then)
        if isinstance(tree, Series):
            start = then
            for part in reversed(tree.parts):
                start = self.encode(part, scope, start)
            return start
        if isinstance(tree, Fork):
            return self.fork([(part, self._branch(part)) for part in tree.parts], scope, then, "in parallel")
        return self.general(tree, scope, then)

    def _branch(self, part: Tree) -> Callable[[Scope, str], str]:
        return lambda branch, then: self.encode(part, branch, then)

    def fork(
        self,
        parts: Sequence[tuple[Tree, Callable[[Scope, str], str]]],
        scope: Scope,
        then: str,
        what: str,
    ) -> str:
        """A Parallel state whose branches each end by handing back only the records they wrote
        (so the result stays small), merged into ``$.<records>`` afterwards."""
        rec = self.records
        branches = []
        for part, build in parts:
            branch = scope.branch()
            keys = tree_keys(part)
            out = branch.add(
                f"{self._first(keys)} hand back ({rec})",
                pass_state({self.infos[k].sid: Path(f"$.{rec}.{self.infos[k].sid}") for k in keys}, None),
            )
            branches.append(machine(branch, build(branch, out)))
        merged = merge_expression(f"$.{rec}", [f"$.w.par[{i}]" for i in range(len(branches))])
        merge = scope.add(
            f"{self._first([k for p, _ in parts for k in tree_keys(p)])} join ({rec})",
            pass_state({"run": Path("$.run"), "s": Path("$.s"), rec: Path(merged)}, then)
            if rec != "s"
            else pass_state({"run": Path("$.run"), "s": Path(merged)}, then),
        )
        return scope.add(
            f"{self._first([k for p, _ in parts for k in tree_keys(p)])} fork {what} ({rec})",
            {"Type": "Parallel", "Branches": branches, "ResultPath": "$.w.par", "Next": merge},
        )

    def _first(self, keys: Sequence[str]) -> str:
        return keys[0] if len(keys) == 1 else f"{keys[0]} +{len(keys) - 1}"

    def general(self, part: General, scope: Scope, then: str) -> str:
        """One branch per step; in-part predecessors are awaited through coordination records."""
        if self.coordination is None:
            raise AssertionError("a General part needs the coordination table")
        inside = set(part.keys)
        builds: list[tuple[Tree, Callable[[Scope, str], str]]] = []
        for key in part.keys:
            preds = [p for p in self.graph.predecessors(key) if p in inside]
            builds.append((Leaf(key), self._coordinated(key, sorted(preds, key=part.keys.index))))
        return self.fork(builds, scope, then, "(coordinated)")

    def _coordinated(self, key: str, preds: list[str]) -> Callable[[Scope, str], str]:
        def build(branch: Scope, then: str) -> str:
            publish = branch.add(f"{key} publish ({self.records})", self.publish(key, then))
            start = self.block(self, key, branch, publish)
            for pred in reversed(preds):
                start = self.await_record(key, pred, branch, start)
            return start

        return build

    def coordination_key(self, key: str) -> Path:
        sid = self.infos[key].sid
        return Path(f"States.Format('{{}}#{{}}#{self.records}#{sid}', $.run.id, $.run.execution)")

    def publish(self, key: str, then: str) -> State:
        sid = self.infos[key].sid
        return task(
            "dynamodb",
            "putItem",
            {
                "TableName": self.coordination,
                "Item": {
                    "id": {"S": self.coordination_key(key)},
                    "status": {"S": Path(f"$.{self.records}.{sid}.status")},
                    "record": {"S": Path(f"States.JsonToString($.{self.records}.{sid})")},
                },
            },
            then,
        )

    def await_record(self, key: str, pred: str, scope: Scope, then: str) -> str:
        """Poll ``pred``'s coordination record until it is there, then copy it into ``$.<records>``.
        The interval grows like the local job polling for ``pred`` (a long restore is looked at
        less often), so the delay after ``pred`` ends is at most one interval."""
        info, sid = self.infos[pred], self.infos[pred].sid
        slot = f"c_{sid}"
        waits = poll_waits(info.options, info.estimate, info.timeout)
        get = scope.reserve(f"{key} wait for {pred} ({self.records})")
        there = scope.reserve(f"{key} {pred} ended? ({self.records})")
        wait = scope.reserve(f"{key} wait more for {pred} ({self.records})")
        wait_same = scope.reserve(f"{key} wait as long for {pred} ({self.records})")
        bump = scope.reserve(f"{key} next interval for {pred} ({self.records})")
        store = scope.add(
            f"{key} keep {pred} ({self.records})",
            {
                "Type": "Pass",
                "InputPath": f"$.w.{slot}.got.v",
                "ResultPath": f"$.{self.records}.{sid}",
                "Next": then,
            },
        )
        copy = scope.add(
            f"{key} read {pred} ({self.records})",
            pass_state(
                {"v": Path("States.StringToJson($.w.coord.Item.record.S)")},
                store,
                result=f"$.w.{slot}.got",
            ),
        )
        scope.put(
            get,
            task(
                "dynamodb",
                "getItem",
                {
                    "TableName": self.coordination,
                    "Key": {"id": {"S": self.coordination_key(pred)}},
                    "ConsistentRead": True,
                },
                there,
                result="$.w.coord",
            ),
        )
        scope.put(
            there,
            choice(
                [
                    {"Variable": "$.w.coord.Item", "IsPresent": True, "Next": copy},
                    {
                        "Variable": f"$.w.{slot}.i",
                        "NumericGreaterThanEquals": len(waits) - 1,
                        "Next": wait_same,
                    },
                ],
                wait,
            ),
        )
        scope.put(wait, {"Type": "Wait", "SecondsPath": f"$.w.{slot}.d", "Next": bump})
        scope.put(wait_same, {"Type": "Wait", "SecondsPath": f"$.w.{slot}.d", "Next": get})
        scope.put(
            bump,
            pass_state(
                {
                    "i": Path(f"States.MathAdd($.w.{slot}.i, 1)"),
                    "d": Path(f"States.ArrayGetItem($.w.{slot}.seq, States.MathAdd($.w.{slot}.i, 1))"),
                    "seq": Path(f"$.w.{slot}.seq"),
                },
                get,
                result=f"$.w.{slot}",
            ),
        )
        return scope.add(
            f"{key} await {pred} ({self.records})",
            pass_state({"i": 0, "d": waits[0], "seq": waits}, get, result=f"$.w.{slot}"),
        )

    # --- semaphores ---------------------------------------------------------------------------------

    def counter_key(self, sem: Semaphore) -> Path:
        """The counter item of ``sem`` in this execution (each execution counts its own slots)."""
        return Path(f"States.Format('{{}}#{{}}#slots#{sem.name}', $.run.id, $.run.execution)")

    def _count(
        self, sem: Semaphore, delta: int, then: str, limit: int | None = None, key: str | None = None
    ) -> State:
        """An update adding ``delta`` to ``sem``'s counter; with ``limit``, only while it is below
        and none of the steps ``key`` yields to is waiting (it is no longer waiting itself)."""
        values = {":d": {"N": str(delta)}}
        condition = {}
        update = "ADD #n :d"
        if limit is not None:
            values[":limit"] = {"N": str(limit)}
            free = "attribute_not_exists(#n) OR #n < :limit"
            rivals = "".join(f" AND attribute_not_exists({name})" for name in sem.ahead.get(key or "", ()))
            condition["ConditionExpression"] = f"({free}){rivals}" if rivals else free
            if key is not None and sem.yielded_to(key):
                update += f" REMOVE {sem.waiter[key]}"
        return task(
            "dynamodb",
            "updateItem",
            {
                "TableName": self.coordination,
                "Key": {"id": {"S": self.counter_key(sem)}},
                "UpdateExpression": update,
                **condition,
                "ExpressionAttributeNames": {"#n": "n"},
                "ExpressionAttributeValues": values,
            },
            then,
        )

    def _waiting(self, sem: Semaphore, key: str, waiting: bool, then: str, failed: str) -> State:
        """Say that ``key`` is waiting for a slot of ``sem`` (or no longer is); ``failed`` when the
        counter item cannot be written."""
        name = sem.waiter[key]
        state = task(
            "dynamodb",
            "updateItem",
            {
                "TableName": self.coordination,
                "Key": {"id": {"S": self.counter_key(sem)}},
                "UpdateExpression": f"SET {name} = :t" if waiting else f"REMOVE {name}",
                **({"ExpressionAttributeValues": {":t": {"BOOL": True}}} if waiting else {}),
            },
            then,
        )
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.w.qerr", "Next": failed}]
        return state

    def acquire(self, info: StepInfo, sem: Semaphore, scope: Scope, then: str, release: str) -> str:
        """Take a slot of ``sem``: add one to its counter if it is below the limit (a conditional
        update, atomic in DynamoDB), else wait (the growing intervals of ``sem.waits``) and try again.
        Any other error fails the step (its record says why) and gives back the slots it holds
        (``release``)."""
        if self.coordination is None:
            raise AssertionError("a semaphore needs the coordination table")
        key = info.key
        slot = f"q_{_ident(sem.name)}"
        what = "a slot" if sem.name == "run" else f"a slot ({sem.name})"
        take = scope.reserve(f"{key} take {what}")
        full = scope.reserve(f"{key} longest wait for {what}?")
        wait = scope.reserve(f"{key} wait for {what}")
        wait_same = scope.reserve(f"{key} wait as long for {what}")
        unavailable = scope.reserve(f"{key} failed to take {what}")
        scope.put(
            unavailable,
            role(
                pass_state(
                    {
                        "status": "failed",
                        "error": Path("$.w.qerr.Error"),
                        "cause": Path("$.w.qerr.Cause"),
                        "root": key,
                        "out": {},
                    },
                    release,
                    result=f"$.s.{info.sid}",
                ),
                "record",
                key,
            ),
        )
        yielded_to = sem.yielded_to(key)
        if yielded_to:
            # No longer waiting (best effort: the counter item could not be written anyway), so
            # that the steps yielding to this one do not wait for it forever.
            unavailable = scope.add(
                f"{key} stop waiting for {what}", self._waiting(sem, key, False, unavailable, unavailable)
            )
        bump = scope.add(
            f"{key} next interval for {what}",
            pass_state(
                {
                    "i": Path(f"States.MathAdd($.w.{slot}.i, 1)"),
                    "d": Path(f"States.ArrayGetItem($.w.{slot}.seq, States.MathAdd($.w.{slot}.i, 1))"),
                    "seq": Path(f"$.w.{slot}.seq"),
                },
                take,
                result=f"$.w.{slot}",
            ),
        )
        state = self._count(sem, 1, then, limit=sem.limit, key=key)
        # Every slot taken, or a step of higher priority waiting: say this one waits too (when some
        # step yields to it), then wait.
        busy = (
            scope.add(f"{key} waiting for {what}", self._waiting(sem, key, True, full, unavailable))
            if yielded_to
            else full
        )
        state["Catch"] = [
            {"ErrorEquals": [SLOTS_TAKEN], "ResultPath": "$.w.qfull", "Next": busy},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.w.qerr", "Next": unavailable},
        ]
        scope.put(take, state)
        scope.put(
            full,
            choice(
                [
                    {
                        "Variable": f"$.w.{slot}.i",
                        "NumericGreaterThanEquals": len(sem.waits) - 1,
                        "Next": wait_same,
                    }
                ],
                wait,
            ),
        )
        scope.put(wait, {"Type": "Wait", "SecondsPath": f"$.w.{slot}.d", "Next": bump})
        scope.put(wait_same, {"Type": "Wait", "SecondsPath": f"$.w.{slot}.d", "Next": take})
        return scope.add(
            f"{key} ask for {what}",
            pass_state({"i": 0, "d": sem.waits[0], "seq": list(sem.waits)}, take, result=f"$.w.{slot}"),
        )

    def release(self, info: StepInfo, sem: Semaphore, scope: Scope, then: str) -> str:
        """Give the slot back (subtract one from the counter). Reached from every way the step ends
        once it holds the slot; not caught: a counter that cannot be written fails the whole run
        (its branches stop) rather than leave a slot taken that the other steps would wait for."""
        what = "the slot" if sem.name == "run" else f"the slot ({sem.name})"
        return scope.add(f"{info.key} give back {what}", self._count(sem, -1, then))


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


#: What a fragment builder returns: its first state (or None: nothing to build, for an undo).
_Start = TypeVar("_Start", str, str | None)

# --- the blocks -------------------------------------------------------------------------------------


def fragment(info: StepInfo, scope: Scope, part: str, build: Callable[[], _Start]) -> _Start:
    """``build`` adds a translation's states for the step to ``scope`` (its work, its undo, what it
    remembers) and returns the first; for a step whose AWS calls go elsewhere (its own ``region``
    or ``role_arn``), the ``aws-sdk`` Tasks among the states it added are rewritten for that
    (:func:`drplan.stepfunctions.calls.relocate`). Here, not in each translation: every
    translation's calls are relocated the same way."""
    before = set(scope.states)
    start = build()
    if info.route is not None:
        from drplan.stepfunctions.calls import relocate

        relocate(
            scope, [n for n in scope.states if n not in before], info.route, info.label(f"call ({part})")
        )
    return start


def step_block(enc: Encoder, key: str, scope: Scope, then: str) -> str:
    """One step of the run: skip, or attempts racing the timeout; the outcome in ``$.s.<sid>``."""
    info = enc.infos[key]
    sid = info.sid
    # With semaphores: take each slot, run, write the record, give the slots back (last taken
    # first). ``given_back[i]`` gives back the first ``i`` slots: where a failure to take slot i goes.
    semaphores = enc.slots.get(key, ())
    given_back = [then]
    for sem in semaphores:
        given_back.append(enc.release(info, sem, scope, given_back[-1]))
    race = _race(enc, info, scope, given_back[-1])
    # What the undo puts back, read once before the first attempt (outside the attempts, so a
    # failed attempt's undo has it too).
    translation = enc.translations[info.step.uses]
    if translation.remembers(info):
        race = fragment(info, scope, "remember", lambda: translation.remember(info, scope, race))
    for i in reversed(range(len(semaphores))):
        race = enc.acquire(info, semaphores[i], scope, race, given_back[i])
    preds = sorted(enc.graph.predecessors(key), key=lambda k: list(enc.infos).index(k))
    if not preds:
        return race
    rules = []
    for pred in preds:
        psid = enc.infos[pred].sid
        skip = scope.add(
            f"{key} skipped ({pred})",
            role(
                pass_state(
                    {
                        "status": "skipped",
                        "root": Path(f"$.s.{psid}.root"),
                        "reason": Path(f"States.Format('`{{}}` did not succeed', $.s.{psid}.root)"),
                        "out": {},
                    },
                    then,
                    result=f"$.s.{sid}",
                ),
                "record",
                key,
            ),
        )
        rules.append({"Not": {"Variable": f"$.s.{psid}.status", "StringEquals": "succeeded"}, "Next": skip})
    return scope.add(f"{key} predecessors succeeded?", choice(rules, race))


def _race(enc: Encoder, info: StepInfo, scope: Scope, then: str) -> str:
    """The step's attempts against its timeout. Both branches end in a Fail, so the Parallel always
    ends by a Catch: ``drplan.Done`` carries the outputs (as JSON in the cause), anything else is
    the step's failure. The timer branch is stopped as soon as the work branch ends."""
    key, sid = info.key, info.sid
    translation = enc.translations[info.step.uses]
    # What the undo puts back (Translation.remember), kept in the record for a cleanup or rollback.
    kept = {"prev": Path("$.w.prev")} if translation.remembers(info) else {}
    ok = scope.add(
        f"{key} succeeded",
        role(
            pass_state(
                {
                    "status": "succeeded",
                    "out": Path("States.StringToJson($.w.race.Cause)"),
                    "root": key,
                    **kept,
                },
                then,
                result=f"$.s.{sid}",
            ),
            "record",
            key,
        ),
    )
    failed = scope.add(
        f"{key} failed",
        role(
            pass_state(
                {
                    "status": "failed",
                    "error": Path("$.w.race.Error"),
                    "cause": Path("$.w.race.Cause"),
                    "root": key,
                    "out": {},
                    **kept,
                },
                then,
                result=f"$.s.{sid}",
            ),
            "record",
            key,
        ),
    )
    work = scope.branch()
    work_start = _attempts(enc, info, translation, work)
    timer = scope.branch()
    expired = timer.add(
        f"{key} timed out",
        fail(f"timed out after {humanize(info.timeout)}", TIMEOUT),
    )
    seconds = max(1, round(info.timeout)) + translation.timer_grace
    timer_start = timer.add(f"{key} timeout", {"Type": "Wait", "Seconds": seconds, "Next": expired})
    return scope.add(
        f"{key} run",
        {
            "Comment": f"drplan:step {key}",
            "Type": "Parallel",
            "Branches": [machine(work, work_start), machine(timer, timer_start)],
            "ResultSelector": {"Error": "drplan.Internal", "Cause": "the step ended without an outcome"},
            "ResultPath": "$.w.race",
            "Catch": [
                {"ErrorEquals": [DONE], "ResultPath": "$.w.race", "Next": ok},
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.w.race", "Next": failed},
            ],
            "Next": failed,
        },
    )


def fresh(scope: Scope, label: str, then: str, *, prev: bool = False) -> str:
    """A branch's first state: the run and the records, and empty scratch space (a Parallel's
    ``Parameters`` would do it, but cfn-lint's schema does not accept them on Parallel states).
    ``prev``: the scratch space keeps what the undo puts back (``Translation.remember``)."""
    work: dict[str, Any] = {"prev": Path("$.w.prev")} if prev else {}
    return scope.add(label, pass_state({"run": Path("$.run"), "s": Path("$.s"), "w": work}, then))


def _attempts(enc: Encoder, info: StepInfo, translation: Translation, scope: Scope) -> str:
    """``StepDriver._drive``: up to 1 + ``retries`` attempts; before each retry the failed attempt
    is undone, then a delay of ``retry_delay`` doubling each time, with the same jitter (uniform
    between half and all of it)."""
    key = info.key
    retries = info.step.retries
    succeed = scope.add(
        f"{key} done", {"Type": "Fail", "Error": DONE, "CausePath": "States.JsonToString($.w.res.out)"}
    )
    give_up = scope.add(
        f"{key} give up", {"Type": "Fail", "ErrorPath": "$.w.err.Error", "CausePath": "$.w.err.Cause"}
    )
    attempt = scope.reserve(f"{key} attempt")
    retry = scope.reserve(f"{key} retry?") if retries else give_up
    body = scope.branch()
    scope.put(
        attempt,
        {
            "Comment": f"drplan:attempt {key}",
            "Type": "Parallel",
            "Branches": [
                machine(
                    body,
                    fresh(
                        body,
                        f"{key} attempt starts",
                        fragment(info, body, "work", lambda: translation.work(info, body)),
                    ),
                )
            ],
            "ResultSelector": {"out.$": "$[0]"},
            "ResultPath": "$.w.res",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.w.err", "Next": retry}],
            "Next": succeed,
        },
    )
    if not retries:
        return attempt
    delay = max(2, round(enc.options.retry_delay))  # MathRandom needs half < delay
    first = scope.add(
        f"{key} first attempt",
        pass_state({"n": 1, "delay": delay, "half": max(1, delay // 2)}, attempt, result="$.w.a"),
    )
    bump = scope.add(
        f"{key} next attempt",
        pass_state(
            {
                "n": Path("States.MathAdd($.w.a.n, 1)"),
                "delay": Path("States.MathAdd($.w.a.delay, $.w.a.delay)"),
                "half": Path("States.MathAdd($.w.a.half, $.w.a.half)"),
            },
            attempt,
            result="$.w.a",
        ),
    )
    wait = scope.add(f"{key} retry delay", {"Type": "Wait", "SecondsPath": "$.w.a.wait", "Next": bump})
    jitter = scope.add(
        f"{key} jitter",
        pass_state({"wait": Path("States.MathRandom($.w.a.half, $.w.a.delay)")}, wait, result="$.w.a.j"),
    )
    scope.states[wait]["SecondsPath"] = "$.w.a.j.wait"
    undo_first = jitter
    undo = _undo_branch(enc, info, translation, scope, jitter, "before retrying")
    if undo is not None:
        undo_first = undo
    scope.put(
        retry,
        choice([{"Variable": "$.w.a.n", "NumericLessThanEquals": retries, "Next": undo_first}], give_up),
    )
    return first


def _undo_branch(
    enc: Encoder,
    info: StepInfo,
    translation: Translation,
    scope: Scope,
    then: str,
    why: str,
    comment: str | None = None,
) -> str | None:
    """The action's undo in its own Parallel (its states cannot reach the caller's), its outcome at
    ``$.w.undo``: ``{"status": "removed"}``, or the error."""
    body = scope.branch()
    start = fragment(info, body, "undo", lambda: translation.undo(info, body))
    if start is None:
        return None
    start = fresh(body, f"{info.key} undo starts ({why})", start, prev=translation.remembers(info))
    failed = scope.add(
        f"{info.key} undo failed ({why})",
        pass_state(
            {"status": "failed", "error": Path("$.w.undo.Error"), "cause": Path("$.w.undo.Cause")},
            then,
            result="$.w.undo",
        ),
    )
    state: State = {
        "Type": "Parallel",
        "Branches": [machine(body, start)],
        "ResultSelector": {"status": "removed"},
        "ResultPath": "$.w.undo",
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.w.undo", "Next": failed}],
        "Next": then,
    }
    return scope.add(f"{info.key} undo ({why})", {"Comment": comment, **state} if comment else state)


def undo_block(enc: Encoder, key: str, scope: Scope, then: str) -> str:
    """A drill's cleanup of one step: undone unless it never started (skipped); a step whose record
    is missing (the run ended by an unexpected error) is undone too, like the local cleanup of a
    step that journaled an intent. The outcome in ``$.u.<sid>``."""
    return _undo_one(enc, key, scope, then, rollback=False)


def rollback_block(enc: Encoder, key: str, scope: Scope, then: str) -> str:
    """A recovery's rollback of one step (``--rollback-on-failure``): undone when it succeeded, as
    the local ``Undoer.rollback`` undoes completed steps; a step whose record is missing (the run
    ended by an unexpected error, its records lost) is undone too, since it may have completed."""
    return _undo_one(enc, key, scope, then, rollback=True)


def _undo_one(enc: Encoder, key: str, scope: Scope, then: str, *, rollback: bool) -> str:
    info = enc.infos[key]
    sid = info.sid
    translation = enc.translations[info.step.uses]
    if translation.undo(info, scope.branch()) is None:
        return scope.add(
            f"{key} nothing to clean up",
            role(pass_state({"status": "nothing to undo"}, then, result=f"$.u.{sid}"), "undone", key),
        )
    why = "rollback" if rollback else "cleanup"
    record = scope.add(
        f"{key} {why} outcome",
        role(
            {"Type": "Pass", "InputPath": "$.w.undo", "ResultPath": f"$.u.{sid}", "Next": then},
            "undone",
            key,
        ),
    )
    undo = _undo_branch(enc, info, translation, scope, record, why, f"drplan:undo {key}")
    assert undo is not None
    if translation.remembers(info):
        # The value to put back is in the step's record; a lost record leaves it unknown (the
        # translation's undo then says so rather than guess).
        recall = scope.add(
            f"{key} what to put back",
            {"Type": "Pass", "InputPath": f"$.s.{sid}.prev", "ResultPath": "$.w.prev", "Next": undo},
        )
        unknown = scope.add(
            f"{key} nothing remembered", pass_state({"unknown": True}, undo, result="$.w.prev")
        )
        undo = scope.add(
            f"{key} remembered?",
            choice([{"Variable": f"$.s.{sid}.prev", "IsPresent": True, "Next": recall}], unknown),
        )
    # Left alone: in a rollback, a step that did not succeed; in a cleanup, one that never started.
    # A missing record (the run ended by an unexpected error) is undone either way.
    status: dict[str, Any] = {
        "Variable": f"$.s.{sid}.status",
        "StringEquals": "succeeded" if rollback else "skipped",
    }
    left = scope.add(
        f"{key} did not complete" if rollback else f"{key} never started",
        role(
            pass_state(
                {"status": "nothing to undo" if rollback else "not started"}, then, result=f"$.u.{sid}"
            ),
            "undone",
            key,
        ),
    )
    rule = {"And": [{"Variable": f"$.s.{sid}", "IsPresent": True}, {"Not": status} if rollback else status]}
    return scope.add(
        f"{key} completed?" if rollback else f"{key} started?", choice([{**rule, "Next": left}], undo)
    )
