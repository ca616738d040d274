"""The validation pipeline: read -> schema -> model -> checks, and loading a plan to run it.

``validate_file`` never raises for a bad plan: every problem is a located diagnostic.
``load_plan`` is what commands that *use* a plan call: it raises :class:`PlanInvalid` carrying
the same diagnostics when there are errors.
"""

from __future__ import annotations

import gc
import json
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
        result.diagnostics.extend(schema_findings)
        if not document.diagnostics:
            result.diagnostics.extend(_check_sound_services(document, schema_findings))
    elif not document.diagnostics:
        result.plan = build_plan(document.data, path=document.path, sha256=document.sha256)
        ctx = CheckContext(result.plan, registry(), document.path)
        result.diagnostics.extend(check_plan(ctx))
        if ctx.graph_is_sound and "recover_graph" in ctx.__dict__:  # built by the checks: keep it
            analysis = ctx.__dict__.get("recover_analysis")
            result.compiled = Compiled(ctx.recover_graph, analysis)
    result.diagnostics = sorted((document.locate(d) for d in result.diagnostics), key=Diagnostic.sort_key)
    return result


#: Findings that need the whole plan: an objective predicted on part of it, and "nothing depends on
#: this service" when its dependents were set aside.
WHOLE_PLAN_CODES = frozenset({"DR301", "DR302", "DR304"})


def _check_sound_services(document: Document, schema_findings: list[Diagnostic]) -> list[Diagnostic]:
    """The graph checks of the services the schema errors leave sound, so one broken service does
    not hide the findings of the rest of the plan.

    Semantic checks need the shapes the schema guarantees, so they run on a copy of the plan
    without the services that have schema errors and without every service that refers to one of
    those (``depends_on``, ``after``, ``${...}``): what is checked is then complete in itself and a
    finding cannot come from a missing piece. Only findings inside the services checked are kept,
    without the ones that need the whole plan (:data:`WHOLE_PLAN_CODES`). A schema error outside
    the services (the objectives, the drill settings...) leaves nothing sound to check.
    """
    from drplan.actions import registry
    from drplan.checks import CheckContext, check_plan
    from drplan.schema import validate_schema

    data = document.data
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return []
    broken: set[str] = set()
    for finding in schema_findings:
        name = _service_of(finding.pointer)
        if name is None or name not in services:
            return []
        broken.add(name)
    texts = {name: json.dumps(body) for name, body in services.items()}
    changed = True
    while changed:  # every service that refers to a broken one, directly or through another
        changed = False
        for name, text in texts.items():
            if name not in broken and any(_refers_to(text, other) for other in broken):
                broken.add(name)
                changed = True
    sound = {name: body for name, body in services.items() if name not in broken}
    if not sound:
        return []
    part = {**data, "services": sound}
    if validate_schema(part, document.path, integral_floats=document.integral_floats):
        return []  # e.g. a minimum number of services: nothing to check on its own
    plan = build_plan(part, path=document.path, sha256=document.sha256)
    found = check_plan(CheckContext(plan, registry(), document.path))
    return [d for d in found if d.code not in WHOLE_PLAN_CODES and _service_of(d.pointer) in sound]


def _service_of(pointer: str | None) -> str | None:
    """The service a JSON pointer lies in (``/services/db/steps/0`` -> ``db``), or None."""
    if not pointer or not pointer.startswith("/services/"):
        return None
    token = pointer[len("/services/") :].split("/", 1)[0]
    return token.replace("~1", "/").replace("~0", "~")


def _refers_to(service_json: str, name: str) -> bool:
    """Whether a service's JSON text names the service ``name``: in ``depends_on`` ("name"), in
    ``after`` ("name.step") or in a reference (${name.step.output}). Over-matching (a parameter
    value that happens to equal the name) only checks less."""
    quoted = json.dumps(name)[1:-1]
    return any(
        needle in service_json for needle in (f'"{quoted}"', f'"{quoted}.', f"${{{quoted}.", f"${{{quoted}}}")
    )


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
