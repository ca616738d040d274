"""Drive one step in its worker thread: resolve references, journal intents, start, poll with a
growing interval, wait out throttling, retry (undoing the failed attempt first), time out.

Every wait here is a wait on the run's stop event, so a stopping run interrupts a step at once,
within the AWS call in progress (bounded by botocore's timeouts). The outcome goes back to the
scheduler loop; nothing here decides what runs next.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from drplan.actions.base import Action, Handle, Poll, StepContext
from drplan.aws import (
    UNREACHABLE_GIVE_UP,
    AwsAccess,
    Reachability,
    ResponseLost,
    describe_error,
    error_code,
    is_invalid_request,
    is_retryable,
    is_unreachable,
)
from drplan.durations import humanize
from drplan.engine.events import EventBus
from drplan.engine.prepare import Prepared, PreparedStep
from drplan.engine.records import Clock, Records, RunOptions, Status, plain
from drplan.engine.signals import Stop
from drplan.engine.sweep import find_intended
from drplan.errors import StepFailed
from drplan.model import REFERENCE, REFERENCE_PARTS
from drplan.secrets import SecretMissing, Secrets, is_secret_reference


class Interrupted(Exception):
    """The run is stopping while a call was being retried."""


class CallTimeout(Exception):
    """Throttling or transient errors lasted until the step's deadline."""


def jitter(seconds: float) -> float:
    """Full jitter (AWS architecture blog): spreads retries of many clients apart."""
    return random.uniform(seconds / 2, seconds)


