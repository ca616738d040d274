"""moto 5.2.1's Step Functions interpreter, given an ``aws-sdk`` answer's timestamps as text.

Step Functions hands an ``aws-sdk`` answer on as JSON, its timestamps ISO 8601 text; moto 5.2.1
hands on boto3's datetimes, which its own Choice states cannot compare (a
``TimestampGreaterThanPath`` of two datetimes is false), so "the newest snapshot" would be the
first listed. Here the answers are text, at the second precision moto's comparison parses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest


def _as_text(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        moment = value.astimezone(dt.timezone.utc) if value.tzinfo else value
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: _as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    return value


@contextlib.contextmanager
def moto_passes_timestamps_as_text() -> Iterator[None]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    original = StateTaskServiceAwsSdk._eval_service_task

    def evaluated(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original(self, env, *args, **kwargs)
        env.stack.append(_as_text(env.stack.pop()))

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(StateTaskServiceAwsSdk, "_eval_service_task", evaluated)
        yield
    finally:
        patch.undo()
