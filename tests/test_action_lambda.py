"""aws.lambda.invoke against moto's Lambda without Docker, where every function answers the payload
it was given (an echo): the payload as resolved, outputs from the result, undo, drills, the seeder.

A function error, throttling and a lost answer cannot happen in moto's echo: those use botocore's
Stubber (which validates every request against the real Lambda model) or a client that fails.
"""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from drplan.actions import registry
from drplan.actions.base import AwsAccess
from drplan.aws import LAMBDA_READ_TIMEOUT, NOT_IDEMPOTENT, AwsSession, ResponseLost
from drplan.document import read_document
from drplan.engine.events import EventBus
from drplan.engine.prepare import prepare
from drplan.engine.records import RunOptions
from drplan.engine.runner import Runner
from drplan.model import build_plan
from drplan.pipeline import validate_document
from drplan.sandbox import emulator_fixes
from drplan.sandbox.seeders.awslambda import ECHO, role_arn
from tests.runs import FAST, one_step, plan_data, run_plan, seed

ACTION = "aws.lambda.invoke"
NO_DOCKER = {"lambda": {"use_docker": False}}


@pytest.fixture
def lam():
    with mock_aws(config=NO_DOCKER):  # type: ignore[arg-type]
        data = one_step(ACTION, {"function": "echo"})
        seed(step_context(data))  # the sandbox's echo function (and its role)
        yield boto3.client("lambda", region_name="us-east-1")


def step_context(data: dict[str, Any], *, aws: AwsAccess | None = None, mode: str = "recover"):
    prepared = prepare(build_plan(data), mode, registry(), run_id="t35t1d")  # type: ignore[arg-type]
    runner = Runner(prepared, aws or AwsSession(region="us-east-1"), EventBus("t35t1d"), RunOptions(**FAST))
    step = prepared.steps["svc.s"]
    return runner.context(step, step.params)


def test_the_result_gives_the_declared_outputs_and_references_in_the_payload_are_resolved(lam):
    data = plan_data(
        {
            "svc": {
                "steps": [
                    {
                        "id": "lookup",
                        "uses": ACTION,
                        "with": {
                            "function": "echo",
                            "payload": {"host": "db.example.com", "port": 5432},
                            "outputs": ["host", "port"],
                        },
                    },
                    {
                        "id": "s",
                        "uses": ACTION,
                        "with": {
                            "function": "echo",
                            "payload": {
                                "url": "https://${svc.lookup.host}/",
                                "port": "${svc.lookup.port}",
                                "extra": [1, 2],
                            },
                            "outputs": ["url", "port"],
                        },
                    },
                ]
            }
        }
    )
    run = run_plan(data)
    assert run.record("svc.lookup").outputs == {"host": "db.example.com", "port": 5432}
    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert rec.outputs == {"url": "https://db.example.com/", "port": 5432}  # "extra" was not asked for
    assert [c.operation for c in run.calls].count("Invoke") == 2


def test_events_that_are_not_objects_reach_the_function(lam):
    """moto reads an event as Invoke's own parameters and fails on one that is not an object; the
    sandbox's fix (applied here too) lets it through, as AWS does."""
    emulator_fixes.apply()
    for payload in ([1, 2], "hello", None, 7):
        run = run_plan(one_step(ACTION, {"function": "echo", "payload": payload}))
        assert run.record().status == "succeeded", (payload, run.record().error)


def test_a_declared_output_the_function_does_not_return_fails_the_step(lam):
    run = run_plan(one_step(ACTION, {"function": "echo", "payload": {"a": 1}, "outputs": ["a", "url"]}))
    assert run.record().status == "failed"
    assert run.record().error == "function echo did not return url"
    plain = run_plan(one_step(ACTION, {"function": "echo", "payload": {"a": 1}}))
    assert plain.record().status == "succeeded" and plain.record().outputs == {}


