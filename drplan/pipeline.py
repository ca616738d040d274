"""The validation pipeline: read -> schema -> model -> checks, and loading a plan to run it.

``validate_file`` never raises for a bad plan: every problem is a located diagnostic.
``load_plan`` is what commands that *use* a plan call: it raises :class:`PlanInvalid` carrying
the same diagnostics when there are errors.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from drplan.diagnostics import Diagnostic, Severity
from drplan.document import Document, read_document
from drplan.errors import PlanInvalid
from drplan.model import Plan, build_plan

if TYPE_CHECKING:
    from drplan.graph import Analysis, RecoveryGraph


@dataclass(frozen=True)
class Compiled:
    """What validation built and commands that show the plan reuse: the real recovery's graph and
    its analysis (within the default limits). Compiling and analysing a 10,000-service plan costs
    seconds; ``plan``, ``docs`` and ``graph`` should not pay for it twice."""

    recover_graph: RecoveryGraph
    recover_analysis: Analysis | None  # None when the graph has cycles (nothing to analyse)


@dataclass
class ValidationResult:
    document: Document
    plan: Plan | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    compiled: Compiled | None = None

    @property
    def path(self) -> str:
        return self.document.path

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]

    def ok(self, *, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)


def validate_document(document: Document) -> ValidationResult:
    from drplan.actions import registry
    from drplan.checks import CheckContext, check_plan
    from drplan.schema import validate_schema

    result = ValidationResult(document, None, list(document.diagnostics))
    if not document.parsed:  # not JSON at all: the reading findings say why
        return result
    schema_findings = validate_schema(document.data, document.path, integral_floats=document.integral_floats)
    if schema_findings:
        # Semantic checks need the shapes the schema guarantees: fix the structure first.
        result.diagnostics.extend(schema_findings)
    elif not document.diagnostics:
        result.plan = build_plan(document.data, path=document.path, sha256=document.sha256)
        ctx = CheckContext(result.plan, registry(), document.path)
        result.diagnostics.extend(check_plan(ctx))
        if ctx.graph_is_sound and "recover_graph" in ctx.__dict__:  # built by the checks: keep it
            analysis = ctx.__dict__.get("recover_analysis")
            result.compiled = Compiled(ctx.recover_graph, analysis)
    result.diagnostics = sorted((document.locate(d) for d in result.diagnostics), key=Diagnostic.sort_key)
    return result


def validate_file(path: str | Path, *, display_path: str | None = None) -> ValidationResult:
    # Parsing a large plan allocates hundreds of thousands of small objects; the cyclic garbage
    # collector would walk them repeatedly for nothing (none of them form cycles): ~2x faster.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return validate_document(read_document(path, display_path=display_path))
    finally:
        if gc_was_enabled:
            # The plan's objects usually live until the process ends: keep the next collection from
            # walking them all again (refcounting still frees them; only cycles among them would stay).
            gc.freeze()
            gc.enable()


#: Findings that commands *showing* a plan (plan, docs, graph) report rather than refuse: a plan
#: predicted to miss an objective is exactly what a reviewer needs to see drawn and dry-run.
OBJECTIVE_CODES = frozenset({"DR301", "DR302"})


def load_plan(
    path: str | Path, *, display_path: str | None = None, allow: frozenset[str] = frozenset()
) -> tuple[Plan, ValidationResult]:
    """A valid plan (warnings, and errors whose codes are in ``allow``, are accepted) and its
    validation result; raises PlanInvalid carrying every finding otherwise. ``-`` reads the plan
    from standard input, as ``drplan validate -`` does."""
    if str(path) == "-":
        import sys

        result = validate_document(read_document(display_path or "<stdin>", data=sys.stdin.buffer.read()))
    else:
        result = validate_file(path, display_path=display_path)
    if result.plan is None or any(d.code not in allow for d in result.errors):
        count = len(result.errors)
        raise PlanInvalid(
            f"{result.path}: the plan has {count} error{'s' if count != 1 else ''}", result.diagnostics
        )
    return result.plan, result
