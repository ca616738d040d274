"""The sandbox: an embedded AWS emulator seeded from the plan, to try drplan without an account.

``drplan drill PLAN --sandbox`` (and ``recover``, ``plan --preflight``) start moto's AWS emulator
inside the drplan process, seed it with what the plan restores from (tables with items and
backups, DB instances and snapshots, volumes and snapshots, versioned buckets with history, hosted
zones: :mod:`.seed`, with one seeder per action in :mod:`.seeders`), and point every AWS call
there. The emulator is one WSGI application (``app`` in :func:`start_sandbox`): drplan's own
emulators first, then moto. The clients of the sandbox's sessions hand each request to it in
the calling thread (:mod:`.inprocess`: botocore still builds, signs and parses every call; only
the loopback HTTP round trip is left out), and it is also served on a loopback port
(:attr:`Sandbox.endpoint_url`) for what needs a real endpoint: a ``drplan`` subprocess given
``--endpoint-url``, tests, and the STS client that assumes a step's role. Two pieces are emulated
by drplan itself because moto lacks them, each in its own clearly named module, and never used
outside the sandbox: AWS Backup recovery points and restore jobs (:mod:`.backup_emulator`, and
Aurora global cluster switchovers, :mod:`.global_emulator`) and the applications behind the plan's
checks (:mod:`.standin`). The ids moto chose for what seeding created are hidden from the run by
:mod:`.ids`. Where moto answers otherwise than AWS in a way a step's wait depends on, it is
corrected (:mod:`.emulator_fixes`); look-ups moto repeats on every request, and files it reads
again per session, are read once (:mod:`.emulator_speedups`, answers unchanged); Lambda functions
run without Docker, each answering the payload it was given (:data:`MOTO_CONFIG`), and no
catalogue of public images is loaded (:data:`MOTO_ENVIRONMENT`); and calls to a service nothing
emulates (Route 53 ARC) get an error saying so (:data:`NOT_EMULATED`).

moto is an optional dependency: ``pip install 'drplan[sandbox]'``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.actions.base import Route
from drplan.aws import AwsSession, error_code, is_not_found
from drplan.errors import UsageError
from drplan.model import Plan
from drplan.sandbox import emulator_fixes, emulator_speedups
from drplan.sandbox.backup_emulator import BackupEmulator
from drplan.sandbox.global_emulator import GlobalClusterEmulator
from drplan.sandbox.ids import EmulatedIds, new_seed_state
from drplan.sandbox.inprocess import InProcessRoute
from drplan.sandbox.standin import StandIn

CREDENTIALS = ("sandbox", "sandbox")
#: The account moto answers in for the sandbox's own credentials.
MOTO_ACCOUNT = "123456789012"
#: The role :meth:`Sandbox.client` assumes to act in another account (moto creates no role for it).
CROSS_ACCOUNT_ROLE = "drplan-sandbox"
#: How old the seeded backups look: recent enough for the example plans' RPOs, old enough to show.
BACKUP_AGE = timedelta(hours=2)


#: The longest a `wait` step really waits in the sandbox (it has no replication lag to wait out).
MAX_WAIT = 2.0


@dataclass
class Route53Changes:
    """What the emulator's application has seen of Route 53 (it sees every call): whether anything
    called it, and a count of the calls that may have changed it (any but a GET). A check's routing
    reuses what it looked up while the count stands: the same answer a new look-up would give."""

    called: bool = False
    changes: int = 0
    #: False for a sandbox whose application does not count (nothing is then reused).
    counted: bool = True

    def saw(self, environ: dict[str, Any]) -> None:
        if _SIGNED_FOR_ROUTE53 not in str(environ.get("HTTP_AUTHORIZATION", "")):
            return
        self.called = True
        if environ.get("REQUEST_METHOD") != "GET":
            self.changes += 1


@dataclass
class Sandbox:
    plan: Plan
    endpoint_url: str
    standin: StandIn
    backup: BackupEmulator
    #: What seeding learnt: the plan's hosted zone and instance ids -> the ids moto gave what it
    #: created (moto cannot create a zone or an instance with a chosen id); see :mod:`.ids`.
    seed_state: dict[str, Any] = field(default_factory=new_seed_state)
    ids: EmulatedIds = field(init=False)
    seed_problems: list[str] = field(default_factory=list)  # what could not be seeded, for the output
    _server: Any = None
    _thread: threading.Thread | None = None
    #: Answers the sandbox's own clients in this process (None: they go over HTTP to the server).
    _route: InProcessRoute | None = None
    #: What the emulator's application saw of Route 53 (by default: nothing known, nothing reused).
    _route53: Route53Changes = field(default_factory=lambda: Route53Changes(called=True, counted=False))
    #: A check's look-ups of hosted zones and of a name's records, by the Route 53 change count they
    #: were made at (:meth:`_hosted_zones`, :meth:`_dns_targets`).
    _dns_seen: dict[tuple[int, str], Any] = field(default_factory=dict)
    _sessions: dict[tuple[str, bool], AwsSession] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.ids = EmulatedIds(self.seed_state)

    def session(self, *, region: str | None = None, read_only: bool = False) -> AwsSession:
        """One session (hence one set of clients) per region and mode: building boto3 sessions and
        clients was half of a sandbox drill's CPU when every call made its own."""
        key = (region or self.plan.aws.region or "us-east-1", read_only)
        with self._lock:
            if key not in self._sessions:
                self._sessions[key] = AwsSession(
                    region=key[0],
                    endpoint_url=self.endpoint_url,
                    credentials=CREDENTIALS,
                    read_only=read_only,
                    emulated=True,
                    customize=self._customize,
                )
            return self._sessions[key]

    def client(self, service: str, region: str, account: str | None = None) -> Any:
        """A client of the emulated ``service`` in ``region``: in the sandbox's own account, or in
        ``account`` through a role assumed there (moto answers each request in the account its
        keys belong to, and an assumed role's keys belong to the role's account)."""
        if account is None or account == MOTO_ACCOUNT:
            return self.session(region=region).client(service, region=region)
        role = f"arn:aws:iam::{account}:role/{CROSS_ACCOUNT_ROLE}"
        return self.session(region=region).client(service, region=region, role_arn=role)

    def run_options(self) -> dict[str, Any]:
        """What a run needs to know of the sandbox: how checks reach emulated hosts, and that waits
        for replication need not be waited out (there is none)."""
        return {"network": self, "max_wait": MAX_WAIT}

    def _customize(self, client: Any) -> None:
        self.ids.customize(client)
        if self._route is not None:
            self._route.register(client)

    def route(self, host: str, port: int, tls: bool, *, content: bool) -> Route:
        """Where a check connects (the run's :class:`~drplan.actions.base.Network`): hosts the sandbox
        can vouch for go to the stand-in; an application's *content* and unknown hosts cannot be
        vouched for, and the check says so at once instead of polling until its timeout."""
        if host in ("127.0.0.1", "localhost", "::1"):
            return Route(host, port, tls)
        if not self._resolves_to_emulated(host.lower(), depth=0):
            return Route(
                host,
                port,
                tls,
                unverifiable=f"the sandbox does not emulate {host}, so it cannot vouch for it",
            )
        if content:
            return Route(
                host,
                port,
                tls,
                unverifiable=f"the sandbox has no application behind {host}: it cannot check what it answers",
            )
        return Route("127.0.0.1", self.standin.port, False)

    def _resolves_to_emulated(self, host: str, depth: int) -> bool:
        if depth > 5:
            return False
        name = host.rstrip(".").lower()
        if name.endswith(".rds.amazonaws.com"):
            return self._available_database(name)
        return any(self._resolves_to_emulated(target, depth + 1) for target in self._dns_targets(name))

    def _hosted_zones(self) -> list[dict[str, Any]]:
        """The emulated Route 53's hosted zones. moto starts empty, so while nothing has called Route 53
        (a plan without DNS steps) there is none, and no client is made to be told so."""
        if not self._route53.called:
            return []
        zones: list[dict[str, Any]] = self._looked_up(
            "", lambda: self.client("route53", "us-east-1").list_hosted_zones().get("HostedZones", [])
        )
        return zones

    def _looked_up(self, key: str, look_up: Callable[[], Any]) -> Any:
        """``look_up()``, or what it answered while nothing has changed Route 53 since."""
        if not self._route53.counted:
            return look_up()
        at = (self._route53.changes, key)  # read before looking: a change meanwhile makes it stale
        if at not in self._dns_seen:
            if len(self._dns_seen) > 10_000:
                self._dns_seen.clear()
            self._dns_seen[at] = look_up()
        return self._dns_seen[at]

    def _available_database(self, address: str) -> bool:
        """Whether ``address`` is the endpoint of an available DB instance or cluster. RDS names
        endpoints after their instance or cluster (``<id>.<hash>.<region>.rds.amazonaws.com``,
        ``<id>.cluster-[ro-]<hash>...``), so it is described by that identifier, not by listing
        every database in the Region on every check."""
        parts = address.split(".")
        region = parts[-4] if len(parts) >= 4 else "us-east-1"
        rds = self.client("rds", region)
        identifier = parts[0]
        for db in _described(
            lambda: rds.describe_db_instances(DBInstanceIdentifier=identifier), "DBInstances"
        ):
            if db.get("Endpoint", {}).get("Address", "").lower() == address:
                return bool(db.get("DBInstanceStatus") == "available")
        for cluster in _described(
            lambda: rds.describe_db_clusters(DBClusterIdentifier=identifier), "DBClusters"
        ):
            if address in (cluster.get("Endpoint", "").lower(), cluster.get("ReaderEndpoint", "").lower()):
                return bool(cluster.get("Status") == "available")
        return False

    def _dns_targets(self, name: str) -> list[str]:
        """The names and addresses ``name``'s CNAME, A, AAAA and alias records point at."""
        return list(self._looked_up(name, lambda: self._dns_targets_now(name)))

    def _dns_targets_now(self, name: str) -> list[str]:
        targets = []
        for zone in self._hosted_zones():
            if not (name + ".").endswith("." + zone["Name"].lower()) and name + "." != zone["Name"].lower():
                continue
            for record in _records_named(self.client("route53", "us-east-1"), zone["Id"], name):
                if record["Type"] in ("CNAME", "A", "AAAA"):
                    targets += [r["Value"].rstrip(".").lower() for r in record.get("ResourceRecords", [])]
                    if "AliasTarget" in record:
                        targets.append(record["AliasTarget"]["DNSName"].rstrip(".").lower())
        return targets

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        self.standin.stop()


