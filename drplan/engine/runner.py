"""Run prepared steps against AWS: dependency-driven, bounded, retried, interruptible, undoable.

Threads, not asyncio: every AWS call is a blocking boto3 call, and the measured gain of asyncio over
threads for this workload is nil. Each running step has one worker thread that starts the step and
polls it with a growing interval; the main thread owns the :class:`~drplan.engine.schedule.ReadyQueue`
and all bookkeeping, and hears from workers through a queue. Signals are caught in the main thread:
the first Ctrl-C/SIGTERM stops starting steps and lets in-flight ones reach a safe point (their AWS
job ids are already in the journal); a second one stops waiting at once.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import queue
import random
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from drplan.actions.base import Action, Handle, Poll, StepContext
from drplan.aws import AwsAccess, describe_error, error_code, is_retryable
from drplan.engine.events import EventBus
from drplan.engine.prepare import Prepared, PreparedStep
from drplan.engine.schedule import ReadyQueue, remaining_path
from drplan.errors import StepFailed
from drplan.model import REFERENCE, REFERENCE_PARTS
from drplan.resources import Resource

Status = Literal["pending", "running", "succeeded", "failed", "skipped", "interrupted", "not_started"]


@dataclass
class RunOptions:
    parallelism: int = 16
    fail_fast: bool = False
    rollback_on_failure: bool = False
    poll_initial: float = 5.0  # seconds before the first poll
    poll_factor: float = 1.5
    poll_max: float = 60.0  # never wait longer than this between polls
    backoff_base: float = 1.0  # throttling: first wait; doubles each time, with full jitter
    backoff_max: float = 30.0
    retry_delay: float = 10.0  # before a step's own retry (also doubled, jittered)
    group_limits: Mapping[str, int] = field(default_factory=dict)  # action name -> max concurrent (overrides)
    approve: frozenset[str] = frozenset()  # manual steps approved up front (--approve)
    yes: bool = False  # approve every manual step
    allow_commands: bool = False
    prompt: Callable[[str, float | None], bool | None] | None = None  # interactive approval (a TTY), or None
    address_map: Callable[[str, int, bool], tuple[str, int, bool]] | None = None  # the sandbox's network
    context_options: Mapping[str, Any] = field(
        default_factory=dict
    )  # extra ctx.options (the sandbox's mappings)
    plan_dir: str = "."


@dataclass
class StepRecord:
    key: str
    status: Status = "pending"
    started: float | None = None  # wall clock (time.time())
    finished: float | None = None
    attempts: int = 0
    handle: Handle = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    resources: list[Resource] = field(default_factory=list)
    error: str | None = None
    reason: str | None = None  # why skipped / not started
    notes: list[str] = field(default_factory=list)
    undone: bool = False
    undone_at: float | None = None  # when the undo was verified (evidence's cleanup proof)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


@dataclass
class RunOutcome:
    records: dict[str, StepRecord]
    started: float
    finished: float
    interrupted: bool = False

    @property
    def failed(self) -> list[str]:
        return [k for k, r in self.records.items() if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.status in ("succeeded",) for r in self.records.values())


class _Stop:
    """Two-stage stop.

    ``soft`` (first Ctrl-C/SIGTERM): start nothing new; running steps stop at their next safe point
    (between polls: the AWS job was started and its handle journaled); undo and cleanup still run.
    ``hard`` (second signal): also stop waiting for deletions, leaving them to ``drplan cleanup``.
    """

    def __init__(self) -> None:
        self.soft = threading.Event()
        self.hard = threading.Event()

    def wait(self, seconds: float) -> None:
        self.soft.wait(max(0.0, seconds))


class Runner:
    def __init__(
        self,
        prepared: Prepared,
        aws: AwsAccess,
        bus: EventBus,
        options: RunOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prepared = prepared
        self.aws = aws
        self.bus = bus
        self.options = options or RunOptions()
        self.clock = clock
        self.records: dict[str, StepRecord] = {k: StepRecord(k) for k in prepared.steps}
        self.stop = _Stop()
        self._inbox: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._undoing = False  # undo/cleanup keeps going after a soft stop
        self.started_at = datetime.now(timezone.utc)

    # --- the main loop ------------------------------------------------------------------------

    def run(self) -> RunOutcome:
        p = self.prepared
        graph = p.graph.graph
        durations = {k: s.estimate.total_seconds() for k, s in p.steps.items()}
        limits = {name: n for name, n in self._limits().items()}
        ready = ReadyQueue(
            graph,
            remaining_path(graph, durations),
            order={k: i for i, k in enumerate(p.order())},
            parallelism=self.options.parallelism,
            group_of={k: s.action.name for k, s in p.steps.items()},
            group_limits=limits,
        )
        started = self.clock()
        self.started_at = datetime.fromtimestamp(started, timezone.utc)
        threads: dict[str, threading.Thread] = {}
        with self.signals():
            while True:
                if self.stop.soft.is_set():
                    ready.stop()
                for key in ready.take():
                    threads[key] = self._launch(key)
                if ready.idle:
                    break
                try:
                    key, what, _ = self._inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                threads.pop(key, None)
                if what == "succeeded":
                    ready.succeed(key)
                elif what in ("failed", "interrupted"):
                    for skipped in ready.fail(key):
                        self._skip(skipped, f"`{key}` did not succeed")
                    if what == "failed" and self.options.fail_fast:
                        ready.stop()
            for key in ready.not_started():
                rec = self.records[key]
                rec.status = "not_started"
                rec.reason = (
                    "the run was interrupted" if self.stop.soft.is_set() else "the run stopped (--fail-fast)"
                )
                self.bus.emit("step.skipped", key, reason=rec.reason)
        outcome = RunOutcome(self.records, started, self.clock(), interrupted=self.stop.soft.is_set())
        return outcome

    def _limits(self) -> dict[str, int]:
        limits: dict[str, int] = {}
        for prepared in self.prepared.steps.values():
            if prepared.action.concurrency is not None:
                limits[prepared.action.name] = prepared.action.concurrency
        limits.update(self.options.group_limits)
        return limits

    def _skip(self, key: str, reason: str) -> None:
        rec = self.records[key]
        rec.status = "skipped"
        rec.reason = reason
        self.bus.emit("step.skipped", key, reason=reason)

    @contextmanager
    def signals(self) -> Iterator[None]:
        """While inside: SIGINT/SIGTERM set the soft, then the hard stop (see :class:`_Stop`)
        instead of raising, so a run or its cleanup ends cleanly. Only the main thread can."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.stop.soft.is_set():
                self.stop.hard.set()
                self.bus.emit("run.interrupted", signal=name, stage="hard")
            else:
                self.stop.soft.set()
                self.bus.emit("run.interrupted", signal=name, stage="soft")

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def interrupt(self, *, hard: bool = False) -> None:
        """Stop from code (tests, embedding): like one (or two) Ctrl-C."""
        self.stop.soft.set()
        if hard:
            self.stop.hard.set()

    # --- one step, in its worker thread ---------------------------------------------------------

    def _launch(self, key: str) -> threading.Thread:
        rec = self.records[key]
        rec.status = "running"
        rec.started = self.clock()
        thread = threading.Thread(target=self._work, args=(key,), name=f"step:{key}", daemon=True)
        thread.start()
        return thread

    def _work(self, key: str) -> None:
        rec = self.records[key]
        try:
            result = self._drive(key)
        except Exception as exc:  # a bug in an action must fail its step, not the run
            rec.error = (
                f"internal error in `{self.prepared.steps[key].action.name}`: {type(exc).__name__}: {exc}"
            )
            rec.notes.append(traceback.format_exc())
            result = "failed"
        rec.finished = self.clock()
        rec.status = result  # type: ignore[assignment]
        if result == "succeeded":
            self.bus.emit(
                "step.succeeded", key, duration=rec.duration, outputs=rec.outputs, attempts=rec.attempts
            )
        elif result == "failed":
            self.bus.emit("step.failed", key, error=rec.error, attempts=rec.attempts, duration=rec.duration)
        else:
            rec.reason = rec.reason or "interrupted while running"
            self.bus.emit("step.skipped", key, reason=rec.reason, handle=rec.handle or None)
        self._inbox.put((key, result, None))

    def context(self, prepared: PreparedStep, params: Mapping[str, Any]) -> StepContext:
        return StepContext(
            step=prepared.step,
            params=params,
            mode=self.prepared.mode,
            run_id=self.prepared.run_id,
            plan=self.prepared.plan,
            aws=self.aws,
            objectives=self.prepared.plan.objectives_of(prepared.step.service),
            started_at=self.started_at,
            tags=self.prepared.tags,
            client_token=f"drplan-{self.prepared.run_id}-{prepared.key}"[:64],
            note=lambda message: self._note(prepared.key, message),
            record=lambda resource: self._record_resources(prepared.key, {"resources": [resource.to_json()]}),
            options={
                **self.options.context_options,
                "approve": self.options.approve,
                "yes": self.options.yes,
                "allow_commands": self.options.allow_commands,
                "prompt": self.options.prompt,
                "plan_dir": self.options.plan_dir,
                "stop": self.stop.soft,
                "address_map": self.options.address_map,
            },
        )

    def _drive(self, key: str) -> str:
        prepared = self.prepared.steps[key]
        rec = self.records[key]
        action = prepared.action
        deadline = self.clock() + prepared.timeout.total_seconds()
        try:
            params = resolve(prepared.params, self._outputs())
        except StepFailed as exc:
            rec.error = exc.reason
            return "failed"
        ctx = self.context(prepared, params)
        attempts = prepared.step.retries + 1
        for attempt in range(1, attempts + 1):
            rec.attempts = attempt
            if attempt > 1:
                # Put back what the failed attempt created or changed, so the next starts clean.
                if rec.handle and action.undoable:
                    self._undo_one(key, ctx, rec.handle, deadline, reason="retrying")
                in_handle = {(r["kind"], r["id"]) for r in rec.handle.get("resources", [])}
                orphans = [r for r in rec.resources if (r.kind, r.id) not in in_handle]
                if orphans:
                    self._remove_orphans(
                        key, orphans, reason="retrying", timeout=max(0.0, deadline - self.clock())
                    )
                rec.handle = {}
                delay = _jitter(self.options.retry_delay * 2 ** (attempt - 2))
                self.bus.emit("step.retrying", key, attempt=attempt, after=round(delay, 2), error=rec.error)
                self.stop.wait(min(delay, max(0.0, deadline - self.clock())))
                if self.stop.soft.is_set():
                    rec.reason = "interrupted before a retry"
                    return "interrupted"
            # A fresh idempotency token per attempt: attempt 1 was undone, so its token must not
            # make AWS hand back what was just deleted.
            token = ctx.client_token if attempt == 1 else f"{ctx.client_token[:60]}-{attempt}"
            outcome = self._attempt(key, action, dataclasses.replace(ctx, client_token=token), deadline)
            if outcome in ("succeeded", "interrupted"):
                return outcome
            if self.clock() >= deadline:
                break
        return "failed"

    def _attempt(self, key: str, action: Action, ctx: StepContext, deadline: float) -> str:
        rec = self.records[key]
        try:
            handle = self._call(key, "start", lambda: action.start(ctx), deadline)
            rec.handle = handle
            self.bus.emit(
                "step.started",
                key,
                attempt=rec.attempts,
                uses=action.name,
                params=_plain(dict(ctx.params)),
                handle=_plain(handle),
            )
            self._record_resources(key, handle)
            journaled = json.dumps(_plain(handle), sort_keys=True, default=str)
            interval = self.options.poll_initial
            cap = min(
                self.options.poll_max, max(15.0, self.prepared.steps[key].estimate.total_seconds() / 15)
            )
            last_note = ""
            while True:
                try:
                    poll: Poll = self._call(key, "poll", lambda: action.poll(ctx, handle), deadline)
                finally:  # a poll may create things (cluster instances): journal them even if it raises
                    self._record_resources(key, handle)
                    journaled = self._journal_handle(key, handle, journaled)
                if poll.failed:
                    rec.error = poll.failed
                    return "failed"
                if poll.done:
                    rec.outputs = dict(
                        self._call(key, "result", lambda: action.result(ctx, handle), deadline)
                    )
                    self._record_resources(key, handle)
                    return "succeeded"
                if poll.note and poll.note != last_note:
                    self.bus.emit("step.progress", key, note=poll.note)
                    last_note = poll.note
                if self.stop.soft.is_set():
                    # A safe point: the job was started and its handle is in the journal.
                    rec.reason = "interrupted while running; its job may still be running (see the journal)"
                    return "interrupted"
                remaining = deadline - self.clock()
                if remaining <= 0:
                    rec.error = (
                        f"timed out after {_seconds(self.prepared.steps[key].timeout.total_seconds())}"
                    )
                    return "failed"
                if poll.retry_after is not None:
                    self.stop.wait(min(poll.retry_after, remaining))
                    continue
                self.stop.wait(min(interval, remaining))
                interval = min(interval * self.options.poll_factor, cap)
        except StepFailed as exc:
            rec.error = exc.reason
            return "failed"
        except _Interrupted:
            rec.reason = "interrupted while waiting out throttling"
            return "interrupted"
        except _Timeout as exc:
            rec.error = str(exc)
            return "failed"
        except Exception as exc:
            if error_code(exc) is None and not is_retryable(exc):
                raise
            rec.error = describe_error(exc)
            return "failed"

    def _call(self, key: str, what: str, fn: Callable[[], Any], deadline: float) -> Any:
        """Call an action method, waiting out throttling and transient errors until the deadline."""
        delay = self.options.backoff_base
        while True:
            try:
                return fn()
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                wait = _jitter(delay)
                if self.clock() + wait >= deadline:
                    raise _Timeout(
                        f"{what}: still throttled at the step's timeout ({describe_error(exc)})"
                    ) from exc
                self.bus.emit(
                    "step.throttled", key, call=what, error=describe_error(exc), wait=round(wait, 3)
                )
                self.stop.hard.wait(wait) if self._undoing else self.stop.wait(wait)
                if self.stop.hard.is_set() or (self.stop.soft.is_set() and not self._undoing):
                    raise _Interrupted from exc
                delay = min(delay * 2, self.options.backoff_max)

    def _note(self, key: str, message: str) -> None:
        self.bus.emit("step.progress", key, note=message)

    def _journal_handle(self, key: str, handle: Handle, last: str) -> str:
        """Journal the handle again when a poll changed it (version ids written, attachments...)."""
        now = json.dumps(_plain(handle), sort_keys=True, default=str)
        if now != last:
            self.bus.emit("step.handle", key, handle=_plain(handle))
        return now

    def _record_resources(self, key: str, handle: Handle) -> None:
        """Journal resources the handle lists that are new, or known but now better described
        (an ARN learnt when the job completed). Also what actions record through ``ctx.record``
        the moment a create call returns."""
        rec = self.records[key]
        for raw in handle.get("resources", []):
            resource = Resource.from_json(copy.deepcopy(raw))
            index = next(
                (i for i, r in enumerate(rec.resources) if (r.kind, r.id) == (resource.kind, resource.id)),
                None,
            )
            if index is None:
                rec.resources.append(resource)
            elif rec.resources[index] != resource:
                rec.resources[index] = resource
            else:
                continue
            self.bus.emit("step.resource", key, resource=resource.to_json())

    def _outputs(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(r.outputs) for k, r in self.records.items() if r.status == "succeeded"}

    # --- undo: rollback and drill cleanup --------------------------------------------------------

    def _undo_one(self, key: str, ctx: StepContext, handle: Handle, deadline: float, *, reason: str) -> bool:
        action = self.prepared.steps[key].action
        resources = handle.get("resources", [])
        self.bus.emit("undo.started", key, reason=reason, resources=resources)
        try:
            undo_handle = self._call(key, "undo", lambda: action.undo(ctx, handle), deadline)
            interval = min(self.options.poll_initial, 5.0)
            while True:
                poll = self._call(
                    key, "verify undo", lambda: action.poll_undo(ctx, handle, undo_handle), deadline
                )
                if poll.failed:
                    raise StepFailed(key, poll.failed)
                if poll.done:
                    break
                if self.clock() >= deadline or self.stop.hard.is_set():
                    raise StepFailed(key, "gave up waiting for the deletion to finish")
                self.stop.hard.wait(interval)
                interval = min(interval * self.options.poll_factor, 15.0)
        except Exception as exc:
            message = exc.reason if isinstance(exc, StepFailed) else describe_error(exc)
            self.bus.emit("undo.failed", key, error=message, resources=resources)
            return False
        self.bus.emit("undo.succeeded", key, resources=resources, reason=reason)
        return True

    def undo(self, keys: list[str], *, reason: str, timeout: float = 3600.0) -> list[str]:
        """Undo the given steps one by one, in the order given; returns the keys that could not be undone."""
        failed = []
        self._undoing = True
        for key in keys:
            rec = self.records[key]
            prepared = self.prepared.steps[key]
            if rec.undone:
                continue
            ok = True
            if rec.handle and prepared.action.undoable:
                ctx = self.context(prepared, resolve(prepared.params, self._outputs(), strict=False))
                ok = self._undo_one(key, ctx, rec.handle, self.clock() + timeout, reason=reason)
            # Resources the handle does not know: start() created them, then failed before it
            # could return a handle. Remove them by kind, as `drplan cleanup` would.
            in_handle = {(r["kind"], r["id"]) for r in rec.handle.get("resources", [])}
            orphans = [r for r in rec.resources if (r.kind, r.id) not in in_handle]
            if orphans:
                ok = self._remove_orphans(key, orphans, reason=reason, timeout=timeout) and ok
            if not rec.handle and not orphans:
                continue
            if ok:
                rec.undone, rec.undone_at = True, self.clock()
            else:
                failed.append(key)
        self._undoing = False
        return failed

    def _remove_orphans(self, key: str, orphans: list[Resource], *, reason: str, timeout: float) -> bool:
        from drplan.engine.sweep import remove

        resources = [r.to_json() for r in orphans]
        self.bus.emit("undo.started", key, reason=reason, resources=resources)
        results = remove(self.aws, orphans, timeout=timeout)  # type: ignore[arg-type]
        left = [f"{x.resource.kind} {x.resource.id}: {x.error}" for x in results if not x.removed]
        if left:
            self.bus.emit("undo.failed", key, error="; ".join(left), resources=resources)
            return False
        self.bus.emit("undo.succeeded", key, resources=resources, reason=reason)
        return True

    def rollback(self, outcome: RunOutcome) -> list[str]:
        """Undo completed steps in reverse order of completion (``--rollback-on-failure``)."""
        done = [r for r in self.records.values() if r.status == "succeeded" and r.finished is not None]
        order = [r.key for r in sorted(done, key=lambda r: r.finished or 0.0, reverse=True)]
        return self.undo(order, reason="rollback")


