"""The typed, immutable plan model, built from a document the schema has accepted. No I/O.

Names follow the plan format (docs/plan-format.md). Every service and step remembers the JSON
pointer it came from, so findings and graph edges can be located in the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal

from drplan.diagnostics import join_pointer
from drplan.durations import parse_duration
from drplan.secrets import is_secret_reference

Mode = Literal["recover", "drill"]
MODES: tuple[Mode, ...] = ("recover", "drill")

#: ``${service.step.output}``; anything else inside ``${...}`` is reported (DR209).
REFERENCE = re.compile(r"\$\{([^}]*)\}")
REFERENCE_PARTS = re.compile(r"^([a-z0-9][a-z0-9_-]*)\.([a-z0-9][a-z0-9_-]*)\.([A-Za-z0-9_]+)$")
#: ``${regions.NAME}``: one of the plan's named Regions (``regions``), put in by :func:`build_plan`.
#: One that is left (a name the plan does not define) is reported as DR215, never as DR209.
REGION_REFERENCE = re.compile(r"\$\{regions\.([^}]*)\}")

DEFAULT_DRILL_SUFFIX = "-drill-{run_id}"


@dataclass(frozen=True)
class Objectives:
    rto: timedelta | None = None
    rpo: timedelta | None = None

    def over(self, fallback: Objectives) -> Objectives:
        """These objectives, with the gaps filled from ``fallback`` (service over plan)."""
        return Objectives(rto=self.rto or fallback.rto, rpo=self.rpo or fallback.rpo)


@dataclass(frozen=True)
class Contact:
    role: str
    name: str
    contact: str


@dataclass(frozen=True)
class AwsSettings:
    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    account_id: str | None = None


FaultKind = Literal["fail", "fail-once", "timeout", "throttle", "crash"]


@dataclass(frozen=True)
class Fault:
    """A fault a drill injects into one step (``drill.faults``, ``drplan drill --inject``)."""

    step: str  # service.step
    fault: FaultKind
    times: int = 3  # throttle: how many calls

    def describe(self) -> str:
        return {
            "fail": "every attempt fails before it starts",
            "fail-once": "the first attempt fails",
            "timeout": "times out after it started",
            "throttle": f"AWS throttles its first {self.times} calls",
            "crash": "the drill's process is killed (SIGKILL) once the step has started, and the run resumed",
        }[self.fault]


@dataclass(frozen=True)
class DrillSettings:
    name_suffix: str = DEFAULT_DRILL_SUFFIX
    cleanup: Literal["always", "on_success", "never"] = "always"
    tags: Mapping[str, str] = field(default_factory=dict)
    region: str | None = None
    faults: tuple[Fault, ...] = ()

    def suffix(self, run_id: str) -> str:
        return self.name_suffix.replace("{run_id}", run_id)


@dataclass(frozen=True)
class RunSettings:
    """How runs of the plan execute (``run``); the command line overrides both."""

    parallelism: int | None = None  # steps started at once; None: the default (16)
    state: str | None = None  # s3://bucket/prefix for journal, lock and evidence; None: local .drplan


@dataclass(frozen=True)
class Reference:
    """One ``${service.step.output}`` found in a step's parameters."""

    service: str
    step: str
    output: str
    pointer: str  # where the reference is written

    @property
    def step_key(self) -> str:
        return f"{self.service}.{self.step}"

    @property
    def text(self) -> str:
        return f"${{{self.service}.{self.step}.{self.output}}}"


