"""moto 5.2.1, given AWS Backup recovery points and restore jobs through drplan's sandbox emulator,
for drplan's own runs and for moto's Step Functions interpreter alike.

What it fixes: moto implements AWS Backup vaults and plans but answers "Not yet implemented" for
recovery points and restore jobs, so neither ``aws.backup.restore`` nor its exported state machine
could run against it. drplan's sandbox answers those calls with
:class:`drplan.sandbox.backup_emulator.BackupEmulator`, which carries each restore out with moto's
own RDS, DynamoDB and EC2 (the restored resource is really there, for the outputs, the tags and
the undo). Here the same emulator answers in this process, with nothing faked:

- a ``before-send`` hook (:class:`ToEmulator`, the hook moto's ``mock_aws`` itself uses) gives the
  emulator every request of a ``backup`` client that it emulates, built into the WSGI environ the
  sandbox's server would build (:class:`drplan.sandbox.inprocess.InProcessRoute`); anything else
  (vault and plan calls) goes on to moto;
- drplan's local run gets it through its session (:func:`emulated_session`);
- moto's interpreter makes its ``aws-sdk`` calls with a plain boto3 client from
  ``boto_client_for`` (intercepted by ``mock_aws``): :func:`moto_restores_through_the_emulator`
  wraps that function so that a ``backup`` client gets the same hook. It also names the emulator's
  errors as Step Functions does (``Backup.ResourceNotFoundException``, ``Service: Backup`` in the
  cause): moto knows Step Functions' spelling of two services only and would say ``backup.``;
  and it gives the emulator's answers the request id every AWS answer carries (moto's interpreter
  reads it into an error's cause, and fails the execution without one).

Why in the tests only: the product code talks to AWS Backup as it is; this is the test bench's
AWS, the one the sandbox gives ``drplan drill --sandbox``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from drplan.aws import AwsSession
from drplan.sandbox.backup_emulator import BackupEmulator
from drplan.sandbox.inprocess import InProcessRoute, ResponseBody

#: Where the interpreter's and drplan's requests are addressed (the emulator ignores it).
_SERVER = ("localhost", 443)


def new_emulator() -> BackupEmulator:
    """An emulator restoring with moto's services (call it inside ``mock_aws``)."""
    return BackupEmulator(
        native=lambda service, region, account=None: boto3.client(service, region_name=region)
    )


class ToEmulator(InProcessRoute):
    """A ``before-send`` handler: the emulator answers what it emulates, moto the rest."""

    def __init__(self, emulator: BackupEmulator) -> None:
        super().__init__(emulator, _SERVER)

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        environ = self.environ(request)
        if not BackupEmulator.handles(environ):
            return None  # moto's own handler answers
        status, headers, body = self.answer(environ)
        # AWS answers every request with its id (the emulator does not): Step Functions puts it in
        # an error's cause, and moto's interpreter fails the whole execution without one.
        if not any(k.lower() == "x-amzn-requestid" for k in headers):
            headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return AWSResponse(request.url, status, headers, ResponseBody(body))

    def register(self, client: Any) -> None:
        # First, before moto's own handler (which would answer "Not yet implemented").
        client.meta.events.register_first("before-send.backup", self)


def emulated_session(emulator: BackupEmulator, region: str = "us-east-1") -> AwsSession:
    """A session for drplan's local run whose backup clients reach the emulator."""
    route = ToEmulator(emulator)

    def customize(client: Any) -> None:
        if client.meta.service_model.service_name == "backup":
            route.register(client)

    return AwsSession(region=region, customize=customize)


@contextlib.contextmanager
def moto_restores_through_the_emulator(emulator: BackupEmulator) -> Iterator[None]:
    """moto's Step Functions interpreter with its ``backup`` calls answered by ``emulator``."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as sdk,
    )

    original = sdk.boto_client_for
    route = ToEmulator(emulator)

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        client = original(region=region, service=service, state_credentials=state_credentials)
        if service == "backup":
            route.register(client)
        return client

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(sdk, "boto_client_for", client_for)
        patch.setitem(sdk._SERVICE_ERROR_NAMES, "backup", "Backup")
        yield
    finally:
        patch.undo()