def _records_named(route53: Any, zone_id: str, name: str) -> Iterator[dict[str, Any]]:
    """The record sets of ``name`` in a zone, every type: Route 53 lists a zone's records in order
    of name, so the listing starts at the name and ends where the next name begins (not a whole
    zone per check, and no record missed past a first page of a big zone)."""
    kwargs: dict[str, Any] = {"HostedZoneId": zone_id, "StartRecordName": name + ".", "MaxItems": "20"}
    while True:
        page = route53.list_resource_record_sets(**kwargs)
        for record in page.get("ResourceRecordSets", []):
            if record["Name"].rstrip(".").lower() != name:
                return
            yield record
        if not page.get("IsTruncated"):
            return
        kwargs["StartRecordName"], kwargs["StartRecordType"] = page["NextRecordName"], page["NextRecordType"]
        if page.get("NextRecordIdentifier"):
            kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]
        else:
            kwargs.pop("StartRecordIdentifier", None)


def _described(call: Callable[[], dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """What a describe-by-identifier call answers under ``key``; nothing when AWS says there is no
    such database, or that the name cannot be one (a host that only looks like an RDS endpoint)."""
    try:
        found: list[dict[str, Any]] = call().get(key, [])
    except Exception as exc:
        if is_not_found(exc) or (error_code(exc) or "").startswith("InvalidParameter"):
            return []
        raise
    return found


@contextlib.contextmanager
def start_sandbox(plan: Plan, *, seed: bool = True) -> Iterator[Sandbox]:
    """Start the emulator (answering the sandbox's clients in this process, and on a free loopback
    port for everything else), seed it from the plan, stop it afterwards."""
    try:
        from moto.server import DomainDispatcherApplication, create_backend_app  # type: ignore[attr-defined]
        from werkzeug.serving import make_server
    except ImportError as exc:
        raise UsageError(
            "the sandbox needs moto's server: pip install 'drplan[sandbox]'", hint=f"({exc})"
        ) from exc
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per AWS call is noise
    moto_app = DomainDispatcherApplication(create_backend_app)
    emulator_speedups.memoize_dispatch(moto_app)
    emulator_speedups.memoize_error_shapes()
    emulator_speedups.memoize_action_names()
    emulator_speedups.share_method_urls()
    emulator_speedups.share_region_lookups()
    holder: dict[str, Any] = {}
    global_clusters = GlobalClusterEmulator()  # Aurora global switchover/failover: moto has neither
    route53 = Route53Changes()
    # moto's backends are not thread-safe (an RDS restore listing snapshots while another thread
    # creates one fails with "OrderedDict mutated during iteration", answered 500), and a run's
    # steps call AWS from many threads at once. AWS serves them concurrently; moto is answered one
    # request at a time, which costs the drill little: its calls are CPU-bound under the GIL.
    # Reentrant: an answer may call moto again (drplan's emulators do, through the same clients).
    moto_lock = threading.RLock()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        route53.saw(environ)
        emulator: BackupEmulator = holder["backup"]
        if emulator.handles(environ):
            return emulator(environ, start_response)
        if global_clusters.handles(environ):
            return global_clusters(environ, start_response)
        missing = not_emulated(environ)
        if missing is not None:
            return _refuse(missing, start_response)
        with moto_lock:
            return moto_app(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    endpoint = f"http://127.0.0.1:{server.server_port}"
    standin = StandIn().start()
    sandbox = Sandbox(
        plan=plan,
        endpoint_url=endpoint,
        standin=standin,
        backup=BackupEmulator(native=lambda service, region, account=None: None),
        _server=server,
        _route=InProcessRoute(app, ("127.0.0.1", server.server_port)),
        _route53=route53,
    )
    sandbox.backup = BackupEmulator(native=sandbox.client)  # restores go through the same emulated AWS
    holder["backup"] = sandbox.backup
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, name="sandbox-aws", daemon=True
    )
    thread.start()
    sandbox._thread = thread
    restore_config: dict[str, Any] | None = None
    restore_environment = {name: os.environ.get(name) for name in MOTO_ENVIRONMENT}
    try:
        os.environ.update(MOTO_ENVIRONMENT)
        _reset()
        restore_config = _configure(MOTO_CONFIG)
        with emulator_speedups.sessions_share_the_loader():  # moto imports the models it needs
            emulator_fixes.apply(uses={step.uses for step in plan.steps()})
            if seed:
                from drplan.sandbox.seed import seed_plan

                sandbox.seed_problems = seed_plan(sandbox)
        yield sandbox
    finally:
        if restore_config is not None:
            with contextlib.suppress(Exception):  # moto's process-wide settings, as they were
                _configure(restore_config)
        for name, value in restore_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        sandbox.stop()


#: Services neither moto nor drplan emulates: what the sandbox calls them when it refuses their calls.
NOT_EMULATED = {"route53-recovery-cluster": "Route 53 ARC routing controls (the cluster endpoints)"}
_SIGNED_FOR = re.compile(r"Credential=[^/,]+/[^/,]+/[^/,]+/([^/,]+)/aws4_request")
_SIGNED_FOR_ROUTE53 = "/route53/aws4_request"


def not_emulated(environ: dict[str, Any]) -> str | None:
    """The service of a request the sandbox cannot answer (by the service it is signed for)."""
    found = _SIGNED_FOR.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return found.group(1) if found and found.group(1) in NOT_EMULATED else None


def _refuse(service: str, start_response: Any) -> list[bytes]:
    """A client error that says so (moto would answer a 500 and print a traceback), which the step
    reports and no retry repeats."""
    body = {
        "__type": "NotEmulatedInSandbox",
        "message": f"the sandbox does not emulate {NOT_EMULATED[service]}: run this step against AWS",
    }
    data = json.dumps(body).encode()
    start_response(
        "400 Bad Request",
        [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(data)))],
    )
    return [data]