@dataclass(frozen=True)
class Step:
    service: str
    id: str
    uses: str
    params: Mapping[str, Any]
    pointer: str
    drill_params: Mapping[str, Any] | None = None
    name: str | None = None
    description: str | None = None
    estimate: timedelta | None = None
    timeout: timedelta | None = None
    retries: int = 0
    only: Mode | None = None
    after: tuple[str, ...] | None = None  # as written: "step" or "service.step"
    region: str | None = None
    role_arn: str | None = None
    external_id: str | None = None  # what role_arn's trust policy requires

    @property
    def key(self) -> str:
        """Plan-wide unique name: ``service.step``."""
        return f"{self.service}.{self.id}"

    @property
    def title(self) -> str:
        return self.name or self.id

    def runs_in(self, mode: Mode) -> bool:
        return self.only is None or self.only == mode

    def params_for(self, mode: Mode) -> Mapping[str, Any]:
        if mode == "drill" and self.drill_params:
            return {**self.params, **self.drill_params}
        return self.params

    def after_keys(self) -> tuple[str, ...] | None:
        if self.after is None:
            return None
        return tuple(a if "." in a else f"{self.service}.{a}" for a in self.after)

    @cached_property
    def _expressions(self) -> tuple[tuple[str, str, str, str, re.Match[str] | None], ...]:
        """Every ``${...}`` in ``with`` and ``drill_with``, found once: (block, top-level parameter,
        pointer, text, parts when well-formed). Checks ask for references several times per step,
        and a 10,000-service plan has over a million parameter strings: only strings containing
        ``${`` ever get a pointer built."""
        return self._scan[0]

    @cached_property
    def _scan(
        self,
    ) -> tuple[
        tuple[tuple[str, str, str, str, re.Match[str] | None], ...], tuple[tuple[str, str, bool], ...]
    ]:
        """(expressions, unresolved): ``unresolved`` holds (pointer, text, in_key) of every ``${``
        the engine's resolver leaves as literal text: one with no closing ``}`` (the text from it
        to the end of the string), and any in an object key (keys are never resolved)."""
        found = []
        unresolved = []
        for block, params in (("with", self.params), ("drill_with", self.drill_params or {})):
            for path, text, in_key in _strings_with_references(params, ()):
                pointer = join_pointer(self.pointer, block, *path)
                if in_key:
                    unresolved.append((pointer, text, True))
                    continue
                end = 0
                for match in REFERENCE.finditer(text):
                    found.append(
                        (block, str(path[0]), pointer, match.group(0), REFERENCE_PARTS.match(match.group(1)))
                    )
                    end = match.end()
                # REFERENCE takes a `${` up to the next `}`: one left over has no `}` after it at all.
                start = text.find("${", end)
                if start >= 0:
                    unresolved.append((pointer, text[start:], False))
        return tuple(found), tuple(unresolved)

    def _applies(self, block: str, parameter: str, mode: Mode | None) -> bool:
        """Does this parameter block apply in ``mode`` (both for None), as ``params_for`` merges them?"""
        if mode is None:
            return True
        if mode == "recover":
            return block == "with"
        return block == "drill_with" or parameter not in (self.drill_params or {})

    def references(self, mode: Mode | None = None) -> list[Reference]:
        """Every ``${service.step.output}`` in the parameters of ``mode`` (both blocks for None)."""
        return [
            Reference(parts[1], parts[2], parts[3], pointer)
            for block, parameter, pointer, _, parts in self._expressions
            if parts is not None and self._applies(block, parameter, mode)
        ]

    def malformed_references(self) -> list[tuple[str, str]]:
        """(pointer, text) of every ``${...}`` that is neither ``${service.step.output}`` nor a
        secret reference (``${env:NAME}``, ``${ssm:NAME}``, ``${secretsmanager:ID}``)."""
        return [
            (pointer, text)
            for _, _, pointer, text, parts in self._expressions
            if parts is None and not is_secret_reference(text[2:-1]) and not REGION_REFERENCE.fullmatch(text)
        ]

    def region_references(self) -> list[tuple[str, str]]:
        """(pointer, text) of every ``${regions.NAME}`` left in the parameters: :func:`build_plan`
        puts in the Regions the plan names, so those left name none of them."""
        return [
            (pointer, text)
            for _, _, pointer, text, _ in self._expressions
            if REGION_REFERENCE.fullmatch(text)
        ]

    def unresolved_references(self) -> list[tuple[str, str, bool]]:
        """(pointer, text, in_key) of every ``${`` a run would leave as it is: with no closing
        ``}`` (text: from the ``${`` to the end of the string) or in an object key (text: the key)."""
        return list(self._scan[1])


