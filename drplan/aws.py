"""AWS access for runs: one boto3 session, cached clients, retries, guards and call recording.

Credentials come only from boto3's standard chain (environment, profile, SSO, instance role);
never from the plan. This module imports boto3 lazily: nothing on the ``validate``/``graph`` path
touches it.

Retries are layered on purpose. botocore's ``standard`` retry mode retries throttling and
transient errors of each call a few times with jittered backoff; when a call still fails that
way, the scheduler (:mod:`drplan.engine.runner`) backs off and tries the operation again until the
step's timeout, without spending the step's own ``retries`` (those are for real failures).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from drplan import __version__
from drplan.errors import AwsError

#: Error codes AWS uses for throttling; retried with backoff, never counted as a step failure.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
#: botocore exceptions (by class name, so this module need not import botocore) that mean "try again".
TRANSIENT_EXCEPTIONS = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ResponseStreamingError",
    }
)
#: Operation-name prefixes that never change anything; ``read_only`` sessions allow only these.
READ_ONLY_PREFIXES = (
    "Describe",
    "List",
    "Get",
    "Head",
    "Lookup",
    "Search",
    "Select",
    "Scan",
    "Query",
    "BatchGet",
)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (or None for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def error_message(exc: BaseException) -> str:
    """The message AWS gave with a ``ClientError`` (the exception's text for anything else)."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Message", exc))


def is_not_found(exc: BaseException) -> bool:
    """AWS says the resource (or its bucket, zone, ...) does not exist."""
    code = error_code(exc) or ""
    return "NotFound" in code or code in (
        "ResourceNotFoundException",
        "NoSuchEntity",
        "NoSuchBucket",
        "NoSuchKey",
        "NoSuchHostedZone",
        "404",  # S3 HEAD requests have no error body, only the status
        "InvalidVolume.NotFound",
    )


def is_retryable(exc: BaseException) -> bool:
    """Throttling or a transient AWS/network error: worth trying the same operation again."""
    code = error_code(exc)
    if code is not None:
        if code in THROTTLING_CODES or code in TRANSIENT_CODES:
            return True
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return isinstance(status, int) and status >= 500 and code != "404"
    return type(exc).__name__ in TRANSIENT_EXCEPTIONS


#: Errors that mean "AWS (or the endpoint) cannot be reached at all", as opposed to "busy".
UNREACHABLE_EXCEPTIONS = frozenset(
    {"EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"}
)


#: While cleaning up: how long an unreachable endpoint is waited for before cleanup gives up on a
#: resource (a later ``drplan cleanup`` finds it again from the journal or by its tags).
UNREACHABLE_GIVE_UP = 90.0


class Reachability:
    """Whether AWS answers at all, seen by all of a run's threads: how long every call has found
    the endpoint unreachable. Shared, so that a dead endpoint costs cleanup one give-up of
    :data:`UNREACHABLE_GIVE_UP` seconds, not one per step or per round of deletions; any answer
    (even an error) resets it."""

    #: An outage nobody has seen for this long may be over: :meth:`down_for` no longer vouches for it.
    STALE = 30.0

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock  # None: time.monotonic
        self._since: float | None = None  # the first call that found AWS unreachable
        self._last = 0.0  # the latest one
        self._lock = threading.Lock()

    def _now(self) -> float:
        return (self._clock or time.monotonic)()

    def unreachable(self) -> float:
        """Note a call that could not reach AWS: seconds since AWS last answered (0 at first)."""
        with self._lock:
            now = self._now()
            if self._since is None or now - self._last > self.STALE:  # a new outage
                self._since = now
            self._last = now
            return now - self._since

    def down_for(self) -> float:
        """How long AWS has been unreachable, when a call found it so lately (else 0): whether a
        call is still worth making while cleaning up."""
        with self._lock:
            now = self._now()
            if self._since is None or now - self._last > self.STALE:
                return 0.0
            return now - self._since

    def answered(self) -> None:
        with self._lock:
            self._since = None


def is_unreachable(exc: BaseException) -> bool:
    return type(exc).__name__ in UNREACHABLE_EXCEPTIONS


def is_invalid_request(exc: BaseException) -> bool:
    """botocore refused to send the request: a parameter AWS's API model does not accept."""
    return type(exc).__name__ in ("ParamValidationError", "ValidationError")


def describe_error(exc: BaseException) -> str:
    """A one-line message for an AWS error: ``RDS DBSnapshotNotFound: ...``."""
    code = error_code(exc)
    if code is not None:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
        operation = getattr(exc, "operation_name", "")
        return f"{operation}: {code}: {message}".strip(": ") if operation else f"{code}: {message}"
    return f"{type(exc).__name__}: {exc}"


class AwsAccess(Protocol):
    """What actions, removal and preflight need from the AWS layer: a client per service, region and
    role, and the region a step runs in. :class:`AwsSession` is the implementation; tests may pass
    their own. ``endpoint_url`` is for the services whose endpoints are the account's own (the
    cluster endpoints of Route 53 ARC); everything else leaves it out."""

    def client(
        self,
        service: str,
        *,
        region: str | None = None,
        role_arn: str | None = None,
        endpoint_url: str | None = None,
    ) -> Any: ...

    def region_of(self, region: str | None) -> str: ...


#: Create calls without an idempotency token: sent twice, they would try to create twice.
NOT_IDEMPOTENT = frozenset(
    {
        "RestoreTableFromBackup",
        "RestoreTableToPointInTime",
        "RestoreDBInstanceFromDBSnapshot",
        "RestoreDBInstanceToPointInTime",
        "RestoreDBClusterFromSnapshot",
        "CreateDBInstance",
        "CreateBucket",
        "Invoke",  # Lambda: a function must not run twice because an answer was lost
    }
)
#: Seconds to wait for the answer of a Lambda call: a function runs for at most 900.
LAMBDA_READ_TIMEOUT = 910
#: Failures after the request may have reached AWS (the connection dropped before the answer).
MAYBE_EXECUTED = frozenset({"ConnectionClosedError", "ReadTimeoutError", "ResponseStreamingError"})


class ResponseLost(Exception):
    """A create call without an idempotency token lost its answer: AWS may or may not have acted.
    Sending it again could create twice, so botocore must not retry it; the step looks the resource
    up by the name it journaled instead (see :class:`drplan.engine.worker.StepDriver`)."""

    def __init__(self, operation: str, cause: BaseException) -> None:
        super().__init__(f"{operation}: the answer was lost ({type(cause).__name__}: {cause})")
        self.operation = operation


def _no_blind_retry(caught_exception: BaseException | None = None, operation: Any = None, **_: Any) -> None:
    """A ``needs-retry`` handler that runs before botocore's own: stop it re-sending a create call
    that may already have been executed."""
    if (
        caught_exception is not None
        and operation is not None
        and operation.name in NOT_IDEMPOTENT
        and type(caught_exception).__name__ in MAYBE_EXECUTED
    ):
        raise ResponseLost(operation.name, caught_exception)


class ReadOnlyViolation(AwsError):
    """A read-only session (``plan --preflight``) was asked to make a call that changes something."""


_LOADERS: dict[str | None, Any] = {}  # botocore's `data_path` setting -> its loader
_LOADER_LOCK = threading.Lock()


def _botocore_session(profile: str | None = None) -> Any:
    """A new botocore session that reads AWS's API models through the process's one data loader
    (per ``data_path`` setting): each service's model (EC2's takes ~50 ms to read) and the endpoint
    data are read once per process, not once per session (a run makes several: per role, per Region
    and mode in the sandbox). The loader only reads the files botocore ships; credentials, profile
    and Region stay the session's own."""
    import botocore.session
    from botocore.loaders import create_loader

    core = botocore.session.get_session()
    if profile is not None:
        core.set_config_variable("profile", profile)
    data_path = core.get_config_variable("data_path")
    with _LOADER_LOCK:
        if data_path not in _LOADERS:
            _LOADERS[data_path] = create_loader(data_path)
        loader = _LOADERS[data_path]
    core.register_component("data_loader", loader)
    return core


def _tidy_loaders() -> None:
    """boto3 adds its own data folder to the loader's search path with every session it opens;
    once is enough for a shared loader."""
    with _LOADER_LOCK:
        for loader in _LOADERS.values():
            paths = loader.search_paths
            paths[:] = list(dict.fromkeys(paths))


@dataclass(frozen=True)
class ApiCall:
    service: str
    operation: str
    region: str


@dataclass
class AwsSession:
    """Clients for every (service, region, role), created once and shared by the run's threads."""

    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    endpoint_url: str | None = None
    read_only: bool = False
    max_attempts: int = 5
    on_call: Callable[[ApiCall], None] | None = None  # observe every API call (tests, counting)
    customize: Callable[[Any], None] | None = None  # called with each new client (tests inject faults)
    credentials: tuple[str, str] | None = None  # only the sandbox sets these; real runs use boto3's chain
    emulated: bool = False  # the sandbox: its account is moto's, so the plan's account guard does not apply
    caller_arn: str | None = None  # who these credentials are (learnt by the account guard)
    external_id: str | None = None  # for roles that require one (a third party's account)
    #: Per role, the external ID its trust policy requires (a plan's steps say it), over ``external_id``.
    external_ids: Mapping[str, str] = field(default_factory=dict)
    #: The session name of every assumed role, in CloudTrail: a run sets ``drplan-MODE-RUNID`` so
    #: what a recovery did in another account can be told from anything else that assumed the role.
    session_name: str = f"drplan-{__version__}"
    role_duration: int | None = None  # seconds; the role's own maximum otherwise (refreshed anyway)
    _session: Any = field(default=None, init=False, repr=False)
    _clients: dict[tuple[str, str, str | None, str | None], Any] = field(
        default_factory=dict, init=False, repr=False
    )
    _sessions_by_role: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _base_session(self) -> Any:
        if self._session is None:
            import boto3

            try:
                if self.credentials is not None:
                    key, secret = self.credentials
                    self._session = boto3.Session(
                        aws_access_key_id=key,
                        aws_secret_access_key=secret,
                        region_name=self.region,
                        botocore_session=_botocore_session(),
                    )
                else:
                    self._session = boto3.Session(
                        profile_name=self.profile,
                        region_name=self.region,
                        botocore_session=_botocore_session(self.profile),
                    )
            except Exception as exc:  # ProfileNotFound and friends
                raise AwsError(f"cannot open AWS profile {self.profile!r}: {exc}") from exc
            _tidy_loaders()
        return self._session

    def region_of(self, region: str | None) -> str:
        chosen = region or self.region or self._base_session().region_name
        if not chosen:
            raise AwsError(
                "no AWS region: set `aws.region` in the plan, pass --region, or set AWS_DEFAULT_REGION"
            )
        return str(chosen)

    def client(
        self,
        service: str,
        *,
        region: str | None = None,
        role_arn: str | None = None,
        endpoint_url: str | None = None,
    ) -> Any:
        """A client of ``service`` in ``region`` as ``role_arn``. ``endpoint_url`` names the account's
        own endpoint of a service that has one (an ARC cluster's); the session's endpoint (an
        emulator's) wins over it, so nothing escapes an emulated AWS."""
        region_name = self.region_of(region)
        role = role_arn or self.role_arn
        endpoint = self.endpoint_url or endpoint_url
        key = (service, region_name, role, endpoint)
        with self._lock:
            if key not in self._clients:
                session = self._session_for(role) if role else self._base_session()
                self._clients[key] = self._make_client(session, service, region_name, endpoint)
            return self._clients[key]

    def _make_client(self, session: Any, service: str, region_name: str, endpoint: str | None) -> Any:
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "max_attempts": self.max_attempts},
            user_agent_extra=f"drplan/{__version__}",
            connect_timeout=10,
            # Lambda answers a synchronous Invoke when the function returns: up to 15 minutes.
            read_timeout=LAMBDA_READ_TIMEOUT if service == "lambda" else 60,
        )
        client = session.client(service, region_name=region_name, endpoint_url=endpoint, config=config)
        client.meta.events.register("before-call", self._before_call)
        client.meta.events.register_first(
            f"needs-retry.{client.meta.service_model.service_name}", _no_blind_retry
        )
        if self.customize is not None:
            self.customize(client)
        return client

    def _before_call(self, model: Any, context: Any = None, **_: Any) -> None:
        service = model.service_model.service_name
        region = (context or {}).get("client_region", "")
        if self.read_only and not model.name.startswith(READ_ONLY_PREFIXES) and model.name != "AssumeRole":
            raise ReadOnlyViolation(f"refusing {service}:{model.name}: this run is read-only (preflight)")
        if self.on_call is not None:
            self.on_call(ApiCall(service, model.name, region))

    def _session_for(self, role_arn: str) -> Any:
        """A session that assumes ``role_arn`` with credentials that *refresh*: botocore's own
        assume-role fetcher renews them before they expire, so a recovery longer than the role's
        session duration (one hour by default) keeps working."""
        if role_arn not in self._sessions_by_role:
            import boto3
            from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

            base = self._base_session()
            source = base.get_credentials()
            if source is None:
                raise AwsError(f"cannot assume role {role_arn}: no AWS credentials to assume it with")
            extra: dict[str, Any] = {"RoleSessionName": self.session_name}
            external_id = self.external_ids.get(role_arn, self.external_id)
            if external_id:
                extra["ExternalId"] = external_id
            if self.role_duration:
                extra["DurationSeconds"] = self.role_duration

            def sts_client(service: str, **kwargs: Any) -> Any:
                return base.client(service, endpoint_url=self.endpoint_url, **kwargs)

            fetcher = AssumeRoleCredentialFetcher(sts_client, source, role_arn, extra_args=extra)
            try:
                fetcher.fetch_credentials()  # fail now, with a clear message, not in the first step
            except Exception as exc:
                raise AwsError(f"cannot assume role {role_arn}: {describe_error(exc)}") from exc
            core = _botocore_session()
            core._credentials = DeferredRefreshableCredentials(
                method="assume-role", refresh_using=fetcher.fetch_credentials
            )
            self._sessions_by_role[role_arn] = boto3.Session(
                botocore_session=core, region_name=base.region_name
            )
            _tidy_loaders()
        return self._sessions_by_role[role_arn]

    def account_id(self) -> str:
        try:
            identity = self.client("sts").get_caller_identity()
            self.caller_arn = str(identity.get("Arn") or "") or None
            return str(identity["Account"])
        except AwsError:
            raise
        except Exception as exc:
            raise AwsError(
                f"cannot identify the AWS account: {describe_error(exc)}",
                hint="check your credentials (aws sts get-caller-identity)",
            ) from exc

    def guard_account(self, expected: str | None) -> str:
        """The caller's account id; raises when the plan names another account."""
        actual = self.account_id()
        if expected and actual != expected and not self.emulated:
            raise AwsError(
                f"these credentials are for account {actual}, but the plan is for account {expected}; "
                "refusing to touch it",
                hint="switch profile or role (--profile, --role-arn)",
            )
        return actual
