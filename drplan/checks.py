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
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from drplan.actions.base import Action
from drplan.diagnostics import (
    Diagnostic,
    Related,
    Severity,
    diagnostic,
    join_pointer,
    pointer_tokens,
    shorten,
)
from drplan.durations import (
    MAX_DURATION,
    MAX_DURATION_WORDS,
    duration_seconds,
    humanize,
    is_duration,
    parse_timestamp,
    timestamp_problem,
)
from drplan.graph import Analysis, Cycle, RecoveryGraph, analyse, compile_graph, find_cycles, step_duration
from drplan.model import MODES, REGION_REFERENCE, Mode, Plan, Step, with_run_id
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
            return RecoveryGraph(self.plan, "recover", self.graph.graph, self.graph.service_graph)
        return compile_graph(self.plan, "recover")

    @cached_property
    def recover_analysis(self) -> Analysis:
        """The prediction of a real recovery within the run's limits (DR301/DR302 judge it; plan,
        docs and graph reuse it instead of analysing the plan again)."""
        return analyse(self.recover_graph, self.actions)

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

    @cached_property
    def typed_params(self) -> dict[str, list[TypedValue]]:
        """Per step: every parameter value the action's schema gives an ``x-kind`` (durations,
        timestamps, regions), in ``with`` and ``drill_with``; found once for all the checks."""
        from drplan.schema import typed_values

        out: dict[str, list[TypedValue]] = {}
        for step in self.plan.steps():
            action = self.actions.get(step.uses)
            if action is None or action.params_schema is None:
                continue
            found = [
                TypedValue(block, path, kinds, value, join_pointer(step.pointer, block, *path))
                for block, params in (("with", step.params), ("drill_with", step.drill_params or {}))
                for path, kinds, value in typed_values(params, action.params_schema)
                if "${" not in value  # a reference: its value is known only when the run resolves it
            ]
            if found:
                out[step.key] = found
        return out

    def runs_in(self, step: Step, mode: Mode) -> bool:
        """Is ``step`` meant to run in ``mode``: not excluded by ``only``, and, in drills, not an
        action that drills skip (a change to production without ``drill_with``), as prepare does."""
        if not step.runs_in(mode):
            return False
        action = self.actions.get(step.uses)
        if mode != "drill" or action is None:
            return True
        suffix = self.plan.drill.suffix(_SAMPLE_RUN_ID)
        return (
            action.isolate(step.params_for("drill"), suffix, redirected=step.drill_params is not None)
            is not None
        )


@dataclass(frozen=True)
class TypedValue:
    """A parameter value of a known kind: ``with.restore_time`` of a step, say."""

    block: str  # "with" or "drill_with"
    path: tuple[Any, ...]  # inside the block
    kinds: tuple[str, ...]  # the schema's x-kind
    value: str
    pointer: str

    @property
    def label(self) -> str:
        """``with.interval``, ``drill_with.attach.device``: as schema findings name parameters."""
        out = self.block
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else f".{shorten(str(part))}"
        return out


Check = Callable[[CheckContext], Iterator[Diagnostic]]


def _closest(word: str, choices: object) -> str | None:
    """The closest choice, compared without case (``AWS.RDS.x`` is close to ``aws.rds.x``)."""
    options = {str(c).lower(): str(c) for c in choices}  # type: ignore[attr-defined]
    close = difflib.get_close_matches(word.lower(), list(options), n=max(1, len(options)), cutoff=0.6)
    if not close:
        return None
    # Equally close choices (us-east-1, us-east-2 for us-east-99): the first in order, not the last.
    score = {c: difflib.SequenceMatcher(None, word.lower(), c).ratio() for c in close}
    best = max(score.values())
    return options[min(c for c in close if score[c] == best)]


def _did_you_mean(word: str, choices: object) -> str:
    close = _closest(word, choices)
    return f" (did you mean `{close}`?)" if close else ""


def _where(step: Step) -> str:
    return f"step `{shorten(step.id)}` of service `{shorten(step.service)}`"


# --- values the schema's patterns cannot judge: lengths of time, real dates, real regions ---------


