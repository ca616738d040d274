"""AWS Lambda: invoke a function as a custom step, its JSON result becoming the step's outputs.

The invocation is synchronous (``RequestResponse``): AWS answers when the function returns, up to
its 15-minute limit. So that a long function does not hold up the scheduler, :meth:`Invoke.start`
sends the request from a thread of its own and :meth:`Invoke.poll` looks whether the answer has
come. The answer lives in this process only: a run resumed by another process cannot know whether
the function ran, and says so rather than invoke it a second time. For the same reason a request
whose answer was lost in transit is never sent again (``Invoke`` is in
:data:`drplan.aws.NOT_IDEMPOTENT`); a throttled one, which AWS did not run, is.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from drplan.actions._aws import unresolved
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext
from drplan.aws import THROTTLING_CODES, ResponseLost, describe_error, error_code, is_not_found, is_retryable
from drplan.errors import StepFailed
from drplan.resources import Target

#: Connection failures before the request was sent (botocore's names): safe to send again.
_NOT_SENT = frozenset({"EndpointConnectionError", "ConnectTimeoutError"})
#: Seconds undo() waits for the undo function's answer before leaving it to poll_undo().
UNDO_WAIT = 10.0
#: The largest request payload of a synchronous invocation (6 MB).
MAX_PAYLOAD = 6 * 1024 * 1024


def encode(ctx: StepContext, payload: Any, what: str = "payload") -> bytes:
    try:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise StepFailed(ctx.step.key, f"`{what}` is not JSON: {exc}") from exc
    if len(data) > MAX_PAYLOAD:
        raise StepFailed(
            ctx.step.key,
            f"`{what}` is {len(data)} bytes; Lambda takes at most {MAX_PAYLOAD} in a synchronous call",
        )
    return data


def describe_function(ctx: StepContext, function: str, qualifier: str | None = None) -> dict[str, Any] | None:
    """The function's configuration, or None when it does not exist."""
    kwargs = {"FunctionName": function, **({"Qualifier": qualifier} if qualifier else {})}
    try:
        found = ctx.client("lambda").get_function(**kwargs)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    return dict(found.get("Configuration") or {})


@dataclass
class _Call:
    """One invocation in flight in this process."""

    client: Any
    request: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None
    error: BaseException | None = None

    def run(self) -> None:
        try:
            response = self.client.invoke(**self.request)
            body = response.get("Payload")
            self.answer = {
                "status": response.get("StatusCode"),
                "function_error": response.get("FunctionError"),
                "version": response.get("ExecutedVersion"),
                "payload": body.read() if body is not None else b"",
            }
        except BaseException as exc:  # handed to poll(), which reports it
            self.error = exc
        finally:
            self.done.set()


def _error_text(payload: bytes) -> str:
    """``errorType: errorMessage`` of a function error's payload (its raw text otherwise)."""
    try:
        data = json.loads(payload or b"null")
    except ValueError:
        data = None
    if isinstance(data, Mapping) and data.get("errorMessage") is not None:
        kind = f"{data['errorType']}: " if data.get("errorType") else ""
        return f"{kind}{data['errorMessage']}"
    text = payload.decode("utf-8", errors="replace").strip()
    return text[:500] or "no error message"