def test_runs_in_drills_with_drill_with_in_force(lam):
    data = one_step(
        ACTION,
        {"function": "echo", "payload": {"target": "prod"}, "outputs": ["target"]},
        drill_with={"payload": {"target": "drill"}},
    )
    drill = run_plan(data, "drill")
    assert "svc.s" not in drill.prepared.skipped
    assert drill.record().status == "succeeded", drill.record().error
    assert drill.record().outputs == {"target": "drill"}
    assert registry()[ACTION].drill == "run"


def test_without_undo_parameters_undo_invokes_nothing(lam):
    run = run_plan(one_step(ACTION, {"function": "echo"}))
    assert run.record().status == "succeeded", run.record().error
    before = len(run.calls)
    assert run.runner.undo(["svc.s"], reason="test") == []
    assert [c.operation for c in run.calls[before:]] == []


def test_undo_invokes_the_undo_function_with_the_undo_payload(lam):
    seed(step_context(one_step(ACTION, {"function": "echo", "undo_function": "echo-undo"})))
    run = run_plan(
        one_step(ACTION, {"function": "echo", "undo_function": "echo-undo", "undo_payload": {"undo": True}})
    )
    assert run.record().status == "succeeded", run.record().error
    before = len(run.calls)
    assert run.runner.undo(["svc.s"], reason="test") == []
    assert [c.operation for c in run.calls[before:]] == ["Invoke"]


class _Stubbed(AwsAccess):
    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str, *, region: str | None = None, role_arn: str | None = None) -> Any:
        return self._client

    def region_of(self, region: str | None) -> str:
        return "us-east-1"


def _answer(body: Any, *, error: str | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode()
    out: dict[str, Any] = {
        "StatusCode": 200,
        "Payload": StreamingBody(io.BytesIO(data), len(data)),
        "ExecutedVersion": "7",
    }
    if error:
        out["FunctionError"] = error
    return out


def _settle(action: Any, ctx: Any, handle: dict[str, Any], *, undo: dict[str, Any] | None = None) -> Any:
    """Poll until the invocation's thread has answered (it runs at once against a Stubber)."""
    for _ in range(200):
        poll = action.poll_undo(ctx, handle, undo) if undo is not None else action.poll(ctx, handle)
        if poll.done:
            return poll
        import time

        time.sleep(0.01)
    raise AssertionError("the invocation did not answer")


def test_a_function_error_fails_the_step_with_the_functions_message():
    client = boto3.client("lambda", region_name="us-east-1")
    ctx = step_context(
        one_step(ACTION, {"function": "failover", "payload": {"region": "us-west-2"}}), aws=_Stubbed(client)
    )
    action = registry()[ACTION]
    request = {
        "FunctionName": "failover",
        "InvocationType": "RequestResponse",
        "Payload": b'{"region":"us-west-2"}',
    }
    error = {
        "errorMessage": "replica lag is 912 s, above the 60 s allowed",
        "errorType": "LagTooHigh",
        "stackTrace": [],
    }
    with Stubber(client) as stub:
        stub.add_response("invoke", _answer(error, error="Unhandled"), request)
        handle = action.start(ctx)
        poll = _settle(action, ctx, handle)
        stub.assert_no_pending_responses()
    assert poll.failed == "function failover failed: LagTooHigh: replica lag is 912 s, above the 60 s allowed"
    assert handle["executed_version"] == "7"


def test_a_result_that_is_not_an_object_gives_no_outputs():
    """Stubber: moto's echo cannot answer a list (it reads the payload as its own parameters)."""
    client = boto3.client("lambda", region_name="us-east-1")
    action = registry()[ACTION]
    request = {"FunctionName": "report", "InvocationType": "RequestResponse", "Payload": b"{}"}
    outcomes = []
    for params in ({"function": "report", "outputs": ["a"]}, {"function": "report"}):
        ctx = step_context(one_step(ACTION, params), aws=_Stubbed(client))
        with Stubber(client) as stub:
            stub.add_response("invoke", _answer([1, 2]), request)
            handle = action.start(ctx)
            outcomes.append((_settle(action, ctx, handle), action.result(ctx, handle)))
    (wanted, _), (plain, outputs) = outcomes
    assert wanted.failed == "function report returned list, not a JSON object with a"
    assert plain.done and plain.failed is None and outputs == {}


def test_an_error_of_lambda_is_raised_for_the_engine_to_report():
    """Stubber: moto's echo answers for any function name."""
    from botocore.exceptions import ClientError

    client = boto3.client("lambda", region_name="us-east-1")
    ctx = step_context(one_step(ACTION, {"function": "nope"}), aws=_Stubbed(client))
    action = registry()[ACTION]
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke",
            "ResourceNotFoundException",
            "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope",
            404,
            expected_params={"FunctionName": "nope", "InvocationType": "RequestResponse", "Payload": b"{}"},
        )
        handle = action.start(ctx)
        with pytest.raises(ClientError, match="Function not found"):
            _settle(action, ctx, handle)


