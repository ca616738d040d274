"""``aws.lambda.invoke`` in a state machine: Step Functions' optimized Lambda integration.

The local action (:mod:`drplan.actions.awslambda.invoke`) invokes the function synchronously
(``RequestResponse``) with the step's payload, fails the step with the function's own message when
the function raised (``FunctionError``: ``function F failed: errorType: errorMessage``), and keeps
the keys of its JSON result named in ``outputs`` (failing when one is missing). The translation is
a ``arn:aws:states:::lambda:invoke`` Task (synchronous too; its result's ``Payload`` is the
function's JSON result), and the same checks:

- a function error fails the Task with the function's ``errorType`` as the error and its payload
  (``{"errorMessage", "errorType", ...}``) as the cause: the fragment words it as the local action
  does. Lambda's own errors (``Lambda.ResourceNotFoundException``, ``Lambda.ServiceException``...)
  and Step Functions' (``States.*``) keep their names, as every AWS error in an exported machine;
- throttling (``Lambda.TooManyRequestsException``: the function did not run) is retried with the
  local engine's backoff; nothing else is, because the function may have run (the local action
  never sends such a request again either). The step's own ``retries`` invoke it again, as locally;
- the undo invokes ``undo_function`` (default: the function) with ``undo_payload``, when either is
  given, and fails with ``undo function F failed: ...`` on a function error.
"""

from __future__ import annotations

from typing import Any

from drplan.stepfunctions.builder import Path, Scope, State, template
from drplan.stepfunctions.tasks import (
    THROTTLE_RETRY,
    StepInfo,
    Translation,
    choice,
    done,
    fail,
    pass_state,
)

INVOKE = "arn:aws:states:::lambda:invoke"

#: The errors of the Lambda service and of Step Functions: not the function's own.
_SERVICE_ERRORS = ("Lambda.*", "States.*")


def _name(value: Any) -> str:
    """The function as the local messages name it: literal, or the reference as written."""
    return str(value)


class LambdaInvoke(Translation):
    action = "aws.lambda.invoke"
    understood = frozenset({"function", "qualifier", "payload", "outputs", "undo_function", "undo_payload"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        # The messages name the function: a computed one would need its value in a literal.
        self.without_references(info, "function", "undo_function")
        self.literal(info, "qualifier")
        self.literal(info, "outputs")

    def waits(self, info: StepInfo) -> None:
        return None  # one synchronous invocation (and one for its undo)

    def _invoke(
        self, info: StepInfo, function: str, payload: Any, qualifier: Any, then: str, err: str
    ) -> State:
        """The synchronous invocation; its result's ``Payload`` at ``$.w.inv.payload``, any error
        caught at ``$.w.ferr`` for ``err`` to word."""
        parameters: dict[str, Any] = {"FunctionName": function, "Payload": info.v(payload)}
        if qualifier:
            parameters["Qualifier"] = str(qualifier)
        return {
            "Type": "Task",
            "Resource": INVOKE,
            "Parameters": template(parameters),
            "ResultSelector": {"payload.$": "$.Payload"},
            "ResultPath": "$.w.inv",
            "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], **THROTTLE_RETRY}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.w.ferr", "Next": err}],
            "Next": then,
        }

    def _function_error(self, info: StepInfo, scope: Scope, label: str, what: str) -> str:
        """The caught error: Lambda's or Step Functions' own keep their name and cause; a function
        error becomes ``<what> failed: errorType: errorMessage`` (``_error_text``)."""
        tag = f"{label}: " if label else ""
        passed_on = scope.add(
            info.label(f"{tag}invocation failed"),
            {"Type": "Fail", "ErrorPath": "$.w.ferr.Error", "CausePath": "$.w.ferr.Cause"},
        )
        typed = scope.add(
            info.label(f"{tag}function error"),
            fail(
                Path(
                    f"States.Format('{what} failed: {{}}: {{}}', $.w.fpay.v.errorType, $.w.fpay.v.errorMessage)"
                )
            ),
        )
        untyped = scope.add(
            info.label(f"{tag}function error without a type"),
            fail(Path(f"States.Format('{what} failed: {{}}', $.w.fpay.v.errorMessage)")),
        )
        bare = scope.add(
            info.label(f"{tag}function error without a message"),
            fail(f"{what} failed: no error message"),
        )
        kind = scope.add(
            info.label(f"{tag}error type and message?"),
            choice(
                [
                    {
                        "And": [
                            {"Variable": "$.w.fpay.v.errorMessage", "IsPresent": True},
                            {"Variable": "$.w.fpay.v.errorType", "IsPresent": True},
                        ],
                        "Next": typed,
                    },
                    {"Variable": "$.w.fpay.v.errorMessage", "IsPresent": True, "Next": untyped},
                ],
                bare,
            ),
        )
        read = scope.add(
            info.label(f"{tag}read the function's error"),
            pass_state({"v": Path("States.StringToJson($.w.ferr.Cause)")}, kind, result="$.w.fpay"),
        )
        return scope.add(
            info.label(f"{tag}whose error?"),
            choice(
                [
                    {
                        "Or": [{"Variable": "$.w.ferr.Error", "StringMatches": p} for p in _SERVICE_ERRORS],
                        "Next": passed_on,
                    }
                ],
                read,
            ),
        )

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        function = _name(p["function"])
        wanted = list(p.get("outputs") or [])
        outputs = scope.add(
            info.label("outputs"),
            pass_state({name: Path(f"$.w.inv.payload.{name}") for name in wanted}, None),
        )
        after = outputs
        if wanted:
            # ``missing``: the wanted keys the result lacks, in order, joined as the local message.
            report = scope.add(
                info.label("result incomplete"),
                fail(Path(f"States.Format('function {function} did not return {{}}', $.w.miss.v)")),
            )
            anything = scope.add(
                info.label("anything missing?"),
                choice([{"Variable": "$.w.miss.v", "StringEquals": "", "Next": outputs}], report),
            )
            nxt = anything
            for name in reversed(wanted):
                first = scope.add(
                    info.label(f"missing {name} (first)"),
                    pass_state({"v": name}, nxt, result="$.w.miss"),
                )
                more = scope.add(
                    info.label(f"missing {name}"),
                    pass_state(
                        {"v": Path(f"States.Format('{{}}, {name}', $.w.miss.v)")}, nxt, result="$.w.miss"
                    ),
                )
                seen = scope.add(
                    info.label(f"missing {name}: the first?"),
                    choice([{"Variable": "$.w.miss.v", "StringEquals": "", "Next": first}], more),
                )
                nxt = scope.add(
                    info.label(f"returned {name}?"),
                    choice([{"Variable": f"$.w.inv.payload.{name}", "IsPresent": False, "Next": seen}], nxt),
                )
            after = scope.add(info.label("check the result"), pass_state({"v": ""}, nxt, result="$.w.miss"))
        err = self._function_error(info, scope, "", f"function {function}")
        return scope.add(
            info.label("invoke function"),
            self._invoke(info, function, p.get("payload", {}), p.get("qualifier"), after, err),
        )

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        p = info.params
        if "undo_function" not in p and "undo_payload" not in p:
            return None
        function = _name(p.get("undo_function") or p["function"])
        gone = done(scope, info)
        err = self._function_error(info, scope, "undo", f"undo function {function}")
        return scope.add(
            info.label("undo: invoke function"),
            self._invoke(info, function, p.get("undo_payload", {}), None, gone, err),
        )