class Invoke(Action):
    name = "aws.lambda.invoke"
    family = "control"
    summary = (
        "Invoke a Lambda function (a custom step); its JSON result gives the outputs. "
        "Undone only with `undo_function` or `undo_payload`"
    )
    iam = ("lambda:GetFunction", "lambda:InvokeFunction")
    default_estimate = timedelta(minutes=1)
    # Your own code runs in drills as in a recovery: make it drill-aware, or point `drill_with` at
    # another function or payload.
    drill = "run"
    undoable = True

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}
        self._lock = threading.Lock()

    def declared_outputs(self, params: Mapping[str, Any]) -> Mapping[str, str]:
        return {
            name: "returned by the function (a key of its JSON result)" for name in params.get("outputs", [])
        }

    def describe(self, params: Mapping[str, Any]) -> str:
        qualifier = f":{params['qualifier']}" if params.get("qualifier") else ""
        return f"Invoke Lambda function {params.get('function')}{qualifier}"

    def sources(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        return tuple(
            Target("lambda:function", str(params[param]), param, creates=False)
            for param in ("function", "undo_function")
            if params.get(param)
        )

    def undoes(self, params: Mapping[str, Any]) -> bool:
        return "undo_function" in params or "undo_payload" in params

    # --- read only ----------------------------------------------------------------------------------

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        findings: list[PreflightResult] = []
        try:
            size = len(encode(ctx, ctx.params.get("payload", {})))
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason)]
        functions = [("function", ctx.params["function"], ctx.params.get("qualifier"))]
        if ctx.params.get("undo_function"):
            functions.append(("undo_function", ctx.params["undo_function"], None))
        for param, function, qualifier in functions:
            if unresolved(function):
                findings.append(
                    PreflightResult("ok", f"`{param}` comes from {function}; checked when the step runs")
                )
                continue
            config = describe_function(ctx, str(function), qualifier)
            if config is None:
                findings.append(
                    PreflightResult("error", f"Lambda function {function} does not exist", {param: function})
                )
                continue
            state = config.get("State", "Active")
            facts = {param: function, "state": state, "runtime": config.get("Runtime")}
            if state == "Failed":
                reason = config.get("StateReason", "")
                findings.append(
                    PreflightResult("error", f"Lambda function {function} is Failed: {reason}", facts)
                )
            elif state != "Active":
                findings.append(
                    PreflightResult(
                        "warning",
                        f"Lambda function {function} is {state}; invoking it may fail or be slow",
                        facts,
                    )
                )
            elif param == "function":
                findings.append(
                    PreflightResult(
                        "ok", f"would invoke Lambda function {function} with a {size}-byte payload", facts
                    )
                )
            else:
                findings.append(PreflightResult("ok", f"undo would invoke Lambda function {function}", facts))
        return findings

    # --- running ------------------------------------------------------------------------------------

    def _invoke(self, ctx: StepContext, function: str, payload: Any, what: str) -> str:
        request: dict[str, Any] = {
            "FunctionName": function,
            "InvocationType": "RequestResponse",
            "Payload": encode(ctx, payload, what),
        }
        if what == "payload" and ctx.params.get("qualifier"):
            request["Qualifier"] = str(ctx.params["qualifier"])
        return self._send(_Call(ctx.client("lambda"), request))

    def _send(self, call: _Call) -> str:
        call_id = uuid.uuid4().hex
        with self._lock:
            self._calls[call_id] = call
        threading.Thread(target=call.run, name=f"lambda-invoke-{call_id[:8]}", daemon=True).start()
        return call_id

    def _answer(self, handle: Handle, function: str) -> tuple[dict[str, Any] | None, Poll | None]:
        """The answer of the invocation the handle names: (answer, None) once it came, else (None,
        what to report). Errors AWS raised are raised again here, for the engine to report."""
        with self._lock:
            call = self._calls.get(handle.get("call", ""))
        if call is None:
            return None, Poll.failure(
                f"the invocation of {function} was sent by another drplan process; its answer is lost "
                "(the function may have run: not invoking it again)"
            )
        if not call.done.is_set():
            return None, Poll.running(f"waiting for {function} to return", retry_after=0.5)
        with self._lock:
            self._calls.pop(handle["call"], None)
        error = call.error
        if error is None:
            assert call.answer is not None
            return call.answer, None
        if isinstance(error, ResponseLost):
            return None, Poll.failure(
                f"the answer of {function} was lost ({error}); the function may have run: not invoking it again"
            )
        if error_code(error) in THROTTLING_CODES or type(error).__name__ in _NOT_SENT:
            # Throttled, or never sent: the function did not run, so sending it again is safe.
            handle["call"] = self._send(_Call(call.client, call.request))
            return None, Poll.running(
                f"{function}: {describe_error(error)}; invoking it again", retry_after=1.0
            )
        if is_retryable(error):  # Lambda's own trouble after the request reached it: it may have run
            return None, Poll.failure(
                f"invoking {function} failed ({describe_error(error)}); the function may have run: "
                "not invoking it again"
            )
        raise error

    def start(self, ctx: StepContext) -> Handle:
        function = str(ctx.params["function"])
        call_id = self._invoke(ctx, function, ctx.params.get("payload", {}), "payload")
        return {"call": call_id, "function": function}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        function = handle["function"]
        answer, waiting = self._answer(handle, function)
        if answer is None:
            assert waiting is not None
            return waiting
        handle["executed_version"] = answer.get("version")
        if answer.get("function_error"):
            return Poll.failure(f"function {function} failed: {_error_text(answer['payload'])}")
        try:
            result = json.loads(answer["payload"] or b"null")
        except ValueError:
            result = None
            if ctx.params.get("outputs"):
                return Poll.failure(f"function {function} returned something that is not JSON")
        wanted = list(ctx.params.get("outputs", []))
        if wanted and not isinstance(result, Mapping):
            return Poll.failure(
                f"function {function} returned {type(result).__name__ if result is not None else 'null'}, "
                f"not a JSON object with {', '.join(wanted)}"
            )
        missing = [name for name in wanted if name not in result]
        if missing:
            return Poll.failure(f"function {function} did not return {', '.join(missing)}")
        handle["outputs"] = {name: result[name] for name in wanted}
        version = f" (version {answer['version']})" if answer.get("version") else ""
        return Poll.finished(f"function {function}{version} returned")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return dict(handle.get("outputs", {}))

    # --- undo ---------------------------------------------------------------------------------------

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        if not self.undoes(ctx.params):
            return {}
        function = str(ctx.params.get("undo_function") or ctx.params["function"])
        call_id = self._invoke(ctx, function, ctx.params.get("undo_payload", {}), "undo_payload")
        with self._lock:
            call = self._calls.get(call_id)
        if call is not None:  # most functions answer within seconds: verified at the first look then
            call.done.wait(UNDO_WAIT)
        return {"call": call_id, "function": function}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        if "call" not in undo_handle:
            return Poll.finished("nothing to undo: the step has no `undo_function` or `undo_payload`")
        function = undo_handle["function"]
        answer, waiting = self._answer(undo_handle, function)
        if answer is None:
            assert waiting is not None
            return waiting
        if answer.get("function_error"):
            return Poll.failure(f"undo function {function} failed: {_error_text(answer['payload'])}")
        return Poll.finished(f"undo function {function} returned")
