"""moto 5.2.1's Step Functions interpreter, given a JSONata evaluator.

moto's interpreter (LocalStack's) parses JSONata states but evaluates their expressions through a
JVM bridge to dashjoin's jsonata-java that it does not ship: every JSONata expression fails. The
evaluator is a module-level hook (``jsonata._eval_jsonata``), filled in here with jsonata-python, a
line-by-line port of the same jsonata-java, so the states drplan writes in JSONata (date arithmetic
for ``max_age``, which JSONPath lacks) run in the tests as in Step Functions.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

# jsonata-python raises the interpreter's recursion limit to 10,000 when it is imported (as deep
# as JavaScript's); drplan's reader of plans reports JSON nested past Python's own limit (DR001),
# which the tests check in the same process: the limit is put back.
_limit = sys.getrecursionlimit()
import jsonata  # noqa: E402

sys.setrecursionlimit(_limit)


def _evaluate(expression: str) -> Any:
    from moto.stepfunctions.parser.asl.jsonata.jsonata import JSONataException

    try:
        result = jsonata.Jsonata(expression).evaluate(None)
    except Exception as exc:  # the interpreter turns this into States.QueryEvaluationError
        raise JSONataException("UNKNOWN", str(exc)) from exc
    # As the bridge does: through JSON, so the value is plain Python (and undefined is None).
    return None if result is None else json.loads(json.dumps(result))


@contextlib.contextmanager
def moto_evaluates_jsonata() -> Iterator[None]:
    from moto.stepfunctions.parser.asl.jsonata import jsonata as hook

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(hook, "_eval_jsonata", _evaluate)
        yield
    finally:
        patch.undo()
