"""Semantic checks: what the schema cannot see. One small function per finding code.

Every check takes the :class:`CheckContext` and yields diagnostics located by JSON pointer; the
pipeline turns pointers into ``line:col`` afterwards. Checks run only on schema-valid plans, so
the shapes they read are guaranteed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property

from drplan.actions.base import Action
from drplan.diagnostics import Diagnostic, Related, diagnostic, join_pointer
from drplan.durations import humanize
from drplan.graph import Analysis, Cycle, RecoveryGraph, analyse, compile_graph, find_cycles, step_duration
from drplan.model import MODES, Mode, Plan, Step
from drplan.resources import KINDS, Target, name_problem, same_name_key


@dataclass
class CheckContext:
    plan: Plan
    actions: Mapping[str, Action]
    file: str

    @cached_property
    def graph(self) -> RecoveryGraph:
        return compile_graph(self.plan)

    @cached_property
    def recover_graph(self) -> RecoveryGraph:
        # The full graph is the recovery graph unless some step is drill-only or references
        # differ between modes; compiling a 10,000-service plan twice costs half a second.
        if not any(s.only == "drill" or s.drill_params for s in self.plan.steps()):
            return self.graph
        return compile_graph(self.plan, "recover")

    @cached_property
    def cycles(self) -> list[Cycle]:
        return find_cycles(self.graph)

    @cached_property
    def step_keys(self) -> set[str]:
        return {s.key for s in self.plan.steps()}

    @cached_property
    def graph_is_sound(self) -> bool:
        """False when the graph would be wrong: two steps of a service share an id (DR203), so
        they are one node, linked to itself. Graph checks would only report phantom cycles."""
        return len(self.step_keys) == sum(1 for _ in self.plan.steps())

    def diag(self, code: str, message: str, pointer: str | None, **extra: object) -> Diagnostic:
        return diagnostic(code, message, self.file, pointer, **extra)


Check = Callable[[CheckContext], Iterator[Diagnostic]]


def _did_you_mean(word: str, choices: object) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)  # type: ignore[call-overload]
    return f" (did you mean `{close[0]}`?)" if close else ""


def _where(step: Step) -> str:
    return f"step `{step.id}` of service `{step.service}`"


# --- DR2xx: names, references, graph ----------------------------------------------------------


def unknown_services(ctx: CheckContext) -> Iterator[Diagnostic]:
    for service in ctx.plan.services.values():
        for i, dep in enumerate(service.depends_on):
            if dep not in ctx.plan.services:
                yield ctx.diag(
                    "DR201",
                    f"service `{service.id}` depends on `{dep}`, which the plan does not define"
                    + _did_you_mean(dep, ctx.plan.services),
                    join_pointer(service.pointer, "depends_on", i),
                )


def unknown_actions(ctx: CheckContext) -> Iterator[Diagnostic]:
    for step in ctx.plan.steps():
        if step.uses not in ctx.actions:
            yield ctx.diag(
                "DR202",
                f"{_where(step)} uses `{step.uses}`, which is not a known action"
                + (_did_you_mean(step.uses, ctx.actions) or " (`drplan actions` lists them)"),
                join_pointer(step.pointer, "uses"),
            )


def duplicate_steps(ctx: CheckContext) -> Iterator[Diagnostic]:
    for service in ctx.plan.services.values():
        first: dict[str, Step] = {}
        for step in service.steps:
            if step.id in first:
                yield ctx.diag(
                    "DR203",
                    f"service `{service.id}` has two steps with id `{step.id}`; references and `after` "
                    "could not tell them apart",
                    join_pointer(step.pointer, "id"),
                    related=(Related("first step with this id", join_pointer(first[step.id].pointer, "id")),),
                )
            else:
                first[step.id] = step


def unknown_after(ctx: CheckContext) -> Iterator[Diagnostic]:
    for step in ctx.plan.steps():
        for i, key in enumerate(step.after_keys() or ()):
            if key not in ctx.step_keys:
                written = step.after[i]  # type: ignore[index]
                service = key.partition(".")[0]
                if "." not in written:  # `step` of the same service: suggest one of its steps
                    hint = _did_you_mean(written, [s.id for s in ctx.plan.services[step.service].steps])
                elif service in ctx.plan.services:
                    hint = _did_you_mean(key, {s.key for s in ctx.plan.services[service].steps})
                else:
                    hint = _did_you_mean(key, ctx.step_keys)
                yield ctx.diag(
                    "DR208",
                    f"{_where(step)} waits for `{written}`, which is not a step of the plan" + hint,
                    join_pointer(step.pointer, "after", i),
                )


def bad_references(ctx: CheckContext) -> Iterator[Diagnostic]:
    for step in ctx.plan.steps():
        for pointer, text in step.malformed_references():
            yield ctx.diag(
                "DR209",
                f"{_where(step)}: `{text}` is not a reference of the form `${{service.step.output}}`",
                pointer,
                fragment=text,
            )


def unknown_references(ctx: CheckContext) -> Iterator[Diagnostic]:
    for step in ctx.plan.steps():
        for ref in step.references():
            if ref.service not in ctx.plan.services:
                yield ctx.diag(
                    "DR204",
                    f"{_where(step)}: `{ref.text}` names service `{ref.service}`, which the plan does not define"
                    + _did_you_mean(ref.service, ctx.plan.services),
                    ref.pointer,
                    fragment=ref.text,
                )
                continue
            if ref.step_key not in ctx.step_keys:
                ids = [s.id for s in ctx.plan.services[ref.service].steps]
                yield ctx.diag(
                    "DR204",
                    f"{_where(step)}: `{ref.text}` names step `{ref.step}`, which service `{ref.service}` "
                    f"does not have" + _did_you_mean(ref.step, ids),
                    ref.pointer,
                    fragment=ref.text,
                )
                continue
            target = ctx.plan.step(ref.step_key)
            action = ctx.actions.get(target.uses)
            if action is None:
                continue  # DR202 already says the action is unknown
            outputs = action.declared_outputs(target.params)
            if ref.output not in outputs:
                names = ", ".join(f"`{o}`" for o in outputs) or "none"
                yield ctx.diag(
                    "DR205",
                    f"{_where(step)}: `{ref.text}` asks for output `{ref.output}`, but `{target.uses}` "
                    f"produces {names}" + _did_you_mean(ref.output, outputs),
                    ref.pointer,
                    fragment=ref.text,
                )


def cycles(ctx: CheckContext) -> Iterator[Diagnostic]:
    if not ctx.graph_is_sound:
        return
    for cycle in ctx.cycles:
        loop = " → ".join((*cycle.nodes, cycle.nodes[0]))
        what = "services depend on each other" if cycle.level == "service" else "steps wait for each other"
        related = tuple(
            Related(_edge_words(cycle.level, u, v, why.kind), why.pointer) for u, v, why in cycle.edges
        )
        first = cycle.edges[0][2].pointer
        yield ctx.diag(
            "DR207",
            f"dependency cycle: {what} in a loop, so none of them can start: {loop}",
            first,
            related=related,
        )


def _edge_words(level: str, upstream: str, downstream: str, kind: str) -> str:
    if level == "service":
        return f"`{downstream}` depends on `{upstream}`"
    verb = {"reference": "uses an output of", "after": "waits for (after)", "sequence": "follows"}.get(
        kind, "waits for"
    )
    return f"`{downstream}` {verb} `{upstream}`"


def undeclared_dependencies(ctx: CheckContext) -> Iterator[Diagnostic]:
    """A reference adds an edge; warn when nothing declared in the plan already orders the two."""
    if not ctx.graph_is_sound or ctx.cycles:
        return
    declared = _declared_order(ctx)
    for step in ctx.plan.steps():
        for ref in step.references():
            if ref.step_key == step.key or ref.step_key not in ctx.step_keys:
                continue
            if not declared(ref.step_key, step.key):
                if ref.service == step.service:
                    fix = f"add `{ref.step}` to the `after` of `{step.id}`"
                else:
                    fix = f"add `{ref.service}` to `depends_on` of `{step.service}`"
                    fix += f", or `{ref.step_key}` to `after`"
                yield ctx.diag(
                    "DR206",
                    f"{_where(step)} uses `{ref.text}`, but `{ref.step_key}` is not upstream of it through "
                    f"`depends_on` or `after`; drplan will wait for it, but say so in the plan ({fix})",
                    ref.pointer,
                    fragment=ref.text,
                )


def _declared_order(ctx: CheckContext) -> Callable[[str, str], bool]:
    """Is ``upstream`` before ``downstream`` without counting reference edges?"""
    import networkx as nx

    declared = nx.DiGraph()
    declared.add_nodes_from(ctx.graph.graph.nodes)
    declared.add_edges_from(
        (u, v) for u, v, why in ctx.graph.graph.edges(data="why") if any(w.kind != "reference" for w in why)
    )

    def before(upstream: str, downstream: str) -> bool:
        return bool(nx.has_path(declared, upstream, downstream))

    return before


def commands_allowed(ctx: CheckContext) -> Iterator[Diagnostic]:
    if ctx.plan.allow_commands:
        return
    for step in ctx.plan.steps():
        if step.uses == "command":
            yield ctx.diag(
                "DR210",
                f'{_where(step)} runs a local command, but the plan does not set `"allow_commands": true`',
                join_pointer(step.pointer, "uses"),
            )


def parameters(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Plugin actions' parameters, ``with`` merged with ``drill_with``, and regular expressions.

    The plan schema checks built-in actions' ``with``; what it cannot see is reported here: the
    parameters of actions from other packages, the parameters a drill really uses, and values
    that the schema marks ``"format": "regex"`` (neither validator checks formats).
    """
    from drplan.schema import action_schemas, validate_against

    builtin = action_schemas()
    for step in ctx.plan.steps():
        action = ctx.actions.get(step.uses)
        if action is None or action.params_schema is None:
            continue
        schema = action.params_schema
        if step.uses not in builtin:
            base = join_pointer(step.pointer, "with")
            for d in validate_against(step.params, schema, base, ctx.file, None, subject=False):
                yield ctx.diag("DR211", f"{_where(step)}: {d.message}", d.pointer)
        if step.drill_params:
            merged = step.params_for("drill")
            base = join_pointer(step.pointer, "drill_with")
            for d in validate_against(merged, schema, base, ctx.file, None, subject=False):
                yield ctx.diag(
                    "DR211", f"{_where(step)}, in drills (`with` + `drill_with`): {d.message}", d.pointer
                )
        yield from _bad_regexes(ctx, step, schema)


