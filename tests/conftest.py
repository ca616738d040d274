"""Shared fixtures. Tests never reach AWS: moto answers in-process, or through its local server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "plans"
EXAMPLE_PLANS = sorted(PLANS.glob("*.json"))


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a default region, so a test can never use a developer's real account."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture(autouse=True)
def _step_functions_spelling(request: pytest.FixtureRequest) -> object:
    """Exported state machines run in moto with the parameters and answers of their ``aws-sdk``
    tasks spelled as Step Functions spells them (tests/moto_sdk_casing.py), and each JSONPath parsed
    once."""
    name = request.node.path.name
    if not (name.startswith("test_stepfunctions") or name.startswith("test_sfn")):
        yield None
        return
    import functools

    from moto.stepfunctions.parser.asl.utils import json_path

    from tests.moto_sdk_casing import moto_maps_sdk_casing

    # moto's interpreter parses a JSONPath (building jsonpath-ng's parser) every time it reads one,
    # thousands of times a machine: each is parsed once (a parsed path is only read).
    patch = pytest.MonkeyPatch()
    patch.setattr(json_path, "parse", functools.lru_cache(maxsize=None)(json_path.parse))
    try:
        with moto_maps_sdk_casing():
            yield None
    finally:
        patch.undo()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def moto_server():
    """moto's real HTTP server on loopback: boto3 reaches it through ``endpoint_url``."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # The threaded server serves moto's process-wide backends: start every test from empty.
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    try:
        yield endpoint
    finally:
        server.stop()


# --- validate: fixture plans and the command line ---------------------------------------------

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DATA = Path(__file__).resolve().parent / "data"

Invoke = Callable[..., Result]
"""``validate_cli(*args, input=None)``: run ``drplan validate`` in click's test runner."""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def validate_cli(runner: CliRunner) -> Invoke:
    """``drplan validate ARGS...`` through click's test runner; ``input`` is standard input."""
    from drplan.cli import cli

    def invoke(*args: str, input: bytes | str | None = None) -> Result:
        return runner.invoke(cli, ["validate", *args], input=input)

    return invoke