def test_throttling_is_retried_and_the_qualifier_is_sent():
    client = boto3.client("lambda", region_name="us-east-1")
    params = {"function": "failover", "qualifier": "live", "outputs": ["ok"]}
    ctx = step_context(one_step(ACTION, params), aws=_Stubbed(client))
    action = registry()[ACTION]
    request = {
        "FunctionName": "failover",
        "InvocationType": "RequestResponse",
        "Payload": b"{}",
        "Qualifier": "live",
    }
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke", "TooManyRequestsException", "Rate exceeded", 429, expected_params=request
        )
        stub.add_response("invoke", _answer({"ok": True}), request)
        handle = action.start(ctx)
        poll = _settle(action, ctx, handle)
        stub.assert_no_pending_responses()
    assert poll.done and poll.failed is None, poll
    assert action.result(ctx, handle) == {"ok": True}


class _LosesTheAnswer:
    def invoke(self, **_: Any) -> Any:
        raise ResponseLost("Invoke", ConnectionResetError("connection reset"))


def test_a_lost_answer_is_never_sent_again_and_another_process_cannot_know_the_answer():
    ctx = step_context(one_step(ACTION, {"function": "failover"}), aws=_Stubbed(_LosesTheAnswer()))
    action = registry()[ACTION]
    handle = action.start(ctx)
    poll = _settle(action, ctx, handle)
    assert poll.failed == (
        "the answer of failover was lost (Invoke: the answer was lost (ConnectionResetError: connection reset)); "
        "the function may have run: not invoking it again"
    )
    resumed = action.poll(ctx, {"call": "0" * 32, "function": "failover"})
    assert resumed.failed == (
        "the invocation of failover was sent by another drplan process; its answer is lost "
        "(the function may have run: not invoking it again)"
    )
    assert "Invoke" in NOT_IDEMPOTENT  # botocore never re-sends an Invoke whose answer was lost


def test_a_failing_undo_function_fails_the_undo():
    client = boto3.client("lambda", region_name="us-east-1")
    params = {"function": "failover", "undo_function": "failback", "undo_payload": {"to": "us-east-1"}}
    ctx = step_context(one_step(ACTION, params), aws=_Stubbed(client))
    action = registry()[ACTION]
    request = {
        "FunctionName": "failback",
        "InvocationType": "RequestResponse",
        "Payload": b'{"to":"us-east-1"}',
    }
    with Stubber(client) as stub:
        stub.add_response(
            "invoke", _answer({"errorMessage": "primary still down"}, error="Unhandled"), request
        )
        undo = action.undo(ctx, {"call": "x", "function": "failover"})
        poll = _settle(action, ctx, {}, undo=undo)
    assert poll.failed == "undo function failback failed: primary still down"


