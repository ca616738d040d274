"""Building Amazon States Language by hand, safely: unique state names, scopes, and parameter values.

Every fragment of the exported state machine is built here in continuation-passing style: a
builder is told the name of the state to go to next and returns the name of its first state.
Loops reserve a name before the state exists. ASL has no variables that cross a Parallel branch, so
everything a later state needs travels in the state's JSON document:

- ``$.run``: the run's id, creation time and execution id (set once, by the first states);
- ``$.s.<sid>``: the record of each finished step (``status``, ``out`` with its outputs, ``error``);
- ``$.w``: scratch space of the step being run, never merged between branches.

A step is known in the document by its *sid* (``s3_orders_db__restore``): JSONPath needs plain
identifiers, and plan keys hold ``-`` and ``.``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drplan.iam import RUN_ID_MARKER as IAM_RUN_ID_MARKER
from drplan.model import REFERENCE, REFERENCE_PARTS
from drplan.secrets import is_secret_reference

State = dict[str, Any]

#: Step Functions caps a state's name at 80 characters.
MAX_NAME = 80

#: The run id stands in for this marker while drplan's own code works out a drill's names (the
#: same 8 characters as a real run id, so names shortened to fit AWS's limits are shortened alike);
#: the state machine puts the execution's run id in its place. The IAM policy uses the same one.
RUN_ID_MARKER = IAM_RUN_ID_MARKER

#: Characters an intrinsic function's string literal would need escaped. moto's interpreter does
#: not parse the escapes, and AWS names never contain them: a dynamic value holding one is refused.
_INTRINSIC_SPECIAL = re.compile(r"['{}\\]")


class Untranslatable(Exception):
    """A plan, step or value the exporter cannot turn into an equivalent state machine."""


@dataclass(frozen=True)
class Path:
    """A value computed when the state runs: a JSONPath or an intrinsic function (a ``.$`` field)."""

    expr: str


class Names:
    """State names, unique in the whole machine and within Step Functions' 80 characters."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def new(self, label: str) -> str:
        base = re.sub(r"\s+", " ", label).strip()[:MAX_NAME] or "state"
        name, n = base, 1
        while name in self._used:
            n += 1
            tail = f" #{n}"
            name = base[: MAX_NAME - len(tail)] + tail
        self._used.add(name)
        return name


@dataclass
class Scope:
    """One ``States`` object: the machine's, or a Parallel branch's. ``names`` is shared by all."""

    names: Names
    states: dict[str, State] = field(default_factory=dict)

    def reserve(self, label: str) -> str:
        """A name for a state added later with :meth:`put` (loops jump back to it)."""
        return self.names.new(label)

    def put(self, name: str, state: State) -> str:
        self.states[name] = state
        return name

    def add(self, label: str, state: State) -> str:
        return self.put(self.reserve(label), state)

    def branch(self) -> Scope:
        return Scope(self.names)


#: Where a state's ``Comment`` tells a follower (``drplan start``, :mod:`drplan.stepfunctions.history`)
#: what the state marks in a step's life: ``drplan:step KEY`` (the step starts), ``drplan:record
#: KEY`` (its outcome is written), ``drplan:attempt KEY``, ``drplan:undo KEY`` and ``drplan:undone
#: KEY`` (a drill's cleanup of the step), ``drplan:approval KEY`` (a manual step waits for its
#: approval), ``drplan:try KEY`` (a check's try has answered), ``drplan:kept`` and
#: ``drplan:cleanup-stopped``.
ROLE_PREFIX = "drplan:"


def role(state: State, kind: str, key: str | None = None) -> State:
    """``state`` with the ``Comment`` that names its role for followers of the execution's history."""
    return {"Comment": f"{ROLE_PREFIX}{kind}" + (f" {key}" if key is not None else ""), **state}


def goto(state: State, then: str | None) -> State:
    """``state`` continuing at ``then``, or ending its scope when ``then`` is None."""
    return {**state, "Next": then} if then is not None else {**state, "End": True}


