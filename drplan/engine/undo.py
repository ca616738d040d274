"""Undo: put back what steps did, for a retry, a rollback or a drill's cleanup.

A step is undone in three ways, whichever apply, so that nothing it made is missed:

1. its action's own :meth:`~drplan.actions.base.Action.undo` with the step's handle (deletes what it
   created, or puts back what it changed: the previous DNS record, the previous capacity);
2. removal by kind of resources it recorded that the handle does not know (``start()`` created
   them, then failed before it could return a handle);
3. removal of what its journaled *intents* name, found by name: a create call whose answer never
   came back (a timeout, a dropped connection) may still have created the resource.

Several steps are undone in parallel, a step only after every step that depends on it (dependents
go first), within one overall deadline. Only a hard stop (a second signal) cuts the waiting short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import networkx as nx

from drplan.actions.base import Handle, StepContext, handle_resources
from drplan.aws import UNREACHABLE_GIVE_UP, AwsAccess, describe_error
from drplan.engine.events import EventBus
from drplan.engine.prepare import Prepared
from drplan.engine.records import Clock, Records, RunOptions
from drplan.engine.signals import Stop
from drplan.engine.sweep import find_intended, remove
from drplan.engine.worker import StepContexts, StepDriver, resolve
from drplan.errors import StepFailed
from drplan.resources import Resource


class Undoer:
    def __init__(
        self,
        prepared: Prepared,
        records: Records,
        contexts: StepContexts,
        aws: AwsAccess,
        bus: EventBus,
        options: RunOptions,
        stop: Stop,
        clock: Clock,
        driver: Callable[[], StepDriver],
    ) -> None:
        self.prepared = prepared
        self.records = records
        self.contexts = contexts
        self.aws = aws
        self.bus = bus
        self.options = options
        self.stop = stop
        self.clock = clock
        self._driver = driver
        self.intents: dict[str, list[dict[str, Any]]] = {}  # step -> targets journaled before start
        bus.subscribe(self._note_intent, name="intents")

    def _note_intent(self, event: Any) -> None:
        if event.kind == "step.intent" and event.step:
            self.intents.setdefault(event.step, []).extend(event.data.get("targets", []))

    # --- one step ----------------------------------------------------------------------------------

    def undo_attempt(self, key: str, ctx: StepContext, handle: Handle, deadline: float) -> None:
        """Before a retry: put back what the failed attempt did (the next attempt starts clean)."""
        self._undo_step(key, ctx, handle, deadline, reason="retrying", by_name=True)

    def _undo_step(
        self, key: str, ctx: StepContext, handle: Handle, deadline: float, *, reason: str, by_name: bool
    ) -> bool:
        rec = self.records[key]
        action = self.prepared.steps[key].action
        ok = True
        if handle and action.undoes(ctx.params):
            ok = self._undo_handle(key, ctx, handle, deadline, reason=reason)
        recorded = handle_resources(handle)
        in_handle = {r.key for r in recorded}
        orphans = [r for r in rec.resources if r.key not in in_handle]
        if by_name:
            orphans += self._found_by_name(key, orphans + recorded)
        if orphans:
            ok = self._remove(key, orphans, reason=reason, deadline=deadline) and ok
        return ok

    def _found_by_name(self, key: str, known: list[Resource]) -> list[Resource]:
        """Resources this step's intents name that exist, are ours and are not known otherwise."""
        known_names = {(r.kind, str(r.extra.get("name", r.id))) for r in known} | {r.key for r in known}
        intents = [(key, t) for t in self.intents.get(key, []) if (t["kind"], t["name"]) not in known_names]
        if not intents:
            return []
        if self._driver().reachability.down_for() > UNREACHABLE_GIVE_UP:
            names = ", ".join(f"{t['kind']} {t['name']}" for _, t in intents)
            self.bus.emit("undo.failed", key, error=f"not looked up by name, AWS is unreachable: {names}")
            return []
        found, problems = find_intended(
            self.aws, intents, run_id=self.prepared.run_id, drill=self.prepared.mode == "drill"
        )
        for problem in problems:
            self.bus.emit("undo.failed", key, error=problem)
        new = [r for _, r in found if r.key not in {k.key for k in known}]
        for resource in new:
            self.records.note_resource(key, resource)
        return new

    def _undo_handle(
        self, key: str, ctx: StepContext, handle: Handle, deadline: float, *, reason: str
    ) -> bool:
        action = self.prepared.steps[key].action
        resources = [r.to_json() for r in handle_resources(handle)]
        self.bus.emit("undo.started", key, reason=reason, resources=resources)
        driver = self._driver()
        try:
            undo_handle = driver.call(key, "undo", lambda: action.undo(ctx, handle), deadline, undoing=True)
            interval = min(self.options.poll_initial, 5.0)
            while True:
                poll = driver.call(
                    key,
                    "verify undo",
                    lambda: action.poll_undo(ctx, handle, undo_handle),
                    deadline,
                    undoing=True,
                )
                if poll.failed:
                    raise StepFailed(key, poll.failed)
                if poll.done:
                    break
                if self.clock() + interval >= deadline:
                    raise StepFailed(
                        key, f"gave up waiting for the undo to finish ({poll.note or 'still in progress'})"
                    )
                if self.stop.wait_hard(interval):
                    raise StepFailed(
                        key, f"stopped waiting for the undo to finish ({poll.note or 'in progress'})"
                    )
                interval = min(interval * self.options.poll_factor, 15.0)
        except Exception as exc:
            message = exc.reason if isinstance(exc, StepFailed) else describe_error(exc)
            self.bus.emit("undo.failed", key, error=message, resources=resources)
            return False
        self.bus.emit("undo.succeeded", key, resources=resources, reason=reason)
        return True

    def _remove(self, key: str, orphans: list[Resource], *, reason: str, deadline: float) -> bool:
        resources = [r.to_json() for r in orphans]
        self.bus.emit("undo.started", key, reason=reason, resources=resources)
        results = remove(
            self.aws,
            orphans,
            timeout=max(0.0, deadline - self.clock()),
            stop=self.stop.hard,
            reachability=self._driver().reachability,
        )
        left = [f"{x.resource.kind} {x.resource.id}: {x.error}" for x in results if not x.removed]
        gone = [x.resource.to_json() for x in results if x.removed]
        if gone:
            self.bus.emit("undo.succeeded", key, resources=gone, reason=reason)
        if left:
            self.bus.emit("undo.failed", key, error="; ".join(left), resources=resources)
            return False
        return True

    # --- many steps: rollback and drill cleanup ------------------------------------------------------

    def undo(self, keys: list[str], *, reason: str, timeout: float | None = None) -> list[str]:
        """Undo the given steps, dependents before what they depend on, in parallel otherwise;
        returns the keys that could not be undone. ``keys`` order breaks ties (newest first)."""
        todo = [k for k in keys if not self.records[k].undone and self._has_work(k)]
        if not todo:
            return []
        deadline = self.clock() + (self.options.undo_timeout if timeout is None else timeout)
        graph = self.prepared.graph.graph
        wanted = set(todo)
        # A step waits for the undo of every wanted step downstream of it.
        waits = {
            k: {d for d in nx.descendants(graph, k) if d in wanted} if k in graph else set() for k in todo
        }
        failed: list[str] = []
        finished: set[str] = set()
        running: dict[Future[bool], str] = {}
        lock = threading.Lock()
        workers = max(1, min(16, self.prepared.limits.parallelism or 16, len(todo)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="undo") as pool:
            pending = list(todo)
            while pending or running:
                for key in [k for k in pending if waits[k] <= finished]:
                    pending.remove(key)
                    running[pool.submit(self._undo_record, key, deadline, reason)] = key
                if not running:  # cannot happen (the graph is acyclic); never spin
                    failed.extend(pending)
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    key = running.pop(future)
                    with lock:
                        finished.add(key)
                    try:
                        ok = future.result()
                    except Exception as exc:  # a bug in an action's undo: that step failed
                        self.bus.emit(
                            "undo.failed", key, error=f"internal error: {type(exc).__name__}: {exc}"
                        )
                        ok = False
                    if not ok:
                        failed.append(key)
        order = {k: i for i, k in enumerate(keys)}
        return sorted(failed, key=order.__getitem__)

    def _has_work(self, key: str) -> bool:
        rec = self.records[key]
        action = self.prepared.steps[key].action
        params = self.prepared.steps[key].params
        return bool((rec.handle and action.undoes(params)) or rec.resources or self.intents.get(key))

    def _undo_record(self, key: str, deadline: float, reason: str) -> bool:
        rec = self.records[key]
        prepared = self.prepared.steps[key]
        ctx = self.contexts.for_step(
            key, resolve(prepared.params, self.records.outputs(), strict=False), attempt=max(1, rec.attempts)
        )
        ok = self._undo_step(key, ctx, rec.handle, deadline, reason=reason, by_name=True)
        if ok:
            rec.undone, rec.undone_at = True, time.time()
        return ok

    def rollback(self) -> list[str]:
        """Undo completed steps in reverse order of completion (``--rollback-on-failure``)."""
        done = [r for r in self.records.by_key.values() if r.status == "succeeded" and r.finished is not None]
        order = [r.key for r in sorted(done, key=lambda r: r.finished or 0.0, reverse=True)]
        return self.undo(order, reason="rollback")

    def cleanup(self) -> list[str]:
        """A drill's cleanup: undo every step that started or meant to create something, newest first."""
        started = [
            r for r in self.records.by_key.values() if r.started is not None or self.intents.get(r.key)
        ]
        order = [r.key for r in sorted(started, key=lambda r: r.started or 0.0, reverse=True)]
        return self.undo(order, reason="drill cleanup")