def _reset() -> None:
    """moto keeps its state per process: start from empty (tests may run several sandboxes). What
    ``POST /moto-api/reset`` does, called in this process."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


#: How often the servers' loops look for a shutdown request: stopping waits up to this long.
POLL_INTERVAL = 0.05

#: moto's settings the sandbox needs: Lambda functions run without Docker, each answering the
#: payload it was given (an echo), whatever its code.
MOTO_CONFIG = {"lambda": {"use_docker": False}}


#: moto's settings read from the environment, for the life of the sandbox: no catalogue of public
#: images (moto loads ~1,200 AMIs, each with a volume and a snapshot, into every Region's EC2 the
#: first time it is used). The account the sandbox emulates is the plan's: nothing in it launches
#: or looks up a public image, and a real account's own snapshots (``OwnerIds=self``) never include
#: them.
MOTO_ENVIRONMENT = {"MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}


def _configure(config: dict[str, Any]) -> dict[str, Any]:
    """Set ``config`` in moto's settings (they are the process's; what ``POST /moto-api/config``
    does, called in this process): what to put back afterwards, a copy."""
    from moto.moto_api._internal.models import moto_api_backend

    before = copy.deepcopy(moto_api_backend.get_config())
    moto_api_backend.set_config(copy.deepcopy(config))
    return {key: before[key] for key in config if key in before}


def now() -> datetime:
    return datetime.now(timezone.utc)