class _Interrupted(Exception):
    pass


class _Timeout(Exception):
    pass


def _jitter(seconds: float) -> float:
    """Full jitter (AWS architecture blog): spreads retries of many clients apart."""
    return random.uniform(seconds / 2, seconds)


def _seconds(value: float) -> str:
    from drplan.durations import humanize

    return humanize(value)


def _plain(value: Any) -> Any:
    """Handles must be JSON-able for the journal; datetimes become ISO strings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def resolve(params: Any, outputs: Mapping[str, Mapping[str, Any]], *, strict: bool = True) -> Any:
    """Replace ``${service.step.output}`` with values from steps that succeeded.

    A string that is exactly one reference takes the output's value as is (a port stays a number);
    references inside longer strings are substituted as text.
    """
    if isinstance(params, Mapping):
        return {k: resolve(v, outputs, strict=strict) for k, v in params.items()}
    if isinstance(params, list):
        return [resolve(v, outputs, strict=strict) for v in params]
    if not isinstance(params, str) or "${" not in params:
        return params

    def lookup(expr: str) -> Any:
        parts = REFERENCE_PARTS.match(expr)
        if not parts:
            raise StepFailed(expr, f"`${{{expr}}}` is not a reference of the form ${{service.step.output}}")
        step_key = f"{parts[1]}.{parts[2]}"
        if step_key not in outputs:
            if not strict:
                return "${" + expr + "}"
            raise StepFailed(
                step_key, f"cannot resolve `${{{expr}}}`: step `{step_key}` has not succeeded in this run"
            )
        if parts[3] not in outputs[step_key]:
            if not strict:
                return "${" + expr + "}"
            raise StepFailed(
                step_key, f"cannot resolve `${{{expr}}}`: step `{step_key}` produced no output `{parts[3]}`"
            )
        return outputs[step_key][parts[3]]

    whole = re.fullmatch(r"\$\{([^}]*)\}", params)
    if whole:
        return lookup(whole.group(1))
    return REFERENCE.sub(lambda m: str(lookup(m.group(1))), params)