class StepContexts:
    """Builds the :class:`StepContext` each action call gets: one place, for runs, undo and preflight."""

    def __init__(
        self,
        prepared: Prepared,
        aws: AwsAccess,
        options: RunOptions,
        stop: Stop,
        records: Records | None,
        started_at: datetime | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        self.prepared = prepared
        self.secrets = secrets or Secrets(lambda service: aws.client(service))
        self.aws = aws
        self.options = options
        self.stop = stop
        self.records = records
        self.started_at = started_at or datetime.now(timezone.utc)
        #: step -> what it remembered (StepContext.remember), shared by its attempts and contexts;
        #: a resumed run starts from the journal's.
        self.memos: dict[str, dict[str, Any]] = {}

    def token(self, key: str, attempt: int = 1) -> str:
        """The idempotency token of a step's attempt: stable across processes of one run (resume
        re-attaches by it), fresh for each attempt (attempt 1 was undone, so its token must not make
        AWS hand back what was just deleted)."""
        base = f"drplan-{self.prepared.run_id}-{key}"[:64]
        return base if attempt == 1 else f"{base[:60]}-{attempt}"

    def _remember(self, key: str, name: str, value: Any) -> None:
        self.memos.setdefault(key, {})[name] = value
        if self.records is not None:
            self.records.bus.emit("step.memo", key, name=name, value=value)

    def _note(self, key: str, message: str) -> None:
        if self.records is not None:
            self.records.bus.emit("step.progress", key, note=message)

    def for_step(self, key: str, params: Mapping[str, Any], *, attempt: int = 1) -> StepContext:
        step = self.prepared.steps[key]
        records = self.records
        return StepContext(
            step=step.step,
            params=params,
            mode=self.prepared.mode,
            run_id=self.prepared.run_id,
            plan=self.prepared.plan,
            aws=self.aws,
            objectives=self.prepared.plan.objectives_of(step.step.service),
            started_at=self.started_at,
            tags=self.prepared.tags,
            client_token=self.token(key, attempt),
            note=lambda message: self._note(key, message),
            record=(lambda resource: records.note_resource(key, resource))
            if records is not None
            else (lambda resource: None),
            memo=self.memos.setdefault(key, {}),
            remember=lambda name, value: self._remember(key, name, value),
            approvals=self.options.approvals,
            allow_commands=self.options.allow_commands,
            plan_dir=self.options.plan_dir,
            stop=self.stop.soft,
            network=self.options.network,
            max_wait=self.options.max_wait,
        )


class StepDriver:
    """Runs the steps of one run, each in the worker thread that calls :meth:`run`."""

    def __init__(
        self,
        prepared: Prepared,
        records: Records,
        contexts: StepContexts,
        bus: EventBus,
        options: RunOptions,
        stop: Stop,
        clock: Clock,
        undo_attempt: Callable[[str, StepContext, Handle, float], None],
    ) -> None:
        self.prepared = prepared
        self.records = records
        self.contexts = contexts
        self.bus = bus
        self.options = options
        self.stop = stop
        self.clock = clock
        self.undo_attempt = undo_attempt  # put back what a failed attempt did, before the next one
        self.reachability = Reachability(clock)  # shared by the run's threads

    def run(self, key: str) -> Status:
        """The step's final status; never raises (a bug in an action fails its step, not the run)."""
        rec = self.records[key]
        try:
            return self._drive(key)
        except Exception as exc:
            rec.error = (
                f"internal error in `{self.prepared.steps[key].action.name}`: {type(exc).__name__}: {exc}"
            )
            rec.notes.append(traceback.format_exc())
            return "failed"

    def _drive(self, key: str) -> Status:
        prepared = self.prepared.steps[key]
        rec = self.records[key]
        deadline = self.clock() + prepared.timeout.total_seconds()
        by_key = self.records.by_key
        unverified = [
            k for k in referenced_steps(prepared.params) if k in by_key and by_key[k].status == "unverified"
        ]
        if unverified:
            # Its input is a value the run could not see (a check the sandbox cannot vouch for has
            # no outputs): the step cannot be judged either, which is not a failure of the plan.
            rec.reason = f"its input comes from `{unverified[0]}`, which could not be verified here"
            return "unverified"
        try:
            params = resolve(prepared.params, self.records.outputs(), secrets=self.contexts.secrets)
        except StepFailed as exc:
            rec.error = exc.reason
            return "failed"
        first = rec.attempts + 1  # a resumed step goes on counting
        for attempt in range(first, first + prepared.step.retries + 1):
            rec.attempts = attempt
            ctx = self.contexts.for_step(key, params, attempt=attempt)
            if attempt > first:
                self.undo_attempt(key, ctx, rec.handle, deadline)
                rec.handle = {}
                delay = jitter(self.options.retry_delay * 2 ** (attempt - first - 1))
                self.bus.emit("step.retrying", key, attempt=attempt, after=round(delay, 2), error=rec.error)
                if self.stop.wait(min(delay, max(0.0, deadline - self.clock()))):
                    rec.reason = "interrupted before a retry"
                    return "interrupted"
            outcome = self._attempt(key, prepared, ctx, deadline)
            if outcome in ("succeeded", "unverified", "interrupted"):
                return outcome
            if self.clock() >= deadline:
                break
        return "failed"

    def resume(self, key: str, handle: Handle) -> Status:
        """Re-attach to a step an earlier process of this run started: poll its journaled handle."""
        prepared = self.prepared.steps[key]
        rec = self.records[key]
        try:
            params = resolve(prepared.params, self.records.outputs(), secrets=self.contexts.secrets)
            ctx = self.contexts.for_step(key, params, attempt=max(1, rec.attempts))
            deadline = self.clock() + prepared.timeout.total_seconds()
            rec.handle = handle
            return self._watch(key, prepared.action, ctx, handle, deadline)
        except StepFailed as exc:
            rec.error = exc.reason
            return "failed"
        except Exception as exc:
            rec.error = f"internal error in `{prepared.action.name}`: {type(exc).__name__}: {exc}"
            rec.notes.append(traceback.format_exc())
            return "failed"

    def _attempt(self, key: str, prepared: PreparedStep, ctx: StepContext, deadline: float) -> Status:
        rec = self.records[key]
        action = prepared.action
        fault = self.options.faults.get(key)
        try:
            if fault is not None and (
                fault.fault == "fail" or (fault.fault == "fail-once" and rec.attempts == 1)
            ):
                raise StepFailed(key, f"injected fault: {fault.describe()} (fault rehearsal)")
            targets = self._intend(key, action, ctx)
            start = (
                action.start
                if fault is None or fault.fault != "throttle"
                else _throttled(action.start, fault.times)
            )
            try:
                handle = self.call(key, "start", lambda: start(ctx), deadline)
            except ResponseLost as lost:
                handle = self._reattach(key, action, ctx, targets, lost) or self.call(
                    key, "start", lambda: start(ctx), deadline
                )
            rec.handle = handle
            self.bus.emit(
                "step.started",
                key,
                attempt=rec.attempts,
                uses=action.name,
                params=plain(dict(ctx.params)),
                handle=plain(handle),
                client_token=ctx.client_token,
            )
            self.records.note_resources(key, handle)
            if fault is not None and fault.fault == "crash" and not self.options.resumed:
                _crash()
            return self._watch(key, action, ctx, handle, deadline)
        except StepFailed as exc:
            rec.error = exc.reason
            return "failed"
        except Interrupted:
            rec.reason = "interrupted while waiting out throttling"
            return "interrupted"
        except CallTimeout as exc:
            rec.error = str(exc)
            return "failed"
        except Exception as exc:
            if is_invalid_request(exc):
                rec.error = f"AWS's API would refuse the request: {exc}"
                return "failed"
            if error_code(exc) is None and not is_retryable(exc):
                raise
            rec.error = describe_error(exc)
            return "failed"

    def _intend(self, key: str, action: Action, ctx: StepContext) -> list[dict[str, Any]]:
        """Write-ahead: journal the names the step is about to create, before the create call, so
        a process killed during the call leaves a trail cleanup can follow by name."""
        try:
            targets = [t for t in action.targets(ctx.params) if "${" not in t.name]
        except (KeyError, TypeError, ValueError):
            return []
        journaled = [t.intent(ctx.region, ctx.step.role_arn) for t in targets]
        if journaled:
            self.bus.emit(
                "step.intent", key, targets=journaled, tags=dict(ctx.tags), client_token=ctx.client_token
            )
        return journaled

    def _reattach(
        self, key: str, action: Action, ctx: StepContext, targets: list[dict[str, Any]], lost: ResponseLost
    ) -> Handle | None:
        """A create call's answer was lost: look up what the step meant to create, by name, and
        re-attach to it (never send the call a second time when it has taken effect)."""
        self.bus.emit("step.progress", key, note=f"{lost}; looking for what it created, by name")
        found, _ = find_intended(
            ctx.aws,
            [(key, t) for t in targets],
            run_id=self.prepared.run_id,
            drill=self.prepared.mode == "drill",
        )
        handle = action.adopt(ctx, [r for _, r in found]) if found else None
        if handle is not None:
            self.bus.emit("step.progress", key, note="re-attached to what the lost call created")
        return handle

    def _watch(self, key: str, action: Action, ctx: StepContext, handle: Handle, deadline: float) -> Status:
        """Poll until done, failed, timed out or interrupted."""
        rec = self.records[key]
        estimate = self.prepared.steps[key].estimate.total_seconds()
        journaled = json.dumps(plain(handle), sort_keys=True, default=str)
        interval = self.options.poll_initial
        cap = min(self.options.poll_max, max(15.0, estimate / 15))
        last_note = ""
        try:
            while True:
                try:
                    poll: Poll = self.call(key, "poll", lambda: action.poll(ctx, handle), deadline)
                finally:  # a poll may create things (cluster instances): journal them even if it raises
                    self.records.note_resources(key, handle)
                    journaled = self._journal_handle(key, handle, journaled)
                if poll.failed:
                    rec.error = poll.failed
                    return "failed"
                fault = self.options.faults.get(key)
                if fault is not None and fault.fault == "timeout":
                    rec.error = f"injected fault: {fault.describe()} (fault rehearsal)"
                    action.interrupt(ctx, handle)
                    return "failed"
                if poll.not_verified:
                    rec.reason = poll.not_verified
                    return "unverified"
                if poll.done:
                    rec.outputs = dict(self.call(key, "result", lambda: action.result(ctx, handle), deadline))
                    self.records.note_resources(key, handle)
                    return "succeeded"
                if poll.note and poll.note != last_note:
                    self.bus.emit("step.progress", key, note=poll.note)
                    last_note = poll.note
                remaining = deadline - self.clock()
                if remaining <= 0:
                    rec.error = (
                        f"timed out after {humanize(self.prepared.steps[key].timeout.total_seconds())}"
                    )
                    return "failed"
                wait = poll.retry_after if poll.retry_after is not None else interval
                if poll.retry_after is None:
                    interval = min(interval * self.options.poll_factor, cap)
                if self.stop.wait(min(wait, remaining)) or self.stop.soft.is_set():
                    # The job was started and its handle is in the journal: undo, cleanup or
                    # `drplan resume` take it from here.
                    rec.reason = "interrupted while running; its job may still be running (see the journal)"
                    action.interrupt(ctx, handle)
                    return "interrupted"
        except Interrupted:
            action.interrupt(ctx, handle)
            rec.reason = "interrupted while waiting out throttling"
            return "interrupted"

    def call(
        self, key: str, what: str, fn: Callable[[], Any], deadline: float, *, undoing: bool = False
    ) -> Any:
        """Call an action method, waiting out throttling and transient errors until the deadline.
        While ``undoing``, only a hard stop cuts the waiting short (cleanup goes on after a first
        signal), and an endpoint that cannot be reached at all for :data:`UNREACHABLE_GIVE_UP`
        seconds ends the waiting: what remains is listed for ``drplan cleanup RUN_ID``."""
        delay = self.options.backoff_base
        while True:
            if undoing and self.reachability.down_for() > UNREACHABLE_GIVE_UP:
                # Every call has found AWS unreachable for that long: do not spend botocore's own
                # retries (seconds each) on one more; what remains is for drplan cleanup RUN_ID.
                raise CallTimeout(
                    f"{what}: AWS could not be reached for {UNREACHABLE_GIVE_UP:.0f}s; "
                    "retry later with drplan cleanup RUN_ID"
                )
            try:
                answer = fn()
                self.reachability.answered()
                return answer
            except Exception as exc:
                if not is_retryable(exc):
                    self.reachability.answered()
                    raise
                wait = jitter(delay)
                if is_unreachable(exc):
                    down_for = self.reachability.unreachable()
                    if undoing and down_for > UNREACHABLE_GIVE_UP:
                        raise CallTimeout(
                            f"{what}: AWS could not be reached for {UNREACHABLE_GIVE_UP:.0f}s "
                            f"({describe_error(exc)}); retry later with drplan cleanup RUN_ID"
                        ) from exc
                    if undoing:  # look again when the give-up is due, not a whole back-off later
                        wait = min(wait, max(0.5, UNREACHABLE_GIVE_UP - down_for + 0.1))
                else:
                    self.reachability.answered()
                if self.clock() + wait >= deadline:
                    raise CallTimeout(
                        f"{what}: still failing at the deadline ({describe_error(exc)})"
                    ) from exc
                self.bus.emit(
                    "step.throttled", key, call=what, error=describe_error(exc), wait=round(wait, 3)
                )
                stopped = self.stop.wait_hard(wait) if undoing else self.stop.wait(wait)
                if stopped or self.stop.hard.is_set() or (self.stop.soft.is_set() and not undoing):
                    raise Interrupted from exc
                delay = min(delay * 2, self.options.backoff_max)

    def _journal_handle(self, key: str, handle: Handle, last: str) -> str:
        """Journal the handle again when a poll changed it (version ids written, attachments...)."""
        now = json.dumps(plain(handle), sort_keys=True, default=str)
        if now != last:
            self.bus.emit("step.handle", key, handle=plain(handle))
        return now


def _crash() -> None:
    """Fault rehearsal of losing the orchestrator: die as ``kill -9`` or a lost machine would, with
    no cleanup, no evidence and no ``run.finished``. The step's start is journaled (the journal
    syncs each line), its AWS job runs on; ``drplan resume`` re-attaches to it."""
    os.kill(os.getpid(), signal.SIGKILL)


class InjectedThrottling(Exception):
    """What AWS raises when it throttles, as botocore shapes it: a retryable ClientError look-alike."""

    def __init__(self) -> None:
        super().__init__("Rate exceeded (injected fault)")
        self.response = {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded (injected fault)"}
        }
        self.operation_name = "injected"


def _throttled(call: Callable[[StepContext], Handle], times: int) -> Callable[[StepContext], Handle]:
    """``call``, throttled the first ``times`` times it is made."""
    left = [times]

    def throttled(ctx: StepContext) -> Handle:
        if left[0] > 0:
            left[0] -= 1
            raise InjectedThrottling()
        return call(ctx)

    return throttled


def referenced_steps(params: Any) -> list[str]:
    """The steps whose outputs ``params`` refer to (``service.step``), in order of appearance."""
    if isinstance(params, Mapping):
        return [k for v in params.values() for k in referenced_steps(v)]
    if isinstance(params, list):
        return [k for v in params for k in referenced_steps(v)]
    if not isinstance(params, str) or "${" not in params:
        return []
    found = (REFERENCE_PARTS.match(m.group(1)) for m in REFERENCE.finditer(params))
    return [f"{parts[1]}.{parts[2]}" for parts in found if parts]


def resolve(
    params: Any,
    outputs: Mapping[str, Mapping[str, Any]],
    *,
    strict: bool = True,
    secrets: Secrets | None = None,
) -> Any:
    """Replace ``${service.step.output}`` with values from steps that succeeded, and secret
    references (``${env:NAME}``, ``${ssm:NAME}``, ``${secretsmanager:ID}``) with their values when
    ``secrets`` is given (left as written otherwise: a dry run or preflight never reads secrets).

    A string that is exactly one reference takes the output's value as is (a port stays a number);
    references inside longer strings are substituted as text.
    """
    if isinstance(params, Mapping):
        return {k: resolve(v, outputs, strict=strict, secrets=secrets) for k, v in params.items()}
    if isinstance(params, list):
        return [resolve(v, outputs, strict=strict, secrets=secrets) for v in params]
    if not isinstance(params, str) or "${" not in params:
        return params

    def lookup(expr: str) -> Any:
        if is_secret_reference(expr):
            if secrets is None:
                return "${" + expr + "}"
            try:
                return secrets.resolve(expr)
            except SecretMissing as exc:
                raise StepFailed(expr, str(exc)) from exc
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