def machine(scope: Scope, start: str, comment: str | None = None) -> dict[str, Any]:
    """A ``States`` object with its ``StartAt`` (a whole definition or a Parallel branch)."""
    out: dict[str, Any] = {"StartAt": start, "States": scope.states}
    if comment:
        out = {"Comment": comment, **out}
    return out


# --- values: plan parameters into payload templates ------------------------------------------------


@dataclass(frozen=True)
class Values:
    """How a plan value becomes an ASL value: where step outputs and the run id are found."""

    sids: Mapping[str, str]  # step key -> sid

    def of(self, value: Any) -> Any:
        """``value`` as it goes into a payload template: a literal, a :class:`Path`, or (objects and
        lists) a template whose dynamic members are ``.$`` fields."""
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, Mapping):
            return template({str(k): self.of(v) for k, v in value.items()})
        if isinstance(value, list):
            items = [self.of(v) for v in value]
            if not any(isinstance(i, Path) for i in items):
                return items
            if all(isinstance(i, Path) or _scalar(i) for i in items):
                return Path(f"States.Array({', '.join(argument(i) for i in items)})")
            raise Untranslatable("a list mixing computed values and objects")
        return value

    def string(self, text: str) -> str | Path:
        """A string with ``${service.step.output}`` references or the run-id marker, as the engine's
        resolver fills it in: a whole reference keeps the output's type, others become text."""
        if "${" not in text and RUN_ID_MARKER not in text:
            return text
        whole = re.fullmatch(r"\$\{([^}]*)\}", text)
        if whole:
            return Path(self.reference(whole.group(1)))
        if text == RUN_ID_MARKER:
            return Path("$.run.id")
        parts: list[str] = []
        args: list[str] = []
        for piece in re.split(rf"(\$\{{[^}}]*\}}|{RUN_ID_MARKER})", text):
            if not piece:
                continue
            if piece == RUN_ID_MARKER:
                parts.append("{}")
                args.append("$.run.id")
            elif REFERENCE.fullmatch(piece):
                parts.append("{}")
                args.append(self.reference(piece[2:-1]))
            else:
                if _INTRINSIC_SPECIAL.search(piece):
                    raise Untranslatable(f"{text!r} mixes computed values with quotes, braces or backslashes")
                parts.append(piece)
        return Path(f"States.Format('{''.join(parts)}', {', '.join(args)})")

    def reference(self, expr: str) -> str:
        if is_secret_reference(expr):
            raise Untranslatable(f"`${{{expr}}}` reads a secret, which the exporter cannot translate yet")
        parts = REFERENCE_PARTS.match(expr)
        if not parts:
            raise Untranslatable(f"`${{{expr}}}` is not a reference of the form ${{service.step.output}}")
        key = f"{parts[1]}.{parts[2]}"
        if key not in self.sids:
            raise Untranslatable(f"`${{{expr}}}` names step {key}, which does not run in this mode")
        return f"$.s.{self.sids[key]}.out.{parts[3]}"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def argument(value: Any) -> str:
    """One argument of an intrinsic function: a path, or a literal (strings single-quoted)."""
    if isinstance(value, Path):
        return value.expr
    if isinstance(value, str):
        if _INTRINSIC_SPECIAL.search(value):
            raise Untranslatable(f"{value!r} holds quotes, braces or backslashes")
        return f"'{value}'"
    return json.dumps(value)


def template(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A payload template: :class:`Path` values become ``.$`` fields, nested objects too."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, Path):
            out[f"{key}.$"] = value.expr
        elif isinstance(value, Mapping):
            out[key] = template(value)
        elif isinstance(value, list):
            out[key] = [template(v) if isinstance(v, Mapping) else v for v in value]
        else:
            out[key] = value
    return out


def merge_expression(base: str, parts: Iterable[str]) -> str:
    """``States.JsonMerge`` of ``base`` with each of ``parts`` (later ones win), as a balanced tree so
    the nesting stays shallow for wide Parallel states."""
    items = [base, *parts]
    while len(items) > 1:
        paired = [
            f"States.JsonMerge({items[i]}, {items[i + 1]}, false)" if i + 1 < len(items) else items[i]
            for i in range(0, len(items), 2)
        ]
        items = paired
    return items[0]