def test_preflight_is_read_only_and_checks_both_functions(lam):
    session = AwsSession(region="us-east-1", read_only=True)
    calls: list[Any] = []
    session.on_call = calls.append
    action = registry()[ACTION]
    params = {"function": "echo", "payload": {"a": "b"}, "undo_function": "gone"}
    ok, missing = action.preflight(step_context(one_step(ACTION, params), aws=session))
    assert (ok.status, ok.message) == ("ok", "would invoke Lambda function echo with a 9-byte payload")
    assert (missing.status, missing.message) == ("error", "Lambda function gone does not exist")
    [ref] = action.preflight(step_context(one_step(ACTION, {"function": "${a.b.c}"}), aws=session))
    assert ref.status == "ok"
    assert {c.operation for c in calls} == {"GetFunction"}


def test_outputs_are_declared_for_validation():
    def plan(output: str) -> bytes:
        data = plan_data(
            {
                "app": {
                    "steps": [
                        {
                            "id": "fn",
                            "uses": ACTION,
                            "with": {"function": "echo", "outputs": ["url"]},
                            "estimate": "PT1M",
                        },
                        {
                            "id": "up",
                            "uses": "check.http",
                            "with": {"url": f"${{app.fn.{output}}}"},
                            "estimate": "PT1M",
                        },
                    ]
                }
            }
        )
        return json.dumps(data).encode()

    assert validate_document(read_document("p.json", data=plan("url"))).errors == []
    bad = validate_document(read_document("p.json", data=plan("host"))).errors
    assert [d.code for d in bad] == ["DR205"]


def test_lambda_clients_wait_for_a_function_as_long_as_it_may_run():
    session = AwsSession(region="us-east-1", credentials=("a", "b"))
    assert session.client("lambda").meta.config.read_timeout == LAMBDA_READ_TIMEOUT >= 900
    assert session.client("rds").meta.config.read_timeout == 60


def test_seed_makes_an_echo_function_with_its_alias():
    with mock_aws(config=NO_DOCKER):  # type: ignore[arg-type]
        data = one_step(
            ACTION, {"function": "failover", "qualifier": "live", "payload": {"ok": 1}, "outputs": ["ok"]}
        )
        seed(step_context(data))
        seed(step_context(data))  # idempotent
        client = boto3.client("lambda", region_name="us-east-1")
        assert client.get_alias(FunctionName="failover", Name="live")["FunctionVersion"] == "1"
        assert (
            "drplan-sandbox-lambda" in client.get_function(FunctionName="failover")["Configuration"]["Role"]
        )
        run = run_plan(data)
        assert run.record().status == "succeeded", run.record().error
        assert run.record().outputs == {"ok": 1}
        assert "return event" in ECHO and role_arn  # the seeded code is an echo on a real Lambda too


def test_function_names_aws_would_refuse_are_reported_by_validate():
    def findings(function: str) -> list[str]:
        data = one_step(ACTION, {"function": function})
        result = validate_document(read_document("p.json", data=json.dumps(data).encode()))
        return [d.message for d in result.diagnostics if d.code == "DR212"]

    assert findings("shop-configure:live") == []
    assert findings("arn:aws:lambda:us-west-2:123456789012:function:shop-configure") == []
    assert findings("shop configure") == [
        "step `s` of service `svc`: Lambda function name `shop configure` is not a function name, ARN or "
        "partial ARN (names use letters, digits, `-` and `_`)"
    ]


def test_a_server_error_of_lambda_is_not_sent_again():
    """The request reached Lambda: the function may have run, so the step fails rather than retry."""
    client = boto3.client("lambda", region_name="us-east-1")
    ctx = step_context(one_step(ACTION, {"function": "failover"}), aws=_Stubbed(client))
    action = registry()[ACTION]
    with Stubber(client) as stub:
        stub.add_client_error("invoke", "ServiceException", "internal error", 500)
        handle = action.start(ctx)
        poll = _settle(action, ctx, handle)
        stub.assert_no_pending_responses()
    assert poll.failed == (
        "invoking failover failed (Invoke: ServiceException: internal error); the function may have run: "
        "not invoking it again"
    )