def _bad_regexes(ctx: CheckContext, step: Step, schema: Mapping[str, object]) -> Iterator[Diagnostic]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return
    for base, params in (("with", step.params), ("drill_with", step.drill_params or {})):
        for name, value in params.items():
            prop = properties.get(name)
            if not (isinstance(prop, Mapping) and prop.get("format") == "regex" and isinstance(value, str)):
                continue
            if "${" in value:
                continue  # references are resolved at run time; the result is checked then
            try:
                re.compile(value)
            except re.error as exc:
                yield ctx.diag(
                    "DR211",
                    f"{_where(step)}: `{base}.{name}` is not a valid regular expression: {exc}",
                    join_pointer(step.pointer, base, name),
                )


#: Stands for the run id when drill names are checked: as long as a real one (8 hex digits).
_SAMPLE_RUN_ID = "0a1b2c3d"
_RUN_ID_SHOWN = "<run-id>"


def _named_targets(ctx: CheckContext, step: Step, mode: Mode) -> list[tuple[Target, str]]:
    """(target, pointer of the parameter it comes from) of a step in ``mode``, with a drill's
    isolation applied exactly as a run applies it; names still holding a reference are left out."""
    action = ctx.actions.get(step.uses)
    if action is None or not step.runs_in(mode):
        return []
    params = step.params_for(mode)
    if mode == "drill":
        isolated = action.isolate(
            params, ctx.plan.drill.suffix(_SAMPLE_RUN_ID), redirected=step.drill_params is not None
        )
        if isolated is None:
            return []  # a drill skips the step
        params = isolated
    try:
        targets = action.targets(params)
    except (KeyError, TypeError, ValueError):
        return []  # parameters the schema or DR211 already report
    out = []
    for target in targets:
        if "${" in target.name:
            continue
        block = "drill_with" if mode == "drill" and target.param in (step.drill_params or {}) else "with"
        out.append((target, join_pointer(step.pointer, block, target.param)))
    return out


