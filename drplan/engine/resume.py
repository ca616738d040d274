"""Carry a run on from its journal after its process died (``drplan resume RUN_ID``).

Before anything starts, the journal is reconciled with AWS, step by step:

- a step that **succeeded** is not run again: its outputs (for references), handle and resources
  are taken from the journal;
- a step that **failed** stays failed (its dependents stay skipped), as it would have;
- a step that **started** (its handle is journaled: the AWS job id, the names it created) is
  re-attached: polled from that handle, never started again;
- a step that had only **journaled its intent** (the process died during the create call) is looked
  up by the names it meant to create; what exists and is the run's own is adopted
  (:meth:`~drplan.actions.base.Action.adopt`), otherwise the step starts again, with the same
  idempotency token, so AWS hands back the job of the first call where the API has tokens;
- every other step runs as it would have.

A drill whose cleanup had already begun is not run again: its cleanup is finished instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drplan.aws import AwsAccess
from drplan.engine.journal import JournalState
from drplan.engine.prepare import Prepared
from drplan.engine.records import Records
from drplan.engine.sweep import find_intended
from drplan.engine.worker import StepContexts, resolve
from drplan.resources import Resource


@dataclass
class CarriedOver:
    """What a resumed run starts from."""

    handles: dict[str, dict[str, Any]] = field(default_factory=dict)  # steps to re-attach
    failed: list[str] = field(default_factory=list)  # steps that failed before: they stay failed
    adopted: list[str] = field(default_factory=list)  # found by name, re-attached
    started: float | None = None  # when the run first started (RTO is measured from it)
    cleanup_begun: bool = False  # a drill's cleanup had begun: finish it, run nothing


def carry_over(
    state: JournalState, prepared: Prepared, records: Records, contexts: StepContexts, aws: AwsAccess
) -> CarriedOver:
    """Fill ``records`` from the journal; what the runner must re-attach, and what stays failed."""
    out = CarriedOver()
    started = state.header.get("started")
    if isinstance(started, str):
        out.started = datetime.fromisoformat(started).timestamp()
    out.cleanup_begun = state.cleanup_begun
    for step, memo in state.memos.items():
        contexts.memos.setdefault(step, {}).update(memo)
    for step, resource in state.created:
        if step in records.by_key and (resource.kind, resource.id) not in state.removed:
            records[step].resources.append(resource)
    for key, rec in records.by_key.items():
        status = state.status.get(key)
        rec.attempts = state.attempts.get(key, 0)
        rec.resumed = status is not None or key in state.handles
        if status == "succeeded":
            records.succeeded(key, state.outputs.get(key, {}))
            rec.handle = dict(state.handles.get(key, {}))
            rec.started = rec.finished = out.started
        elif status == "failed":
            out.failed.append(key)
            rec.handle = dict(state.handles.get(key, {}))
        elif key in state.handles:
            out.handles[key] = dict(state.handles[key])
    pending = [(s, t) for s, t in state.unmatched_intents() if s in records.by_key and s not in out.handles]
    pending = [(s, t) for s, t in pending if records[s].status != "succeeded"]
    if pending:
        found, _ = find_intended(aws, pending, run_id=prepared.run_id, drill=prepared.mode == "drill")
        by_step: dict[str, list[Resource]] = {}
        for step, resource in found:
            by_step.setdefault(step, []).append(resource)
        for key, resources in by_step.items():
            prepared_step = prepared.steps[key]
            ctx = contexts.for_step(key, resolve(prepared_step.params, records.outputs(), strict=False))
            handle = prepared_step.action.adopt(ctx, resources)
            if handle is not None:
                out.handles[key] = handle
                out.adopted.append(key)
            else:
                records[key].resources.extend(r for r in resources if r not in records[key].resources)
    return out
