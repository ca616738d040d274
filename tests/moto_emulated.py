"""moto 5.2.1, given the AWS calls it lacks through an emulator, for drplan's own runs and for
moto's Step Functions interpreter alike.

moto answers "not implemented" for some calls drplan makes: AWS Backup's recovery points and
restore jobs, Aurora's SwitchoverGlobalCluster and FailoverGlobalCluster, and all of Route 53
ARC's cluster API. drplan's sandbox answers the first two with its emulators
(:class:`drplan.sandbox.backup_emulator.BackupEmulator`, which restores with moto's own RDS,
DynamoDB and EC2; :class:`drplan.sandbox.global_emulator.GlobalClusterEmulator`, which switches
moto's own global cluster); the tests answer ARC with :class:`tests.arc_cluster.ArcCluster`. Each
is a WSGI application with ``handles(environ)``. Here one answers in this process, with nothing
faked beyond it:

- a ``before-send`` hook (:class:`ToEmulator`, the hook moto's ``mock_aws`` itself uses) gives the
  emulator every request of a ``service`` client that it emulates, built into the WSGI environ the
  sandbox's server would build (:class:`drplan.sandbox.inprocess.InProcessRoute`); any other call
  goes on to moto;
- drplan's local run gets it through its session (:func:`emulated_session`);
- moto's interpreter makes its ``aws-sdk`` calls with a plain boto3 client from
  ``boto_client_for``: :func:`moto_interpreter_through` wraps that function so that a ``service``
  client gets the same hook (and may name the emulator's errors as Step Functions does: moto knows
  Step Functions' spelling of two services only, and would say ``backup.`` for ``Backup.``);
- code that makes its own clients (a Lambda function's, run in-process by
  tests/moto_lambda_runs.py) gets it through botocore's built-in handlers
  (:func:`every_client_through`).

Why in the tests only: the product code talks to AWS as it is; this is the test bench's AWS, the
one the sandbox gives ``drplan drill --sandbox``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import boto3
import pytest

from drplan.aws import AwsSession
from drplan.sandbox.backup_emulator import BackupEmulator
from drplan.sandbox.inprocess import InProcessRoute, ResponseBody

#: Where the interpreter's and drplan's requests are addressed (the emulators ignore it).
_SERVER = ("localhost", 443)


class Emulator(Protocol):
    """A WSGI application that answers some of a service's calls."""

    def handles(self, environ: dict[str, Any]) -> bool: ...

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]: ...


def new_backup_emulator() -> BackupEmulator:
    """An AWS Backup emulator restoring with moto's services (call it inside ``mock_aws``)."""
    return BackupEmulator(
        native=lambda service, region, account=None: boto3.client(service, region_name=region)
    )


class ToEmulator(InProcessRoute):
    """A ``before-send`` handler of ``service``'s clients: the emulator answers what it emulates,
    moto the rest."""

    def __init__(self, emulator: Emulator, service: str) -> None:
        super().__init__(emulator, _SERVER)
        self.emulator = emulator
        self.service = service

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        environ = self.environ(request)
        if not self.emulator.handles(environ):
            return None  # moto's own handler answers
        status, headers, body = self.answer(environ)
        request.drplan_emulated = True  # moto's handler, which botocore calls next, leaves it alone
        # AWS answers every request with its id (the emulators do not): Step Functions puts it in
        # an error's cause, and moto's interpreter fails the whole execution without one.
        if not any(k.lower() == "x-amzn-requestid" for k in headers):
            headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return AWSResponse(request.url, status, headers, ResponseBody(body))

    @property
    def event(self) -> str:
        return f"before-send.{self.service}"

    def register(self, client: Any) -> None:
        # First, before moto's own handler (which would answer "not implemented").
        client.meta.events.register_first(self.event, self)


def emulated_session(emulator: Emulator, service: str, region: str = "us-east-1") -> AwsSession:
    """A session for drplan's local run whose ``service`` clients reach the emulator."""
    route = ToEmulator(emulator, service)

    def customize(client: Any) -> None:
        if client.meta.service_model.service_name == service:
            route.register(client)

    return AwsSession(region=region, customize=customize)


def _moto_skips_what_the_emulator_answered(patch: pytest.MonkeyPatch) -> None:
    """botocore gives a request to every ``before-send`` handler, then takes the first answer:
    moto's handler would still run after the emulator answered, and raise "not implemented"."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__

    def call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        if getattr(request, "drplan_emulated", False):
            return None
        return original(self, event_name, request, **kwargs)

    patch.setattr(BotocoreStubber, "__call__", call)


@contextlib.contextmanager
def moto_interpreter_through(
    emulator: Emulator, service: str, *, error_prefix: str | None = None
) -> Iterator[None]:
    """moto's Step Functions interpreter with its ``service`` calls answered by ``emulator``;
    ``error_prefix``: the service as Step Functions names it in errors, where moto does not know."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as sdk,
    )

    original = sdk.boto_client_for
    route = ToEmulator(emulator, service)

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        client = original(region=region, service=service, state_credentials=state_credentials)
        if service == route.service:
            route.register(client)
        return client

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(sdk, "boto_client_for", client_for)
        if error_prefix is not None:
            patch.setitem(sdk._SERVICE_ERROR_NAMES, service, error_prefix)
        _moto_skips_what_the_emulator_answered(patch)
        yield
    finally:
        patch.undo()


@contextlib.contextmanager
def every_client_through(emulator: Emulator, service: str) -> Iterator[None]:
    """Every ``service`` client made from here on, by any code in this process (enter it before
    ``mock_aws``, which starts boto3's default session afresh), answered by ``emulator``."""
    import botocore.handlers

    route = ToEmulator(emulator, service)
    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(
            botocore.handlers, "BUILTIN_HANDLERS", [(route.event, route), *botocore.handlers.BUILTIN_HANDLERS]
        )
        _moto_skips_what_the_emulator_answered(patch)
        boto3.DEFAULT_SESSION = None
        yield
    finally:
        patch.undo()
        boto3.DEFAULT_SESSION = None
