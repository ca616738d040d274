"""The seam between the engine and what each step does.

An :class:`Action` is stateless: the scheduler hands it a :class:`StepContext` (resolved
parameters, AWS clients, tags, the run's clock) and a *handle* (a JSON-able dict the action
returned from :meth:`Action.start`). Start and poll are separate so one scheduler thread can
watch hundreds of AWS jobs, the journal can record the handle between the two (the key to resume
and cleanup), and the polling policy lives in one place (the scheduler's backoff).

Action modules must not import boto3 or botocore at import time: ``drplan validate`` reads the
catalogue's metadata (outputs, estimates, families) and must stay fast. Clients come from the
context.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from drplan.aws import AwsAccess
from drplan.resources import Resource, Target, max_length

if TYPE_CHECKING:
    from drplan.model import Mode, Objectives, Plan, Step

Handle = dict[str, Any]
"""What :meth:`Action.start` returns and the journal stores: ids, client tokens, created resources.
It is the action's own JSON, except two entries the engine reads, written and read only through the
functions below: the resources the step created (undo, cleanup) and the recovery point it restored
(the measured RPO)."""

_RESOURCES = "resources"
_RECOVERY_POINT = "recovery_point"
#: Handle entries that are the engine's, not AWS ids of the action's job.
ENGINE_KEYS = frozenset({_RESOURCES, _RECOVERY_POINT})


@dataclass(frozen=True)
class RecoveryPoint:
    """The backup or point in time a step restored: its id and when it was taken."""

    id: str
    created: datetime


def add_handle_resource(handle: Handle, resource: Resource) -> None:
    handle.setdefault(_RESOURCES, []).append(resource.to_json())


def handle_resources(handle: Handle) -> list[Resource]:
    """The resources the step recorded in its handle (the journal's copy of what it created)."""
    return [Resource.from_json(copy.deepcopy(raw)) for raw in handle.get(_RESOURCES, [])]


def update_handle_resources(handle: Handle, change: Callable[[dict[str, Any]], None]) -> None:
    """Change each recorded resource in place (an ARN AWS gave once the job completed)."""
    for raw in handle.get(_RESOURCES, []):
        change(raw)


def set_recovery_point(handle: Handle, identifier: str, created: datetime) -> None:
    handle[_RECOVERY_POINT] = {"id": identifier, "created": created.isoformat()}


def handle_recovery_point(handle: Handle) -> RecoveryPoint | None:
    raw = handle.get(_RECOVERY_POINT)
    if not raw:
        return None
    return RecoveryPoint(str(raw["id"]), datetime.fromisoformat(raw["created"]))


Family = Literal["backup", "database", "storage", "dns", "compute", "check", "manual", "control"]


@dataclass(frozen=True)
class Poll:
    """One look at a running job: done, still running (with a progress note), or failed."""

    done: bool = False
    note: str = ""
    failed: str | None = None
    retry_after: float | None = None  # seconds until the next poll, when the action knows better
    #: Done, but what was checked cannot be vouched for here (see :class:`Route`): the reason.
    not_verified: str | None = None

    @classmethod
    def running(cls, note: str = "", *, retry_after: float | None = None) -> Poll:
        return cls(False, note, retry_after=retry_after)

    @classmethod
    def finished(cls, note: str = "") -> Poll:
        return cls(True, note)

    @classmethod
    def failure(cls, reason: str) -> Poll:
        return cls(True, reason, failed=reason)

    @classmethod
    def unverified(cls, reason: str) -> Poll:
        return cls(True, reason, not_verified=reason)


@dataclass(frozen=True)
class PreflightResult:
    """A read-only finding about one step: what would be used, how old it is, what is wrong."""

    status: Literal["ok", "warning", "error"]
    message: str
    facts: Mapping[str, Any] = field(default_factory=dict)  # shown to people and in JSON, never read
    #: The name of something the step would create, when the finding says whether it is free: an
    #: ``error`` then means it is taken, and a drill refuses to start.
    name: str | None = None
    #: False when AWS could not be asked: a drill cannot be sure its names are free either.
    checked: bool = True


@dataclass(frozen=True)
class Route:
    """Where a check connects for a host and port, as :class:`Network` decides."""

    host: str
    port: int
    tls: bool
    #: Set when the answer cannot prove anything here (an emulated AWS cannot vouch for a host, or
    #: for an application's content): the check ends at once as *not verifiable*, never as a pass.
    unverifiable: str | None = None


class Network(Protocol):
    """How checks reach the hosts they probe. Real runs connect directly (:data:`DIRECT`); an
    embedding (an emulated AWS, a test) may route emulated endpoints elsewhere or decline to vouch."""

    def route(self, host: str, port: int, tls: bool, *, content: bool) -> Route: ...


class _Direct:
    def route(self, host: str, port: int, tls: bool, *, content: bool) -> Route:
        return Route(host, port, tls)


DIRECT: Network = _Direct()


@dataclass(frozen=True)
class Approvals:
    """Who may approve manual steps, and how. ``--yes`` only confirms a recovery; approving manual
    steps is separate (``--approve STEP``, ``--approve-all``), and evidence records ``identity``."""

    steps: frozenset[str] = frozenset()  # approved up front with --approve
    all: bool = False  # --approve-all
    prompt: Callable[[str, float | None], bool | None] | None = None  # ask on a terminal, or None
    identity: str = ""  # who runs drplan: user@host, and the AWS principal once known

    def granted(self, key: str) -> str | None:
        """How ``key`` was approved up front (``--approve-all``), or None when nobody did."""
        if key in self.steps:
            return f"--approve {key}"
        if self.all:
            return "--approve-all"
        return None


@dataclass
class StepContext:
    """Everything an action may use while running one step."""

    step: Step
    params: Mapping[str, Any]  # references resolved, drill isolation applied
    mode: Mode
    run_id: str
    plan: Plan
    aws: AwsAccess
    objectives: Objectives  # the service's effective objectives (``max_age: rpo``)
    started_at: datetime  # when the run started (RPO is measured against it)
    tags: Mapping[str, str] = field(default_factory=dict)  # put on every resource the step creates
    client_token: str = ""  # idempotency token, stable for this step in this run
    note: Callable[[str], None] = lambda message: None  # progress notes for the event stream
    #: Journal a created resource at once (before start() returns): if start() fails after its
    #: create call, the run still knows what to clean up.
    record: Callable[[Resource], None] = lambda resource: None
    #: What this step remembered in this run (:meth:`remember`), also by a process that died:
    #: ``drplan resume`` reads it back from the journal.
    memo: Mapping[str, Any] = field(default_factory=dict)
    #: Journal ``name = value`` before a change the step could not otherwise undo after a crash
    #: (the value a DNS record had before the run changed it): written before it returns.
    remember: Callable[[str, Any], None] = lambda name, value: None
    approvals: Approvals = field(default_factory=Approvals)
    allow_commands: bool = False  # --allow-commands (the plan must allow them too)
    plan_dir: Path = Path(".")  # commands run relative to the plan's folder
    stop: threading.Event = field(default_factory=threading.Event)  # set when the run is stopping
    network: Network = DIRECT
    #: The longest a ``wait`` step really waits, in seconds (None: as written). An embedding whose
    #: AWS has no replication lag to wait out (an emulator) shortens waits, and the step says so.
    max_wait: float | None = None

    def route(self, host: str, port: int, tls: bool, *, content: bool = False) -> Route:
        """Where to connect for ``host:port`` (``content``: the check judges the answer's body)."""
        return self.network.route(host, port, tls, content=content)

    @property
    def region(self) -> str:
        return self.aws.region_of(self.step.region)

    def client(self, service: str) -> Any:
        return self.aws.client(service, region=self.step.region, role_arn=self.step.role_arn)

    def first_seen(self, name: str, current: Any) -> Any:
        """What ``name`` was the first time this step of this run looked (before its change), which
        undo puts back: ``current`` the first time, journaled before the change is made; the
        journaled value ever after, in this process or a resumed one. Without it, a process killed
        during the change call leaves AWS changed, and the step started again would take its own
        value for the one to restore. The first reading stays, also when AWS refused that
        attempt's change: a value someone else sets between attempts is not the one undo puts back."""
        if name in self.memo:
            return self.memo[name]
        self.remember(name, current)
        return current


class Action:
    """Base class of every action. Subclasses set the class attributes and override the methods."""

    name: ClassVar[str]
    family: ClassVar[Family]
    summary: ClassVar[str]
    #: Output name -> description; other steps reference them as ``${service.step.output}``.
    outputs: ClassVar[Mapping[str, str]] = {}
    #: IAM actions the step needs (``drplan actions`` prints them).
    iam: ClassVar[tuple[str, ...]] = ()
    #: Typical duration, assumed for the predicted RTO when a step has no ``estimate``.
    default_estimate: ClassVar[timedelta] = timedelta(minutes=1)
    #: At most this many steps of this action run at once (AWS service quotas), None = no limit.
    concurrency: ClassVar[int | None] = None
    #: What a drill does with the step: "isolate" (restore into suffixed names), "skip" (never
    #: touches production in a drill unless ``drill_with`` redirects it) or "run" (read-only/local).
    drill: ClassVar[Literal["isolate", "skip", "run"]] = "run"
    #: JSON Schema of ``with``; built-in actions take theirs from schemas/plan.schema.json.
    params_schema: ClassVar[Mapping[str, Any] | None] = None
    #: Whether :meth:`undo` can reverse the step (rollback and drill cleanup).
    undoable: ClassVar[bool] = False
    #: The action an *ungraceful* run uses instead (``--ungraceful``, as ARC's ungraceful mode): a
    #: planned switchover's failover, for a primary Region that is down. None: the same in both.
    ungraceful: ClassVar[str | None] = None

    # --- static knowledge (used by validate, plan, graph, docs; no AWS) ---------------------------

    def undoes(self, params: Mapping[str, Any]) -> bool:
        """Whether :meth:`undo` reverses a step with these parameters: an action whose undo is
        optional (a command's ``undo``, a Lambda's ``undo_function``) has nothing to undo without
        it, and a run must not report such a step "undone"."""
        return self.undoable

    def declared_outputs(self, params: Mapping[str, Any]) -> Mapping[str, str]:
        return self.outputs

    def estimate(self, params: Mapping[str, Any]) -> timedelta:
        return self.default_estimate

    def describe(self, params: Mapping[str, Any]) -> str:
        """What the step does, in plain words, for the runbook and the dry run."""
        return self.summary

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        """The AWS names this step creates or changes, read from its parameters (for a drill, the
        isolated ones). Validation checks them against AWS's naming rules and for clashes between
        steps; a run journals them as intents before the create call, so a resource whose create
        call was cut short is still found by name. Names holding a ``${...}`` reference are only
        known at run time."""
        return ()

    def sources(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        """The AWS names this step reads from (the table, DB instance or bucket it restores), for
        validation only: a name AWS could never accept is reported before the run tries it."""
        return ()

    def isolate(
        self, params: Mapping[str, Any], suffix: str, *, redirected: bool
    ) -> Mapping[str, Any] | None:
        """Parameters for a drill (targets renamed with ``suffix``), or None to skip the step.

        ``redirected`` is true when the plan gave ``drill_with`` for the step.
        """
        if self.drill == "skip" and not redirected:
            return None
        return params

    # --- running (the engine) -------------------------------------------------------------------

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        """Read-only checks: what would be used, how old it is, whether the target name is free."""
        return []

    def start(self, ctx: StepContext) -> Handle:
        raise NotImplementedError(f"{self.name} cannot run yet")

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        return Poll.finished()

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        """Values of the outputs, once :meth:`poll` said done."""
        return {}

    def adopt(self, ctx: StepContext, found: list[Resource]) -> Handle | None:
        """Re-attach to what an earlier process of this run created for this step and never got to
        journal (it died during the create call): ``found`` are the resources the step's intents
        name, looked up by name. Return the handle :meth:`start` would have returned, or None to
        have the step started again (safe when the create call is idempotent: a client token)."""
        return None

    def interrupt(self, ctx: StepContext, handle: Handle) -> None:
        """The run is stopping while this step runs: end what only this process can end (a local
        command). AWS jobs are left alone here: their handles are journaled, and undo, cleanup or
        ``drplan resume`` deal with them."""

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        """Start reversing the step (delete what it created, put back what it changed)."""
        return {}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        """Verify the undo: done only when what was created is really gone."""
        return Poll.finished()


def suffixed(name: str, suffix: str, *, limit: int = 63) -> str:
    """``name`` + ``suffix``, within ``limit`` characters: the *name* is shortened, never the suffix,
    so a drill's name always carries its whole run id (two drills never share a name, and cleanup
    and sweeps can tell whose it is)."""
    if len(name) + len(suffix) <= limit:
        return name + suffix
    return name[: max(1, limit - len(suffix))].rstrip("-_.") + suffix


def isolated_name(name: Any, suffix: str, kind: str, *, reserve: int = 0) -> str:
    """A drill's name for ``name``: suffixed within the limit AWS sets for ``kind``, less ``reserve``
    characters the action appends itself (``-1`` for the instances of a cluster)."""
    return suffixed(str(name), suffix, limit=max_length(kind) - reserve)
