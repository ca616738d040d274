"""moto 5.2.1, given Aurora global database switchovers and failovers through drplan's sandbox
emulator, for drplan's own runs and for moto's Step Functions interpreter alike.

What it fixes: moto emulates Aurora global databases (CreateGlobalCluster, DescribeGlobalClusters,
DB clusters that join one) but answers "not implemented" for SwitchoverGlobalCluster and
FailoverGlobalCluster. drplan's sandbox answers those two calls with
:class:`drplan.sandbox.global_emulator.GlobalClusterEmulator`, which makes the switch on moto's own
global cluster (in this process): the global cluster reports it in progress (``FailoverState``) for
a moment, then the target as its writer. Here the same emulator answers in this process, with
nothing faked, as tests/moto_backup_restores.py does for AWS Backup:

- a ``before-send`` hook (:class:`ToEmulator`, the hook moto's ``mock_aws`` itself uses) gives the
  emulator every request of an ``rds`` client that it emulates, built into the WSGI environ the
  sandbox's server would build (:class:`drplan.sandbox.inprocess.InProcessRoute`); any other RDS
  call goes on to moto;
- drplan's local run gets it through its session (:func:`emulated_session`, inside
  :func:`moto_switches_through_the_emulator`);
- moto's interpreter makes its ``aws-sdk`` calls with a plain boto3 client from
  ``boto_client_for``: :func:`moto_switches_through_the_emulator` wraps that function so that an
  ``rds`` client gets the same hook.

Why in the tests only: the product code talks to RDS as it is; this is the test bench's AWS, the one
the sandbox gives ``drplan drill --sandbox``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from drplan.aws import AwsSession
from drplan.sandbox.global_emulator import GlobalClusterEmulator
from drplan.sandbox.inprocess import InProcessRoute, ResponseBody

#: Where the interpreter's and drplan's requests are addressed (the emulator ignores it).
_SERVER = ("localhost", 443)


class ToEmulator(InProcessRoute):
    """A ``before-send`` handler: the emulator answers what it emulates, moto the rest."""

    def __init__(self, emulator: GlobalClusterEmulator) -> None:
        super().__init__(emulator, _SERVER)
        self.emulator = emulator

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        environ = self.environ(request)
        if not self.emulator.handles(environ):
            return None  # moto's own handler answers
        status, headers, body = self.answer(environ)
        request.drplan_emulated = True  # moto's handler, which botocore calls next, leaves it alone
        if not any(k.lower() == "x-amzn-requestid" for k in headers):
            headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return AWSResponse(request.url, status, headers, ResponseBody(body))

    def register(self, client: Any) -> None:
        # First, before moto's own handler (which would answer "not implemented").
        client.meta.events.register_first("before-send.rds", self)


def emulated_session(emulator: GlobalClusterEmulator, region: str = "us-east-1") -> AwsSession:
    """A session for drplan's local run whose RDS clients reach the emulator."""
    route = ToEmulator(emulator)

    def customize(client: Any) -> None:
        if client.meta.service_model.service_name == "rds":
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
def moto_switches_through_the_emulator(emulator: GlobalClusterEmulator) -> Iterator[None]:
    """moto's Step Functions interpreter with its global switchovers and failovers answered by
    ``emulator``."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as sdk,
    )

    original = sdk.boto_client_for
    route = ToEmulator(emulator)

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        client = original(region=region, service=service, state_credentials=state_credentials)
        if service == "rds":
            route.register(client)
        return client

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(sdk, "boto_client_for", client_for)
        _moto_skips_what_the_emulator_answered(patch)
        yield
    finally:
        patch.undo()