def durations_within_limit(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR105: every duration at most 10 years. Longer ones would overflow the clock arithmetic of
    a run, and of the checks after this one, which therefore do not run (see :func:`run_checks`)."""
    too_long = f"must be at most {MAX_DURATION_WORDS}, the longest duration a plan may use"
    limit = MAX_DURATION.total_seconds()
    plan = ctx.plan
    owners = [
        ("", "", plan.objectives),
        *((f"service `{s.id}`: ", s.pointer, s.objectives) for s in plan.services.values()),
    ]
    for owner, pointer, objectives in owners:
        for name, value in (("rto", objectives.rto), ("rpo", objectives.rpo)):
            if value is not None and value > MAX_DURATION:
                where = join_pointer(pointer, "objectives", name)
                yield ctx.diag("DR105", f"{owner}`objectives.{name}` {too_long}", where)
    for step in plan.steps():
        for name, value in (("estimate", step.estimate), ("timeout", step.timeout)):
            if value is not None and value > MAX_DURATION:
                yield ctx.diag(
                    "DR105", f"{_where(step)}: `{name}` {too_long}", join_pointer(step.pointer, name)
                )
        for typed in ctx.typed_params.get(step.key, ()):
            over = (
                "duration" in typed.kinds
                and is_duration(typed.value)
                and duration_seconds(typed.value) > limit
            )
            if over:
                yield ctx.diag("DR105", f"{_where(step)}: `{typed.label}` {too_long}", typed.pointer)


def zero_timeouts(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR105: ``timeout: PT0S`` would fail the step at once (a run used to replace it silently)."""
    for step in ctx.plan.steps():
        if step.timeout is not None and not step.timeout:
            from drplan.engine.prepare import MIN_DEFAULT_TIMEOUT, TIMEOUT_FACTOR  # the default a run uses

            yield ctx.diag(
                "DR105",
                f"{_where(step)}: `timeout` must be more than 0 seconds: PT0S would fail the step before it "
                f"starts; remove `timeout` to use the default ({TIMEOUT_FACTOR} times the estimate, at least "
                f"{humanize(MIN_DEFAULT_TIMEOUT)})",
                join_pointer(step.pointer, "timeout"),
            )


#: Duration parameters of the check actions that need a floor: name -> (least, inclusive, words).
_CHECK_FLOORS: dict[str, tuple[timedelta, bool, str]] = {
    "interval": (
        timedelta(seconds=1),
        True,
        "must be at least 1 second (PT1S): a shorter pause between attempts is a busy loop",
    ),
    "request_timeout": (
        timedelta(0),
        False,
        "must be more than 0 seconds: a request given no time always fails",
    ),
}
_CHECK_ACTIONS = ("check.http", "check.tcp")


def check_floors(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR105: a check's ``interval`` of at least 1 second, a ``request_timeout`` over 0."""
    for step in ctx.plan.steps():
        if step.uses not in _CHECK_ACTIONS:
            continue
        for typed in ctx.typed_params.get(step.key, ()):
            floor = _CHECK_FLOORS.get(typed.path[-1]) if len(typed.path) == 1 else None
            if floor is None or not is_duration(typed.value):
                continue
            least, inclusive, words = floor
            seconds = duration_seconds(typed.value)
            if seconds < least.total_seconds() or (not inclusive and seconds == least.total_seconds()):
                yield ctx.diag("DR105", f"{_where(step)}: `{typed.label}` {words}", typed.pointer)


def timestamps(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR104: a timestamp of the right form that is no real moment (month 13, 30 February)."""
    for step in ctx.plan.steps():
        for typed in ctx.typed_params.get(step.key, ()):
            if "timestamp" not in typed.kinds or typed.value == "latest" or is_duration(typed.value):
                continue
            problem = timestamp_problem(typed.value)
            if problem is not None:
                yield ctx.diag(
                    "DR104",
                    f"{_where(step)}: `{typed.label}` `{shorten(typed.value)}` {problem}",
                    typed.pointer,
                )


def future_timestamps(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR310: a point in time to restore to that has not happened yet."""
    now = datetime.now(timezone.utc)
    for step in ctx.plan.steps():
        for typed in ctx.typed_params.get(step.key, ()):
            if "timestamp" not in typed.kinds or typed.value == "latest" or is_duration(typed.value):
                continue
            if timestamp_problem(typed.value) is not None or parse_timestamp(typed.value) <= now:
                continue
            if typed.path[-1] == "at":
                why = "objects would be put back as they are when the step runs, so nothing is rewound"
            else:
                why = "it is outside the restorable window (which ends a few minutes before now), so the restore would fail"
            yield ctx.diag(
                "DR310",
                f"{_where(step)}: `{typed.label}` `{shorten(typed.value)}` is in the future: {why}",
                typed.pointer,
            )


def regions(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR104: every region the plan names is one AWS has (botocore's list), and an availability
    zone is in the region its step runs in."""
    plan = ctx.plan
    named = [
        *((f"`regions.{shorten(n)}`", join_pointer("/regions", n), r) for n, r in plan.regions.items()),
        ("`aws.region`", "/aws/region", plan.aws.region),
        ("`drill.region`", "/drill/region", plan.drill.region),
        *(
            (f"{_where(s)}: `region`", join_pointer(s.pointer, "region"), s.region)
            for s in plan.steps()
            if s.region
        ),
    ]
    # A Region put in for `${regions.NAME}` is checked where `regions` defines it (above), and a
    # name `regions` does not define is DR215's (region_names).
    named = [n for n in named if n[2] is None or (n[1] not in plan.region_pointers and "${" not in n[2])]
    zones = [
        (step, typed)
        for step in plan.steps()
        for typed in ctx.typed_params.get(step.key, ())
        if "availability-zone" in typed.kinds
        or ("region" in typed.kinds and typed.pointer not in plan.region_pointers)
    ]
    if not any(region for _, _, region in named) and not zones:
        return  # botocore's list is read only for a plan that names a region
    from drplan.regions import AVAILABILITY_ZONE, known_regions

    known = known_regions()
    for who, pointer, region in named:
        if region is not None and known is not None and region not in known.names:
            yield ctx.diag("DR104", f"{who} {_unknown_region(region, known)}", pointer)
    for step, typed in zones:
        if "region" in typed.kinds:
            if known is not None and typed.value not in known.names:
                yield ctx.diag(
                    "DR104",
                    f"{_where(step)}: `{typed.label}` {_unknown_region(typed.value, known)}",
                    typed.pointer,
                )
            continue
        zone = AVAILABILITY_ZONE.match(typed.value)
        if zone is None:
            continue  # a Local Zone or another form: AWS judges it
        if known is not None and zone.group(1) not in known.names:
            close = _closest(zone.group(1), known.names)
            hint = f" (did you mean `{close}{typed.value[-1]}`?)" if close else ""
            yield ctx.diag(
                "DR104",
                f"{_where(step)}: `{typed.label}` `{shorten(typed.value)}` is not an availability zone of an AWS "
                f"region: `{shorten(zone.group(1))}` is not a region{hint}",
                typed.pointer,
            )
            continue
        yield from _zone_outside_region(ctx, step, typed, zone.group(1))


def region_names(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR215: ``${regions.NAME}`` naming a Region the plan's ``regions`` does not define (the model
    puts in those it defines, so any left are unknown)."""
    plan = ctx.plan
    found = [
        (label, pointer, value)
        for label, pointer, value in (
            ("`aws.region`", "/aws/region", plan.aws.region),
            ("`drill.region`", "/drill/region", plan.drill.region),
        )
        if value and "${" in value
    ]
    for step in plan.steps():
        if step.region and "${" in step.region:
            found.append((f"{_where(step)}: `region`", join_pointer(step.pointer, "region"), step.region))
        for pointer, text in step.region_references():
            label = ".".join(shorten(t) for t in pointer_tokens(pointer[len(step.pointer) :]))
            found.append((f"{_where(step)}: `{label}`", pointer, text))
    for who, pointer, text in found:
        for match in REGION_REFERENCE.finditer(text):
            name = match.group(1)
            if plan.regions:
                close = _closest(name, plan.regions)
                defined = ", ".join(f"`{n}`" for n in plan.regions)
                why = f"`regions` does not define `{shorten(name)}` (it defines {defined}"
                why += f"; did you mean `{close}`?)" if close else ")"
            else:
                why = 'the plan has no `regions`: name its Regions there, e.g. `"regions": {"recovery": "us-west-2"}`'
            yield ctx.diag("DR215", f"{who} holds `{shorten(match.group(0))}`, but {why}", pointer)


def _unknown_region(region: str, known: Any) -> str:
    hint = _did_you_mean(region, known.names)
    newer = (
        "; if AWS opened it after the installed botocore was released, upgrade botocore"
        if known.looks_new(region)
        else ""
    )
    return f"`{shorten(region)}` is not an AWS region{hint}{newer}"


def _zone_outside_region(
    ctx: CheckContext, step: Step, typed: TypedValue, zone_region: str
) -> Iterator[Diagnostic]:
    """The zone must be in the region the step runs in, in each mode that uses this value."""
    plan = ctx.plan
    for mode in MODES:
        if mode == "recover":
            applies = typed.block == "with"
        else:  # drill_with replaces with, key by key
            applies = typed.block == "drill_with" or typed.path[0] not in (step.drill_params or {})
        if not applies or not ctx.runs_in(step, mode):
            continue
        if step.region:
            region, source = step.region, "its `region`"
        elif mode == "drill" and plan.drill.region:
            region, source = plan.drill.region, "`drill.region`"
        elif plan.aws.region:
            region, source = plan.aws.region, "`aws.region`"
        else:
            return  # the run's region comes from the command line or the environment
        if region != zone_region:
            when = "in drills, " if mode == "drill" else ""
            yield ctx.diag(
                "DR104",
                f"{_where(step)}: {when}`{typed.label}` `{shorten(typed.value)}` is in region `{zone_region}`, "
                f"but the step runs in `{region}` ({source}), and AWS accepts only zones of the region it is asked in",
                typed.pointer,
            )
            return


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
                f"{_where(step)} uses `{shorten(step.uses)}`, which is not a known action"
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
                    f"{_where(step)} waits for `{shorten(written)}`, which is not a step of the plan" + hint,
                    join_pointer(step.pointer, "after", i),
                )


def bad_references(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR209: every ``${`` the engine's resolver would not substitute: a malformed ``${...}`` (the
    run would fail on it), and a ``${`` with no closing ``}`` or in a key (the run would use it
    as literal text)."""
    for step in ctx.plan.steps():
        for pointer, text in step.malformed_references():
            yield ctx.diag(
                "DR209",
                f"{_where(step)}: `{shorten(text)}` is not a reference of the form `${{service.step.output}}`",
                pointer,
                fragment=text,
            )
        for pointer, text, in_key in step.unresolved_references():
            if in_key:
                start = text[text.index("${") :]
                yield ctx.diag(
                    "DR209",
                    f"{_where(step)}: the key `{shorten(text)}` holds `${{`, but references are resolved only in "
                    "values, never in keys, so a run would use it as it is; move the reference into a value",
                    pointer,
                    at_key=True,
                    fragment=start,
                )
            else:
                yield ctx.diag(
                    "DR209",
                    f"{_where(step)}: `{shorten(text)}` has no closing `}}`, so it is not a reference and a run "
                    "would use it as literal text; write `${service.step.output}`",
                    pointer,
                    fragment=text,
                )


def unknown_references(ctx: CheckContext) -> Iterator[Diagnostic]:
    for step in ctx.plan.steps():
        for ref in step.references():
            if ref.service not in ctx.plan.services:
                yield ctx.diag(
                    "DR204",
                    f"{_where(step)}: `{shorten(ref.text)}` names service `{shorten(ref.service)}`, which the plan "
                    "does not define" + _did_you_mean(ref.service, ctx.plan.services),
                    ref.pointer,
                    fragment=ref.text,
                )
                continue
            if ref.step_key not in ctx.step_keys:
                ids = [s.id for s in ctx.plan.services[ref.service].steps]
                yield ctx.diag(
                    "DR204",
                    f"{_where(step)}: `{shorten(ref.text)}` names step `{shorten(ref.step)}`, which service "
                    f"`{ref.service}` does not have" + _did_you_mean(ref.step, ids),
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
                    f"{_where(step)}: `{shorten(ref.text)}` asks for output `{shorten(ref.output)}`, but "
                    f"`{target.uses}` produces {names}" + _did_you_mean(ref.output, outputs),
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
                    f"{_where(step)} uses `{shorten(ref.text)}`, but `{ref.step_key}` is not upstream of it through "
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


#: Actions whose `drill_with` must move them onto other resources than `with` names: the parameter.
_DRILL_ONLY_TARGETS = {
    "aws.rds.switchover_global_cluster": "global_cluster",
    "aws.rds.failover_global_cluster": "global_cluster",
}


def drill_redirects(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR211: a `drill_with` that leaves an Aurora global database switch on the production global
    cluster: the drill would move production's primary (drills skip the step without `drill_with`)."""
    for step in ctx.plan.steps():
        parameter = _DRILL_ONLY_TARGETS.get(step.uses)
        if parameter is None or step.drill_params is None or not step.runs_in("drill"):
            continue
        drill_value = step.drill_params.get(parameter)
        if drill_value is not None and drill_value != step.params.get(parameter):
            continue
        block = "drill_with" if drill_value is not None else "with"
        yield ctx.diag(
            "DR211",
            f"{_where(step)}: in drills, `{parameter}` is `{shorten(str(step.params.get(parameter)))}` as in a "
            f"real recovery, so a drill would switch production; give `drill_with.{parameter}` a drill-only one "
            "(or remove `drill_with`: drills then skip the step)",
            join_pointer(step.pointer, block, parameter)
            if drill_value is not None
            else join_pointer(step.pointer, "drill_with"),
        )


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


def _named_targets(
    ctx: CheckContext, step: Step, mode: Mode, *, with_sources: bool = False
) -> list[tuple[Target, str]]:
    """(target, pointer of the parameter it comes from) of a step in ``mode``, with a drill's
    isolation applied exactly as a run applies it; names still holding a reference are left out."""
    action = ctx.actions.get(step.uses)
    if action is None or not step.runs_in(mode):
        return []
    params = step.params_for(mode)
    if mode == "drill":
        isolated = action.isolate(
            with_run_id(params, _SAMPLE_RUN_ID),
            ctx.plan.drill.suffix(_SAMPLE_RUN_ID),
            redirected=step.drill_params is not None,
        )
        if isolated is None:
            return []  # a drill skips the step
        params = isolated
    try:
        targets = action.targets(params) + (action.sources(params) if with_sources else ())
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
            for index, (target, pointer) in enumerate(_named_targets(ctx, step, mode, with_sources=True)):
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


def fault_steps(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR214: a fault to rehearse in a step that drills do not run (or that does not exist)."""
    for i, fault in enumerate(ctx.plan.drill.faults):
        pointer = join_pointer("/drill/faults", i, "step")
        if fault.step not in ctx.step_keys:
            yield ctx.diag(
                "DR214",
                f"`drill.faults` injects `{fault.fault}` into `{shorten(fault.step)}`, which is not a step of the plan"
                + _did_you_mean(fault.step, ctx.step_keys),
                pointer,
            )
        elif not ctx.runs_in(ctx.plan.step(fault.step), "drill"):
            yield ctx.diag(
                "DR214",
                f"`drill.faults` injects `{fault.fault}` into `{fault.step}`, which drills do not run",
                pointer,
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
        # A zero timeout is an error of its own (zero_timeouts).
        if step.timeout and step.estimate is not None and step.timeout < step.estimate:
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
    """DR305: a step that runs in drills needs an output of a step limited to real recoveries. A step
    that drills skip anyway (a change to production without ``drill_with``) needs nothing in drills.
    Waiting for such a step (``after``) is fine: a step a mode leaves out keeps the order it imposed
    (its predecessors come first), so the drill runs in the order the plan means."""
    for step in ctx.plan.steps():
        if ctx.runs_in(step, "drill"):  # drill-only steps too: they need the step as much as the others
            needs = [(r.step_key, f"uses `{shorten(r.text)}`") for r in step.references("drill")]
            for key, how in needs:
                if key in ctx.step_keys and ctx.plan.step(key).only == "recover":
                    yield ctx.diag(
                        "DR305",
                        f"`{key}` runs only in real recoveries, but {_where(step)} runs in drills and {how}; "
                        f"the drill step will fail or run out of order",
                        step.pointer,
                    )


def recover_needs_drill_steps(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR309: DR305's mirror. A step that runs in real recoveries and needs an output of a step
    limited to drills is dropped from every recovery (engine.prepare), without a word at run time.
    (Waiting for one with ``after`` is fine, as for DR305.)"""
    for step in ctx.plan.steps():
        if not step.runs_in("recover"):
            continue
        for ref in step.references("recover"):
            if ref.step_key in ctx.step_keys and ctx.plan.step(ref.step_key).only == "drill":
                yield ctx.diag(
                    "DR309",
                    f"`{ref.step_key}` runs only in drills, but {_where(step)} runs in real recoveries and uses "
                    f"`{shorten(ref.text)}`: in a real recovery the output never exists, so the step would "
                    "silently not run",
                    ref.pointer,
                    fragment=ref.text,
                )


def max_age_needs_rpo(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR308: ``max_age: rpo`` where no RPO objective applies would mean "no age limit" at run time."""
    for step in ctx.plan.steps():
        for block, params in (("with", step.params), ("drill_with", step.drill_params or {})):
            if params.get("max_age") == "rpo" and ctx.plan.objectives_of(step.service).rpo is None:
                yield ctx.diag(
                    "DR308",
                    f"{_where(step)}: `{block}.max_age` is `rpo`, but no RPO objective applies to service "
                    f"`{step.service}`, so any backup, however old, would do; set `objectives.rpo` for the "
                    "service or the plan, or give `max_age` a duration such as PT24H",
                    join_pointer(step.pointer, block, "max_age"),
                )


def objectives(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Predicted RTO (real-recovery mode) against the objectives. The prediction is the run's own
    scheduler simulated within the run's limits (``run.parallelism``, AWS quotas per action), the
    figure a recovery would take; the message adds the critical path when the limits cost time."""
    if not ctx.graph_is_sound or ctx.cycles:
        return
    analysis = ctx.recover_analysis
    plan = ctx.plan
    for sid, service in plan.services.items():
        target = service.objectives.rto
        predicted = analysis.service_rto.get(sid)
        if target is None or predicted is None or predicted <= target:
            continue
        critical = analysis.service_critical_rto.get(sid)
        yield ctx.diag(
            "DR301",
            f"service `{sid}` is predicted back after {humanize(predicted)}, over its RTO of {humanize(target)} "
            + _why_words(analysis, predicted, critical, analysis.service_paths[sid]),
            join_pointer(service.pointer, "objectives", "rto"),
        )
    if plan.objectives.rto is not None and analysis.predicted_rto > plan.objectives.rto:
        yield ctx.diag(
            "DR302",
            f"the plan is predicted to recover in {humanize(analysis.predicted_rto)}, over its RTO of "
            f"{humanize(plan.objectives.rto)} "
            + _why_words(analysis, analysis.predicted_rto, analysis.critical_rto, analysis.critical_path),
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


def _why_words(
    analysis: Analysis, predicted: timedelta, critical: timedelta | None, path: tuple[str, ...]
) -> str:
    """``(critical path: a (45m) → b (1m))``, and when the limits cost time, what they are."""
    words = f"(critical path{f' {humanize(critical)}' if critical is not None else ''}: {_path_words(analysis, path)}"
    if critical is not None and predicted > critical:
        words += f"; with the run's limits ({analysis.limits.describe()}) steps wait for a slot"
    return words + ")"


def _path_words(analysis: Analysis, path: tuple[str, ...]) -> str:
    return " → ".join(f"{k} ({humanize(analysis.steps[k].duration)})" for k in path)


#: Run in this order; findings keep it within a file before sorting by position.
def external_ids_agree(ctx: CheckContext) -> Iterator[Diagnostic]:
    """DR216: two steps assume one role with different external IDs. A role's trust policy names the
    one it requires, and a run assumes each role once (one set of credentials per role)."""
    first: dict[str, Step] = {}
    for step in ctx.plan.steps():
        if not (step.role_arn and step.external_id):
            continue
        earlier = first.setdefault(step.role_arn, step)
        if earlier.external_id != step.external_id:
            yield ctx.diag(
                "DR216",
                f"{_where(step)} assumes {shorten(step.role_arn)} with `external_id` "
                f"`{shorten(step.external_id)}`, but {_where(earlier)} gives it `{shorten(earlier.external_id or '')}`: "
                "a role's trust policy requires one external ID",
                join_pointer(step.pointer, "external_id"),
                related=(Related("the other external ID", join_pointer(earlier.pointer, "external_id")),),
            )


CHECKS: tuple[Check, ...] = (
    durations_within_limit,  # first: it stops the others (see run_checks)
    zero_timeouts,
    check_floors,
    timestamps,
    future_timestamps,
    regions,
    region_names,
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
    drill_redirects,
    aws_names,
    name_clashes,
    fault_steps,
    objectives,
    missing_estimates,
    timeouts_below_estimates,
    unverified_services,
    drill_needs_recover_steps,
    recover_needs_drill_steps,
    max_age_needs_rpo,
    external_ids_agree,
)


#: Checks whose errors stop the checks after them, as schema errors stop all of them: a duration
#: over the limit is held as a stand-in value that the other checks would compute with.
STOPPING: frozenset[Check] = frozenset({durations_within_limit})


def run_checks(plan: Plan, actions: Mapping[str, Action], file: str) -> list[Diagnostic]:
    return check_plan(CheckContext(plan, actions, file))


def check_plan(ctx: CheckContext) -> list[Diagnostic]:
    """Every finding about ``ctx.plan``; ``ctx`` keeps the graphs and analysis the checks built."""
    out: list[Diagnostic] = []
    for check in CHECKS:
        found = list(check(ctx))
        out.extend(found)
        if check in STOPPING and any(d.severity is Severity.ERROR for d in found):
            break
    return out