def _shown(name: str) -> str:
    text = name.replace(_SAMPLE_RUN_ID, _RUN_ID_SHOWN)
    return text if len(text) <= 80 else text[:60] + "…" + text[-12:]


def aws_names(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR212: each name a step gives an AWS resource, as the run will really use it. A drill's name
    is reported only when the drill makes it wrong (the recovery's name is reported already)."""
    for step in ctx.plan.steps():
        broken_in_recovery: set[int] = set()
        for mode in MODES:
            for index, (target, pointer) in enumerate(_named_targets(ctx, step, mode)):
                problem = name_problem(target.kind, target.name)
                if problem is None or index in broken_in_recovery:
                    continue
                noun = KINDS[target.kind].noun
                if mode == "recover":
                    broken_in_recovery.add(index)
                    where = ""
                else:
                    where = "in drills, "
                    problem += f" (because of the drill suffix `{ctx.plan.drill.name_suffix}`)"
                yield ctx.diag(
                    "DR212", f"{_where(step)}: {where}{noun} name `{_shown(target.name)}` {problem}", pointer
                )


def name_clashes(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR213: two steps of one run would create the same resource name (the second would fail,
    or worse, a drill's cleanup would delete what the other step made). A clash of drill names is
    reported only when the recovery names do not clash already."""
    reported: set[tuple[str, str]] = set()
    for mode in MODES:
        first: dict[tuple[str, str], tuple[Step, str]] = {}
        for step in ctx.plan.steps():
            for target, pointer in _named_targets(ctx, step, mode):
                if not target.creates:
                    continue
                key = same_name_key(target.kind, target.name)
                if key not in first:
                    first[key] = (step, pointer)
                    continue
                other, other_pointer = first[key]
                if other.key == step.key or (other.key, step.key) in reported:
                    continue
                reported.add((other.key, step.key))
                yield ctx.diag(
                    "DR213",
                    f"{_where(step)} and {_where(other)} would both create {KINDS[target.kind].noun} "
                    f"`{_shown(target.name)}`" + (" in drills" if mode == "drill" else ""),
                    pointer,
                    related=(Related(f"`{other.key}` creates it here", other_pointer),),
                )


# --- DR3xx: objectives and operability ---------------------------------------------------------


def missing_estimates(ctx: CheckContext) -> Iterator[Diagnostic]:
    for step in ctx.plan.steps():
        action = ctx.actions.get(step.uses)
        if step.estimate is None and action is not None and step.uses != "wait":
            typical = humanize(step_duration(step, ctx.actions, "recover")[0])
            yield ctx.diag(
                "DR303",
                f"{_where(step)} has no `estimate`; the predicted RTO assumes {typical}, typical for `{step.uses}`",
                step.pointer,
            )


def timeouts_below_estimates(ctx: CheckContext) -> Iterator[Diagnostic]:
    for step in ctx.plan.steps():
        if step.timeout is not None and step.estimate is not None and step.timeout < step.estimate:
            yield ctx.diag(
                "DR306",
                f"{_where(step)} times out after {humanize(step.timeout)} but is expected to take "
                f"{humanize(step.estimate)}",
                join_pointer(step.pointer, "timeout"),
            )


def unverified_services(ctx: CheckContext) -> Iterator[Diagnostic]:
    needed: set[str] = set()
    for service in ctx.plan.services.values():
        needed.update(service.depends_on)
    for step in ctx.plan.steps():
        needed.update(r.service for r in step.references() if r.service != step.service)
        needed.update(
            k.partition(".")[0] for k in step.after_keys() or () if not k.startswith(step.service + ".")
        )
    for service in ctx.plan.services.values():
        if service.id in needed:
            continue
        if not any((a := ctx.actions.get(s.uses)) is not None and a.family == "check" for s in service.steps):
            yield ctx.diag(
                "DR304",
                f"nothing depends on service `{service.id}` and it has no check step, so nothing proves it is "
                "back; add a `check.http` or `check.tcp` step",
                service.pointer,
            )


def drill_needs_recover_steps(ctx: CheckContext) -> Iterator[Diagnostic]:
    for step in ctx.plan.steps():
        if step.runs_in("drill"):  # drill-only steps too: they need the step as much as the others
            needs = [(r.step_key, f"uses `{r.text}`") for r in step.references()]
            needs += [(k, "waits for it (`after`)") for k in step.after_keys() or ()]
            for key, how in needs:
                if key in ctx.step_keys and ctx.plan.step(key).only == "recover":
                    yield ctx.diag(
                        "DR305",
                        f"`{key}` runs only in real recoveries, but {_where(step)} runs in drills and {how}; "
                        f"the drill step will fail or run out of order",
                        step.pointer,
                    )


def objectives(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Predicted RTO (critical path of estimates, real-recovery mode) against the objectives."""
    if not ctx.graph_is_sound or ctx.cycles:
        return
    analysis = analyse(ctx.recover_graph, ctx.actions)
    plan = ctx.plan
    for sid, service in plan.services.items():
        target = service.objectives.rto
        predicted = analysis.service_rto.get(sid)
        if target is None or predicted is None or predicted <= target:
            continue
        yield ctx.diag(
            "DR301",
            f"service `{sid}` is predicted back after {humanize(predicted)}, over its RTO of {humanize(target)} "
            f"(critical path: {_path_words(analysis, analysis.service_paths[sid])})",
            join_pointer(service.pointer, "objectives", "rto"),
        )
    if plan.objectives.rto is not None and analysis.predicted_rto > plan.objectives.rto:
        yield ctx.diag(
            "DR302",
            f"the plan is predicted to recover in {humanize(analysis.predicted_rto)}, over its RTO of "
            f"{humanize(plan.objectives.rto)} (critical path: {_path_words(analysis, analysis.critical_path)})",
            "/objectives/rto",
        )
    if plan.objectives.rto is None:
        without = [sid for sid, s in plan.services.items() if s.objectives.rto is None]
        if without:
            names = ", ".join(f"`{s}`" for s in without[:5]) + (" and more" if len(without) > 5 else "")
            yield ctx.diag(
                "DR307",
                f"no RTO objective applies to {names}: set `objectives.rto` for the plan or the service, "
                "so the predicted RTO is checked",
                "/objectives",  # located at the plan's objectives, or its start when it has none
            )


def _path_words(analysis: Analysis, path: tuple[str, ...]) -> str:
    return " → ".join(f"{k} ({humanize(analysis.steps[k].duration)})" for k in path)


#: Run in this order; findings keep it within a file before sorting by position.
CHECKS: tuple[Check, ...] = (
    unknown_services,
    unknown_actions,
    duplicate_steps,
    unknown_after,
    bad_references,
    unknown_references,
    cycles,
    undeclared_dependencies,
    commands_allowed,
    parameters,
    aws_names,
    name_clashes,
    objectives,
    missing_estimates,
    timeouts_below_estimates,
    unverified_services,
    drill_needs_recover_steps,
)


def run_checks(plan: Plan, actions: Mapping[str, Action], file: str) -> list[Diagnostic]:
    ctx = CheckContext(plan, actions, file)
    out: list[Diagnostic] = []
    for check in CHECKS:
        out.extend(check(ctx))
    return out
