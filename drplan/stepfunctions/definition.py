"""The whole state machine: the run's id, the steps (:mod:`drplan.stepfunctions.asl`), a drill's
cleanup, and the verdict.

The execution's input may give ``run_id`` (8 lowercase hex digits: a drill's names end with it),
``created`` (the ``drplan:created`` tag, ``YYYY-MM-DDTHH:MM:SSZ``) and ``keep`` (true: a drill
leaves its copies, like ``drplan drill --keep``). Without them the run id comes from a fresh UUID
(its first 8 hex digits, the form of drplan's own run ids) and the creation time from the
execution's start.

The execution ends SUCCEEDED when every step succeeded (and a drill left nothing behind), with
the record of every step as its output; otherwise it FAILS (``drplan.StepFailed``,
``drplan.CleanupIncomplete`` or ``drplan.RunCrashed``) with the same records, as JSON, as the cause:
CloudWatch alarms on failed executions then cover recoveries and drills alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from drplan.engine.records import RunOptions
from drplan.model import Mode, Plan
from drplan.stepfunctions.asl import (
    DONE,
    Encoder,
    Semaphore,
    Tree,
    decompose,
    general_parts,
    rollback_block,
    step_block,
    undo_block,
)
from drplan.stepfunctions.builder import Names, Path, Scope, machine, role
from drplan.stepfunctions.parts import Split, encode_parts, reversed_tree
from drplan.stepfunctions.tasks import StepInfo, Translation, choice, pass_state


@dataclass(frozen=True)
class Shape:
    """How the graph was encoded: for the docs, the notes and the tests."""

    tree: Tree | None
    coordinated: tuple[str, ...]  # steps inside General parts (polling coordination records)
    cleanup_tree: Tree | None
    #: The limits enforced inside the machine (only those the graph could exceed), and the steps
    #: that take a slot of each.
    semaphores: tuple[tuple[Semaphore, tuple[str, ...]], ...] = ()
    #: The plan runs as child executions: its parts (None: one machine runs every step).
    split: Split | None = None


def semaphore_slots(
    semaphores: Sequence[tuple[Semaphore, Sequence[str]]],
) -> dict[str, tuple[Semaphore, ...]]:
    """The semaphores each step takes, in the order it takes them."""
    slots: dict[str, tuple[Semaphore, ...]] = {}
    for sem, members in semaphores:
        for key in members:
            slots[key] = (*slots.get(key, ()), sem)
    return slots


def build_definition(
    plan: Plan,
    mode: Mode,
    graph: nx.DiGraph,
    infos: Mapping[str, StepInfo],
    translations: Mapping[str, Translation],
    *,
    coordination: str,
    options: RunOptions | None = None,
    semaphores: Sequence[tuple[Semaphore, Sequence[str]]] = (),
    split: Split | None = None,
    rollback: bool = False,
) -> tuple[dict[str, Any], Shape]:
    """The definition, and how the graph was encoded. ``semaphores``: the limits to enforce, each
    with the steps that take a slot of it (in the order given, a step takes them in turn).
    ``split``: the plan runs as child executions (:mod:`drplan.stepfunctions.parts`); this is the
    main machine, which starts them. ``rollback``: a recovery that fails undoes its completed
    steps, dependents first (``drplan recover --rollback-on-failure``)."""
    undoes = mode == "drill" or rollback
    order = {key: i for i, key in enumerate(infos)}
    options = options or RunOptions()
    names = Names()
    top = Scope(names)
    reverse = graph.reverse(copy=True)
    if split is None:
        tree = decompose(graph, order)
        cleanup_tree = decompose(reverse, order) if undoes else None
        trees = [tree, cleanup_tree]
    else:  # each part's machine decomposes its own steps
        tree = cleanup_tree = None
        trees = [decompose(graph.subgraph(p.keys), order) for p in split.parts]
        if undoes:
            trees += [decompose(reverse.subgraph(p.keys), order) for p in split.parts]
    coordinated = tuple(k for t in trees for g in general_parts(t) for k in g.keys)
    table = coordination if coordinated or semaphores else None
    slots = semaphore_slots(semaphores)

    sids = [info.sid for info in infos.values()]
    summary = top.add(
        "Summary",
        pass_state({"run": Path("$.run"), "steps": Path("$.s"), "cleanup": Path("$.u")}, None),
    )
    # --- the verdict, last first -------------------------------------------------------------------
    ok = top.add("Succeeded", {"Type": "Succeed"})
    failed = top.add(
        "Failed",
        {"Type": "Fail", "Error": "drplan.StepFailed", "CausePath": "States.JsonToString($.verdict)"},
    )
    incomplete = (
        top.add(
            "Cleanup incomplete",
            {
                "Type": "Fail",
                "Error": "drplan.CleanupIncomplete",
                "CausePath": "States.JsonToString($.verdict)",
            },
        )
        if mode == "drill"
        else ""
    )
    crashed = top.add(
        "Crashed",
        {"Type": "Fail", "Error": "drplan.RunCrashed", "CausePath": "States.JsonToString($.verdict)"},
    )
    # Guarded like the step rules: a comparison on a path that is not there is an error in Step
    # Functions (moto lets it pass), and a kept drill or a recovery that did not roll back writes no
    # undo records.
    cleanup_failed_rules = [
        {
            "And": [
                {"Variable": f"$.u.{sid}", "IsPresent": True},
                {"Variable": f"$.u.{sid}.status", "StringEquals": "failed"},
            ]
        }
        for sid in sids
    ]
    step_failed_rules = [
        {
            "And": [
                {"Variable": f"$.s.{sid}", "IsPresent": True},
                {"Variable": f"$.s.{sid}.status", "StringEquals": "failed"},
            ]
        }
        for sid in sids
    ]
    rules: list[dict[str, Any]] = [{"Variable": "$.crash", "IsPresent": True, "Next": "VERDICT_CRASHED"}]
    if mode == "recover" and rollback:
        # What a rollback left behind matters more than the failure that started it.
        unrolled = top.add(
            "Rollback incomplete",
            {
                "Type": "Fail",
                "Error": "drplan.RollbackIncomplete",
                "CausePath": "States.JsonToString($.verdict)",
            },
        )
        rules.append(
            {
                "Or": [{"Variable": "$.u.incomplete", "IsPresent": True}, *cleanup_failed_rules],
                "Next": unrolled,
            }
        )
    if step_failed_rules:
        rules.append(
            {"Or": step_failed_rules, "Next": failed}
            if len(step_failed_rules) > 1
            else {**step_failed_rules[0], "Next": failed}
        )
    if mode == "drill" and cleanup_failed_rules:
        rules.append(
            {
                "Or": [{"Variable": "$.u.incomplete", "IsPresent": True}, *cleanup_failed_rules],
                "Next": incomplete,
            }
        )
    verdict_choice = top.reserve("Verdict")
    for rule in rules:
        if rule["Next"] == "VERDICT_CRASHED":
            rule["Next"] = crashed
    verdict_input = top.add(
        "Outcome",
        {
            "Type": "Pass",
            "Parameters": {"run.$": "$.run", "steps.$": "$.s", "cleanup.$": "$.u"},
            "ResultPath": "$.verdict",
            "Next": verdict_choice,
        },
    )
    top.put(verdict_choice, choice(rules, summary))
    # Succeeded is reached through Summary's output; keep the name for readers of the console.
    top.states[summary]["Next"] = ok
    top.states[summary].pop("End", None)

    # --- a drill's cleanup, or a recovery's rollback ---------------------------------------------------
    after_steps = verdict_input
    if (
        undoes
        and (cleanup_tree is not None or split is not None)
        and (mode == "recover" or plan.drill.cleanup != "never")
    ):
        after_steps = _cleanup(
            top, plan, mode, infos, translations, reverse, cleanup_tree, table, options, verdict_input, split
        )
    else:
        none = top.add("No cleanup", pass_state({}, verdict_input, result="$.u"))
        after_steps = none

    # --- the steps -----------------------------------------------------------------------------------
    after_main = top.add(
        "Steps ended",
        pass_state({"run": Path("$.run"), "s": Path("$.main.v.s")}, after_steps),
    )
    after_crash = top.add(
        "Steps crashed",
        pass_state({"run": Path("$.run"), "s": {}, "crash": Path("$.crash")}, after_steps),
    )
    body = top.branch()
    encoder = Encoder(infos, translations, graph, "s", step_block, table, options, slots)
    out = body.add("Records", pass_state({"s": Path("$.s")}, None))
    if split is not None:
        start = encode_parts(split, split.tree, infos, body, out, "steps")
    else:
        start = encoder.encode(tree, body, out) if tree is not None else out
    title = "Recovery" if mode == "recover" else "Drill"
    main = top.add(
        f"{title} of {plan.name}",
        {
            "Type": "Parallel",
            "Branches": [machine(body, start)],
            # "$[0]", not "$[0].s": moto's interpreter returns a list for a field after an index.
            "ResultSelector": {"v.$": "$[0]"},
            "ResultPath": "$.main",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.crash", "Next": after_crash}],
            "Next": after_main,
        },
    )

    # --- the run's id and creation time ---------------------------------------------------------------
    created_given = top.add(
        "Creation time given",
        {"Type": "Pass", "InputPath": "$.in.created", "ResultPath": "$.run.created", "Next": main},
    )
    created_now = top.add(
        "Creation time from the start",
        pass_state(
            {
                "v": Path(
                    "States.Format('{}Z', States.ArrayGetItem(States.StringSplit($$.Execution.StartTime, '.Z'), 0))"
                )
            },
            main,
            result="$.run.c",
        ),
    )
    # The derived time lands in $.run.c.v: move it where the tags read it.
    move = top.add(
        "Creation time",
        {"Type": "Pass", "InputPath": "$.run.c.v", "ResultPath": "$.run.created", "Next": main},
    )
    top.states[created_now]["Next"] = move
    created = top.add(
        "Creation time given?",
        choice([{"Variable": "$.in.created", "IsPresent": True, "Next": created_given}], created_now),
    )
    keep_given = top.add(
        "Keep given",
        {"Type": "Pass", "InputPath": "$.in.keep", "ResultPath": "$.run.keep", "Next": created},
    )
    keep = top.add(
        "Keep given?",
        choice([{"Variable": "$.in.keep", "IsPresent": True, "Next": keep_given}], created),
    )
    id_given = top.add(
        "Run id given",
        {"Type": "Pass", "InputPath": "$.in.run_id", "ResultPath": "$.run.id", "Next": keep},
    )
    id_choice = top.add(
        "Run id given?",
        choice([{"Variable": "$.in.run_id", "IsPresent": True, "Next": id_given}], keep),
    )
    first = top.add(
        "Run",
        pass_state(
            {
                "s": {},
                "w": {},
                "in": Path("$"),
                "run": {
                    "execution": Path("$$.Execution.Id"),
                    "id": Path("States.ArrayGetItem(States.StringSplit(States.UUID(), '-'), 0)"),
                    "mode": mode,
                    "plan": plan.name,
                    "keep": False,
                },
            },
            id_choice,
        ),
    )
    sha = f", plan sha256 {plan.sha256}" if plan.sha256 else ""
    comment = (
        f"drplan {mode} of plan {plan.name} ({len(infos)} steps{sha}), exported by drplan export "
        "stepfunctions; see docs/stepfunctions.md"
    )
    shape = Shape(
        tree,
        coordinated,
        cleanup_tree,
        tuple((sem, tuple(members)) for sem, members in semaphores),
        split,
    )
    return machine(top, first, comment), shape


def _cleanup(
    top: Scope,
    plan: Plan,
    mode: Mode,
    infos: Mapping[str, StepInfo],
    translations: Mapping[str, Translation],
    reverse: nx.DiGraph,
    tree: Tree | None,
    table: str | None,
    options: RunOptions,
    then: str,
    split: Split | None = None,
) -> str:
    """The drill's cleanup (``Undoer.cleanup``): every step that may have created something is
    undone, dependents first, within the local engine's overall undo deadline; skipped when the
    execution's input says ``keep``, or (``drill.cleanup: on_success``) when a step failed.

    In a recovery, the rollback (``Undoer.rollback``): when a step failed or the run crashed, the
    completed steps are undone the same way; the records go in the same place (``cleanup`` in
    the output)."""
    # The records come back as JSON in the Done error's cause; the document keeps everything else
    # (``$.crash`` above all), so each result goes in with ResultPath.
    keep_records = top.add(
        "Cleanup records", {"Type": "Pass", "InputPath": "$.w.cu.v", "ResultPath": "$.u", "Next": then}
    )
    done = top.add(
        "Cleanup ended",
        pass_state({"v": Path("States.StringToJson($.w.clean.Cause)")}, keep_records, result="$.w.cu"),
    )
    gave_up = top.add(
        "Cleanup stopped",
        role(pass_state({"incomplete": Path("$.w.clean")}, then, result="$.u"), "cleanup-stopped"),
    )
    body = top.branch()
    block = rollback_block if mode == "recover" else undo_block
    encoder = Encoder(infos, translations, reverse, "u", block, table, options)
    out = body.add(
        "Cleanup records", {"Type": "Fail", "Error": DONE, "CausePath": "States.JsonToString($.u)"}
    )
    if split is not None:
        first = encode_parts(split, reversed_tree(split.tree), infos, body, out, "cleanup")
    else:
        assert tree is not None
        first = encoder.encode(tree, body, out)
    start = body.add(
        "Cleanup starts", pass_state({"run": Path("$.run"), "s": Path("$.s"), "u": {}, "w": {}}, first)
    )
    timer = top.branch()
    expired = timer.add(
        "Cleanup deadline passed",
        {"Type": "Fail", "Error": "drplan.Timeout", "Cause": "cleanup did not finish within its deadline"},
    )
    timer_start = timer.add(
        "Cleanup deadline", {"Type": "Wait", "Seconds": round(options.undo_timeout), "Next": expired}
    )
    clean = top.add(
        "Cleanup",
        {
            "Type": "Parallel",
            "Branches": [machine(body, start), machine(timer, timer_start)],
            "ResultSelector": {"Error": "drplan.Internal", "Cause": "cleanup ended without an outcome"},
            "ResultPath": "$.w.clean",
            "Catch": [
                {"ErrorEquals": [DONE], "ResultPath": "$.w.clean", "Next": done},
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.w.clean", "Next": gave_up},
            ],
            "Next": gave_up,
        },
    )
    if mode == "recover":
        steady = top.add("No rollback", pass_state({}, then, result="$.u"))
        failed_steps = [
            {
                "And": [
                    {"Variable": f"$.s.{info.sid}", "IsPresent": True},
                    {"Variable": f"$.s.{info.sid}.status", "StringEquals": "failed"},
                ]
            }
            for info in infos.values()
        ]
        went_wrong = {"Or": [{"Variable": "$.crash", "IsPresent": True}, *failed_steps], "Next": clean}
        return top.add("Roll back?", choice([went_wrong], steady))
    kept = top.add("Resources kept", role(pass_state({"kept": True}, then, result="$.u"), "kept"))
    rules: list[dict[str, Any]] = [{"Variable": "$.run.keep", "BooleanEquals": True, "Next": kept}]
    if plan.drill.cleanup == "on_success":
        failed = [
            {
                "And": [
                    {"Variable": f"$.s.{info.sid}", "IsPresent": True},
                    {"Variable": f"$.s.{info.sid}.status", "StringEquals": "failed"},
                ]
            }
            for info in infos.values()
        ]
        rules.append({"Or": [{"Variable": "$.crash", "IsPresent": True}, *failed], "Next": kept})
    return top.add("Clean up?", choice(rules, clean))