@dataclass(frozen=True)
class Service:
    id: str
    steps: tuple[Step, ...]
    pointer: str
    tier: int | None = None
    description: str | None = None
    owner: str | None = None
    depends_on: tuple[str, ...] = ()
    objectives: Objectives = Objectives()


@dataclass(frozen=True)
class Plan:
    name: str
    services: Mapping[str, Service]
    path: str = "<plan>"
    sha256: str = ""
    format_version: int = 1
    description: str | None = None
    owner: str | None = None
    contacts: tuple[Contact, ...] = ()
    objectives: Objectives = Objectives()
    aws: AwsSettings = AwsSettings()
    drill: DrillSettings = DrillSettings()
    run: RunSettings = RunSettings()
    tags: Mapping[str, str] = field(default_factory=dict)
    allow_commands: bool = False
    #: The plan's named Regions (``regions``): name -> region, such as ``recovery`` -> ``us-west-2``.
    regions: Mapping[str, str] = field(default_factory=dict)
    #: Pointers of the values where ``build_plan`` put a Region in for ``${regions.NAME}``: the
    #: Region is checked where ``regions`` defines it, not again at every use.
    region_pointers: frozenset[str] = frozenset()

    def steps(self) -> Iterator[Step]:
        for service in self.services.values():
            yield from service.steps

    def external_ids(self) -> dict[str, str]:
        """The external ID each role needs, from the steps that assume it (validation makes sure two
        steps never give one role two different IDs: DR216)."""
        return {s.role_arn: s.external_id for s in self.steps() if s.role_arn and s.external_id}

    def step(self, key: str) -> Step:
        service, _, step_id = key.partition(".")
        for step in self.services[service].steps:
            if step.id == step_id:
                return step
        raise KeyError(key)

    def objectives_of(self, service_id: str) -> Objectives:
        return self.services[service_id].objectives.over(self.objectives)


def with_run_id(value: Any, run_id: str) -> Any:
    """A drill's parameters with ``{run_id}`` replaced: ``drill_with`` names (a drill DNS record, a
    URL a check probes) can carry the run id, so drills of one plan never share them."""
    if isinstance(value, str):
        return value.replace("{run_id}", run_id)
    if isinstance(value, Mapping):
        return {k: with_run_id(v, run_id) for k, v in value.items()}
    if isinstance(value, list):
        return [with_run_id(v, run_id) for v in value]
    return value


def build_plan(data: Mapping[str, Any], *, path: str = "<plan>", sha256: str = "") -> Plan:
    """Build the model from schema-valid data (the schema guarantees the shapes used here).

    ``${regions.NAME}`` is replaced by the Region the plan's ``regions`` gives it, in the regions of
    ``aws``, ``drill`` and steps and in every string of ``with`` and ``drill_with``, so that
    everything after this sees real Regions. A name ``regions`` does not define is left as written,
    for validation to report (DR215)."""
    named = dict(data.get("regions", {}))
    resolved: set[str] = set()
    if named:
        data = _with_regions(data, named, resolved)
    services = {sid: _service(sid, raw) for sid, raw in data["services"].items()}
    drill = data.get("drill", {})
    aws = data.get("aws", {})
    run = data.get("run", {})
    return Plan(
        name=data["name"],
        services=services,
        path=path,
        sha256=sha256,
        format_version=data["drplan"],
        description=data.get("description"),
        owner=data.get("owner"),
        contacts=tuple(Contact(c["role"], c["name"], c["contact"]) for c in data.get("contacts", [])),
        objectives=_objectives(data.get("objectives")),
        aws=AwsSettings(aws.get("region"), aws.get("profile"), aws.get("role_arn"), aws.get("account_id")),
        drill=DrillSettings(
            name_suffix=drill.get("name_suffix", DEFAULT_DRILL_SUFFIX),
            cleanup=drill.get("cleanup", "always"),
            tags=dict(drill.get("tags", {})),
            region=drill.get("region"),
            faults=tuple(Fault(f["step"], f["fault"], f.get("times", 3)) for f in drill.get("faults", [])),
        ),
        run=RunSettings(parallelism=run.get("parallelism"), state=run.get("state")),
        tags=dict(data.get("tags", {})),
        allow_commands=bool(data.get("allow_commands", False)),
        regions=named,
        region_pointers=frozenset(resolved),
    )


