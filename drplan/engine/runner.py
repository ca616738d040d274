"""Run prepared steps against AWS: dependency-driven, bounded, interruptible.

Threads, not asyncio: every AWS call is a blocking boto3 call, and the measured gain of asyncio over
threads for this workload is nil. Each running step has one worker thread
(:class:`~drplan.engine.worker.StepDriver`); the main thread owns the
:class:`~drplan.engine.schedule.ReadyQueue` and hears from workers through a queue. A worker always
reports back, whatever happens to it, so the loop never waits for a thread that died.

The loop also owns stopping (:mod:`drplan.engine.signals`): it reports signals and failures of
essential subscribers as they happen, stops starting steps, and returns as soon as the running
steps have noticed. Undo, rollback and drill cleanup are :class:`~drplan.engine.undo.Undoer`'s.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from drplan.actions.base import StepContext
from drplan.aws import AwsAccess
from drplan.engine.events import EventBus
from drplan.engine.prepare import Prepared, PreparedStep
from drplan.engine.records import DONE, Clock, Records, RunOptions, RunOutcome, Status, StepRecord
from drplan.engine.resume import CarriedOver
from drplan.engine.schedule import ready_queue
from drplan.engine.signals import Stop
from drplan.engine.undo import Undoer
from drplan.engine.worker import StepContexts, StepDriver

#: How often the loop looks at the stop flags while no step reports back.
_TICK = 0.2


class Runner:
    def __init__(
        self,
        prepared: Prepared,
        aws: AwsAccess,
        bus: EventBus,
        options: RunOptions | None = None,
        *,
        stop: Stop | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.prepared = prepared
        self.aws = aws
        self.bus = bus
        self.options = options or RunOptions()
        self.stop = stop or Stop()
        self.clock = clock
        roles = {k: s.step.role_arn for k, s in prepared.steps.items() if s.step.role_arn}
        self.records_store = Records(list(prepared.steps), bus, roles)
        self.contexts = StepContexts(
            prepared, aws, self.options, self.stop, self.records_store, datetime.now(timezone.utc)
        )
        bus.mask = self.contexts.secrets.mask  # resolved secrets never reach a subscriber
        self.undoer = Undoer(
            prepared,
            self.records_store,
            self.contexts,
            aws,
            bus,
            self.options,
            self.stop,
            clock,
            lambda: self.driver,
        )
        self.driver = StepDriver(
            prepared,
            self.records_store,
            self.contexts,
            bus,
            self.options,
            self.stop,
            clock,
            self.undoer.undo_attempt,
        )
        self._inbox: queue.Queue[tuple[str, Status]] = queue.Queue()
        # An essential subscriber (the journal) that fails stops the run like a signal would.
        bus.on_failure = lambda problem: self.stop.request(problem)

    @property
    def started_at(self) -> datetime:
        """When the run started: what RPO is measured against (every step's context has it)."""
        return self.contexts.started_at

    @started_at.setter
    def started_at(self, value: datetime) -> None:
        self.contexts.started_at = value

    @property
    def records(self) -> dict[str, StepRecord]:
        return self.records_store.by_key

    def context(self, prepared: PreparedStep, params: Mapping[str, Any]) -> StepContext:
        """The context this run gives a step's action calls."""
        return self.contexts.for_step(prepared.key, params)

    def report_stops(self) -> None:
        """Emit the stop requests (signals, failures) that arrived since the last call."""
        for reason, stage in self.stop.unreported():
            self.bus.emit("run.interrupted", signal=reason, stage=stage)

    def run(self, *, carried: CarriedOver | None = None) -> RunOutcome:
        """Run every step. ``carried`` is what an earlier process of this run did (``drplan
        resume``): steps done are not run again, steps started are re-attached from their handles,
        steps that failed stay failed."""
        p = self.prepared
        graph = p.graph.graph
        durations = {k: s.estimate.total_seconds() for k, s in p.steps.items()}
        ready = ready_queue(
            graph,
            durations,
            p.limits,
            {k: s.action.name for k, s in p.steps.items()},
            order={k: i for i, k in enumerate(p.order())},
            deadlines=p.graph.deadlines(),
        )
        resumed: dict[str, dict[str, object]] = {}
        stopped_why = "the run stopped (--fail-fast)"
        started = self.clock()
        if carried is not None:
            for key, rec in self.records.items():
                if rec.status in DONE:
                    ready.mark_done(key)
            for key in carried.failed:
                self.records[key].status = "failed"
                for skipped in ready.fail(key):
                    self._skip(skipped, f"`{key}` did not succeed (before the resume)")
            resumed = dict(carried.handles)
            started = carried.started or started
            if carried.cleanup_begun:
                ready.stop()  # the drill was already being cleaned up: finish that, run nothing
                stopped_why = "its cleanup had begun before the resume"
        self.started_at = datetime.fromtimestamp(started, timezone.utc)
        threads: dict[str, threading.Thread] = {}
        while True:
            self.report_stops()
            if self.stop.soft.is_set():
                ready.stop()
            for key in ready.take():
                threads[key] = self._launch(key, resumed.pop(key, None))
            if ready.idle:
                break
            try:
                key, status = self._inbox.get(timeout=_TICK)
            except queue.Empty:
                continue
            threads.pop(key, None)
            if status in DONE:
                ready.succeed(key)
            else:
                for skipped in ready.fail(key):
                    self._skip(skipped, f"`{key}` did not succeed")
                if status == "failed" and self.options.fail_fast:
                    ready.stop()
        self.report_stops()
        for key in ready.not_started():
            rec = self.records[key]
            rec.status = "not_started"
            rec.reason = (
                f"the run was stopped ({self.stop.reason})" if self.stop.soft.is_set() else stopped_why
            )
            self.bus.emit("step.skipped", key, reason=rec.reason)
        return RunOutcome(
            self.records,
            started,
            self.clock(),
            interrupted=self.stop.soft.is_set(),
            stop_reason=self.stop.reason,
        )

    def _skip(self, key: str, reason: str) -> None:
        rec = self.records[key]
        rec.status = "skipped"
        rec.reason = reason
        self.bus.emit("step.skipped", key, reason=reason)

    def _launch(self, key: str, resumed_handle: dict[str, object] | None) -> threading.Thread:
        rec = self.records[key]
        rec.status = "running"
        rec.started = rec.started or self.clock()
        thread = threading.Thread(
            target=self._work, args=(key, resumed_handle), name=f"step:{key}", daemon=True
        )
        thread.start()
        return thread

    def _work(self, key: str, resumed_handle: dict[str, object] | None) -> None:
        """A worker thread: drive the step, record and announce the outcome, and always report back."""
        status: Status = "failed"
        try:
            if resumed_handle is not None:
                status = self.driver.resume(key, dict(resumed_handle))
            else:
                status = self.driver.run(key)
            self._finish(key, status)
        finally:
            self._inbox.put((key, status))

    def _finish(self, key: str, status: Status) -> None:
        rec = self.records[key]
        rec.finished = self.clock()
        rec.status = status
        if status == "succeeded":
            self.records_store.succeeded(key, rec.outputs)
            self.bus.emit(
                "step.succeeded", key, duration=rec.duration, outputs=rec.outputs, attempts=rec.attempts
            )
        elif status == "unverified":
            self.bus.emit("step.unverified", key, reason=rec.reason, duration=rec.duration)
        elif status == "failed":
            self.bus.emit("step.failed", key, error=rec.error, attempts=rec.attempts, duration=rec.duration)
        else:
            rec.reason = rec.reason or "interrupted while running"
            self.bus.emit("step.skipped", key, reason=rec.reason, handle=rec.handle or None)

    # --- undo, through the Undoer ----------------------------------------------------------------

    def undo(self, keys: list[str], *, reason: str, timeout: float | None = None) -> list[str]:
        """Undo these steps (dependents first); the keys that could not be undone."""
        return self.undoer.undo(keys, reason=reason, timeout=timeout)

    def rollback(self) -> list[str]:
        return self.undoer.rollback()

    def cleanup(self) -> list[str]:
        return self.undoer.cleanup()

    def interrupt(self, *, hard: bool = False) -> None:
        """Stop from code (tests, embedding): like one (or two) Ctrl-C."""
        self.stop.request("interrupt()")
        if hard:
            self.stop.request("interrupt()")
