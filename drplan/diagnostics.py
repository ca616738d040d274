"""Findings about a plan: codes, severities, positions.

A :class:`Diagnostic` is created with a JSON pointer only; the reader's source map turns the
pointer into a 1-based ``line:col`` range late (:meth:`drplan.document.Document.locate`), the
way cfn-lint does. Every code is registered in :data:`RULES` so that the SARIF writer, the docs
and ``drplan validate --format json`` all describe the same, stable set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, order=True)
class Position:
    """A place in a file; ``line`` and ``column`` are 1-based, ``offset`` is 0-based characters."""

    line: int
    column: int
    offset: int = 0


@dataclass(frozen=True)
class Span:
    start: Position
    end: Position


@dataclass(frozen=True)
class Related:
    """A second place that explains a finding (e.g. one edge of a dependency cycle)."""

    message: str
    pointer: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    file: str
    pointer: str | None = None  # RFC 6901; None for file-level findings that have no pointer
    span: Span | None = None
    related: tuple[Related, ...] = ()
    detail: tuple[str, ...] = field(default=(), compare=False)
    at_key: bool = False  # locate at the member's key, not its value (an unknown or badly named key)
    fragment: str | None = None  # narrow the span to this text inside the value (a `${...}` reference)

    @property
    def line(self) -> int:
        return self.span.start.line if self.span else 1

    @property
    def column(self) -> int:
        return self.span.start.column if self.span else 1

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, self.column, self.code, self.message)


@dataclass(frozen=True)
class Rule:
    code: str
    name: str  # a short kebab-case id, used as the SARIF rule name
    severity: Severity  # the default severity
    summary: str  # one sentence, shown in docs and SARIF's shortDescription


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {rule.code: rule for rule in rules}


E, W = Severity.ERROR, Severity.WARNING

#: Every finding drplan can report. Codes are stable: add new ones, never renumber.
RULES: dict[str, Rule] = _rules(
    # DR0xx: reading the file (and drplan itself)
    Rule(
        "DR000",
        "internal-error",
        E,
        "drplan failed while checking the file: a drplan bug, not a problem of the plan.",
    ),
    Rule("DR001", "malformed-json", E, "The file is not well-formed JSON."),
    Rule(
        "DR002", "duplicate-key", E, "An object has the same key twice; JSON readers silently keep only one."
    ),
    Rule("DR003", "bad-encoding", E, "The file is not UTF-8 text."),
    Rule("DR004", "unreadable-file", E, "The file cannot be read."),
    # DR1xx: the JSON Schema
    Rule("DR100", "schema", E, "The plan does not match the plan schema."),
    Rule("DR101", "missing-property", E, "A required property is missing."),
    Rule("DR102", "unknown-property", E, "A property is not part of the plan format."),
    Rule("DR103", "wrong-type", E, "A value has the wrong type."),
    Rule("DR104", "bad-value", E, "A value is not one of the allowed values or has the wrong form."),
    Rule("DR105", "out-of-range", E, "A number, string or list is too small or too large."),
    Rule("DR106", "format-version", E, "The plan declares a format version this drplan does not read."),
    # DR2xx: the dependency graph and references
    Rule("DR201", "unknown-service", E, "`depends_on` names a service the plan does not define."),
    Rule("DR202", "unknown-action", E, "A step `uses` an action drplan does not know."),
    Rule("DR203", "duplicate-step", E, "Two steps of one service have the same id."),
    Rule(
        "DR204",
        "unknown-step-reference",
        E,
        "A `${service.step.output}` reference names a step that does not exist.",
    ),
    Rule("DR205", "unknown-output", E, "A reference names an output the step's action does not produce."),
    Rule(
        "DR206",
        "undeclared-dependency",
        W,
        "A reference uses a step that is not upstream through `depends_on` or `after`.",
    ),
    Rule(
        "DR207",
        "dependency-cycle",
        E,
        "Services or steps depend on each other in a cycle, so nothing in it can start.",
    ),
    Rule("DR208", "unknown-after", E, "`after` names a step that does not exist."),
    Rule("DR209", "bad-reference", E, "A `${...}` expression is not of the form `${service.step.output}`."),
    Rule(
        "DR210",
        "commands-not-allowed",
        E,
        "A `command` step is used but the plan does not set `allow_commands`.",
    ),
    Rule(
        "DR211", "bad-parameters", E, "A step's parameters do not match its action (including `drill_with`)."
    ),
    Rule(
        "DR212",
        "bad-aws-name",
        E,
        "A name the step would give an AWS resource breaks AWS's naming rules (in recoveries, or once a drill adds its suffix).",
    ),
    Rule(
        "DR214",
        "unknown-fault-step",
        E,
        "`drill.faults` names a step that does not run in drills.",
    ),
    Rule(
        "DR213",
        "name-clash",
        E,
        "Two steps would create AWS resources with the same name in the same run.",
    ),
    Rule(
        "DR215",
        "unknown-region-name",
        E,
        "`${regions.NAME}` names a Region the plan's `regions` does not define.",
    ),
    Rule(
        "DR216",
        "conflicting-external-id",
        E,
        "Two steps assume the same role with different `external_id`s; a role's trust policy requires one.",
    ),
    # DR3xx: objectives and operability
    Rule(
        "DR301",
        "service-rto-missed",
        E,
        "A service's predicted RTO (critical path of estimates) is over its objective.",
    ),
    Rule(
        "DR302",
        "plan-rto-missed",
        E,
        "The plan's predicted RTO (critical path of estimates) is over its objective.",
    ),
    Rule(
        "DR303",
        "missing-estimate",
        W,
        "A step has no `estimate`, so the predicted RTO uses the action's default.",
    ),
    Rule(
        "DR304",
        "unverified-service",
        W,
        "Nothing depends on a service and it has no check step, so nothing proves it is back.",
    ),
    Rule(
        "DR305",
        "drill-needs-recover-step",
        W,
        "A step limited to real recoveries is needed by a step that runs in drills.",
    ),
    Rule("DR306", "timeout-below-estimate", W, "A step's `timeout` is shorter than its `estimate`."),
    Rule(
        "DR307",
        "no-objective",
        W,
        "A service has no RTO objective (its own or the plan's), so nothing is checked.",
    ),
    Rule(
        "DR308",
        "max-age-without-rpo",
        E,
        "A step's `max_age` is `rpo`, but no RPO objective applies to its service.",
    ),
    Rule(
        "DR309",
        "recover-needs-drill-step",
        E,
        "A step that runs in real recoveries needs a step limited to drills.",
    ),
    Rule(
        "DR310",
        "restore-time-in-future",
        W,
        "A point in time to restore to is in the future, outside every restorable window.",
    ),
)


def diagnostic(code: str, message: str, file: str, pointer: str | None, **extra: object) -> Diagnostic:
    """Make a diagnostic with the rule's default severity (``severity=`` overrides it)."""
    severity = extra.pop("severity", None) or RULES[code].severity
    return Diagnostic(code=code, severity=severity, message=message, file=file, pointer=pointer, **extra)  # type: ignore[arg-type]


def counts(diagnostics: list[Diagnostic]) -> dict[str, int]:
    out = {"error": 0, "warning": 0, "note": 0}
    for d in diagnostics:
        out[d.severity.value] += 1
    return out


#: Values echoed in messages are cut to this many characters (plus "…" and the length).
SHOWN_LENGTH = 60


def shorten(text: str, limit: int = SHOWN_LENGTH) -> str:
    """``text`` as a message quotes it: values longer than ``limit`` characters are cut, with the
    length said, so a 10,000-character id does not flood the terminal (``aaaa…(10000 characters)``)."""
    if len(text) <= limit + 20:
        return text
    return f"{text[:limit]}…({len(text)} characters)"


def escape_pointer_token(token: str) -> str:
    """RFC 6901: ``~`` becomes ``~0`` and ``/`` becomes ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def pointer_tokens(pointer: str) -> list[str]:
    if not pointer:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def join_pointer(base: str, *tokens: object) -> str:
    return base + "".join("/" + escape_pointer_token(str(t)) for t in tokens)