def _with_regions(data: Mapping[str, Any], named: Mapping[str, str], resolved: set[str]) -> dict[str, Any]:
    """``data`` with ``${regions.NAME}`` replaced wherever a plan may write it (see :func:`build_plan`);
    ``resolved`` gets the pointer of every value changed. Only what changes is copied."""

    def put(value: Any, pointer: str) -> Any:
        if isinstance(value, str):
            if "${regions." not in value:
                return value
            out = REGION_REFERENCE.sub(lambda m: named.get(m.group(1), m.group(0)), value)
            if out != value:
                resolved.add(pointer)
            return out
        if isinstance(value, Mapping):
            return {k: put(v, join_pointer(pointer, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [put(v, join_pointer(pointer, i)) for i, v in enumerate(value)]
        return value

    out = dict(data)
    for block in ("aws", "drill"):
        if isinstance(out.get(block), Mapping) and "region" in out[block]:
            out[block] = {**out[block], "region": put(out[block]["region"], f"/{block}/region")}
    services = {}
    for sid, service in out["services"].items():
        steps = []
        for index, raw in enumerate(service["steps"]):
            pointer = join_pointer("/services", sid, "steps", index)
            step = dict(raw)
            for key in ("region", "with", "drill_with"):
                if key in step:
                    step[key] = put(step[key], join_pointer(pointer, key))
            steps.append(step)
        services[sid] = {**service, "steps": steps}
    out["services"] = services
    return out


def _service(sid: str, raw: Mapping[str, Any]) -> Service:
    pointer = join_pointer("/services", sid)
    return Service(
        id=sid,
        steps=tuple(_step(sid, i, s, pointer) for i, s in enumerate(raw["steps"])),
        pointer=pointer,
        tier=raw.get("tier"),
        description=raw.get("description"),
        owner=raw.get("owner"),
        depends_on=tuple(raw.get("depends_on", ())),
        objectives=_objectives(raw.get("objectives")),
    )


def _step(service: str, index: int, raw: Mapping[str, Any], service_pointer: str) -> Step:
    return Step(
        service=service,
        id=raw["id"],
        uses=raw["uses"],
        params=dict(raw.get("with", {})),
        pointer=join_pointer(service_pointer, "steps", index),
        drill_params=dict(raw["drill_with"]) if "drill_with" in raw else None,
        name=raw.get("name"),
        description=raw.get("description"),
        estimate=_duration(raw.get("estimate")),
        timeout=_duration(raw.get("timeout")),
        retries=raw.get("retries", 0),
        only=raw.get("only"),
        after=tuple(raw["after"]) if "after" in raw else None,
        region=raw.get("region"),
        role_arn=raw.get("role_arn"),
        external_id=raw.get("external_id"),
    )


def _objectives(raw: Mapping[str, str] | None) -> Objectives:
    raw = raw or {}
    return Objectives(rto=_duration(raw.get("rto")), rpo=_duration(raw.get("rpo")))


def _duration(text: str | None) -> timedelta | None:
    # The schema guarantees the form; a duration over the limit is held as OVER_LIMIT and
    # reported by validate (DR105), so building the model never fails on a schema-valid plan.
    return parse_duration(text, cap=True) if text is not None else None


def _strings_with_references(
    value: Any, path: tuple[Any, ...]
) -> Iterator[tuple[tuple[Any, ...], str, bool]]:
    """(path, text, in_key) of every string inside a JSON value that contains ``${``: values, and
    object keys (whose path is that of their member)."""
    if isinstance(value, str):
        if "${" in value:
            yield path, value, False
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if "${" in key:
                yield (*path, key), key, True
            yield from _strings_with_references(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings_with_references(item, (*path, index))
