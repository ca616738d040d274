"""``check.http`` and ``check.tcp`` in a state machine: each try is one invocation of the checks
function, a Lambda the template deploys with the state machine.

Step Functions cannot open a TCP connection, and its HTTP task reaches only public HTTPS endpoints
through an EventBridge connection; a restored database or an internal load balancer answers
inside a VPC. So the template deploys one small function (its code is
:mod:`drplan.actions.probes`, the module the local checks try with: the same requests, the same
assertions, the same words), optionally in the VPC's subnets, and the state machine invokes it as
the local engine polls: a try, then ``interval`` (5 s unless given), until the check passes or the
step's timeout ends it with the local message. A check that cannot be tried at all (a URL that is
not http(s), a header name HTTP does not allow, a port that is not a number) fails at once with the
local message. The check is read-only, so Lambda's errors that mean the try did not run are
retried (unlike ``aws.lambda.invoke``, whose function may have done something): throttling with the
local backoff, a function waking up from idle (minutes, in a VPC), service errors a few times.

One try is bounded by the function's own deadline (:func:`drplan.actions.probes.handler`): a host
whose addresses all drop packets takes the request timeout once per address, longer than the
function may run; the try is then a failed one ("no answer within ..."), and the next follows.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from drplan.actions.checks import DEFAULT_INTERVAL, DEFAULT_REQUEST_TIMEOUT
from drplan.durations import seconds_param
from drplan.model import Mode, Plan
from drplan.stepfunctions.builder import Path, Scope, role, template
from drplan.stepfunctions.tasks import THROTTLE_RETRY, StepInfo, Translation, choice, fail, interval_waits

INVOKE = "arn:aws:states:::lambda:invoke"
#: Lambda's errors that mean the try did not run, retried as the local engine retries throttling:
#: throttling itself, for as long as the step's timer allows...
_THROTTLED = ["Lambda.TooManyRequestsException"]
#: ... a function waking up: an idle function in a VPC goes Inactive (a DR function is idle for
#: months) and the first invocation fails while Lambda attaches it again, which takes minutes ...
_WAKING = [
    "Lambda.ResourceNotReadyException",
    "Lambda.ResourceConflictException",
    "Lambda.ENINotReadyException",
    "Lambda.EC2ThrottledException",
]
_WAKING_RETRY = {"IntervalSeconds": 10, "BackoffRate": 2.0, "MaxDelaySeconds": 120, "MaxAttempts": 8}
#: ... and Lambda's service errors, a few times only: the same names also carry permanent errors
#: (access denied, a missing function), which must surface as themselves, not as a timeout.
_SERVICE = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"]
_SERVICE_RETRY = {"IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 4, "JitterStrategy": "FULL"}
#: A TCP try's connection timeout (``probes.try_tcp``); an HTTP try's is ``request_timeout``.
TCP_TIMEOUT = 5.0


def checks_function_name(plan: Plan, mode: Mode) -> str:
    """The checks function of a plan's machine: ``drplan-PLAN-MODE-checks``, shortened with a hash
    of the whole when over Lambda's 64 characters. The definition names the function, not its ARN:
    Step Functions finds it in the execution's own account and Region."""
    # A plan's name may hold dots; a function's may not (letters, digits, `-` and `_`).
    name = re.sub(r"[^A-Za-z0-9_-]", "-", f"drplan-{plan.name}-{mode}-checks")
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: 64 - 16]}-{digest}-checks"


def checks_function_source() -> str:
    """The function's code: :mod:`drplan.actions.probes` as it is (its ``handler`` is the entry)."""
    from drplan.actions import probes

    return inspect.getsource(probes)


def function_timeout(steps: list[Mapping[str, Any]]) -> int:
    """The function's timeout, in seconds: the longest try any check step can take, plus room to
    start (a cold start in a VPC is a few seconds)."""
    longest = max(
        [TCP_TIMEOUT] + [seconds_param(p, "request_timeout", DEFAULT_REQUEST_TIMEOUT) for p in steps]
    )
    return min(900, math.ceil(longest) + 10)


class _Check(Translation):
    kind: ClassVar[str]
    #: The parameters the function's try reads (the others decide the fragment's shape).
    tried: ClassVar[frozenset[str]]

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.literal(info, "interval")
        self.literal(info, "request_timeout")

    def waits(self, info: StepInfo) -> list[int]:
        return interval_waits(info, DEFAULT_INTERVAL)

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        attempt = scope.reserve(info.label("try the check"))
        passed = scope.reserve(info.label("check passed?"))
        (wait_seconds,) = self.waits(info)
        wait = scope.add(
            info.label("wait (check)"), {"Type": "Wait", "Seconds": wait_seconds, "Next": attempt}
        )
        refused = scope.add(info.label("check cannot be tried"), fail(Path("$.w.chk.r.refused")))
        outputs = scope.add(
            info.label("outputs"), {"Type": "Pass", "InputPath": "$.w.chk.r.outputs", "End": True}
        )
        scope.put(
            passed,
            role(  # a follower says what a failed try saw (drplan.stepfunctions.history)
                choice(
                    [
                        {"Variable": "$.w.chk.r.refused", "IsPresent": True, "Next": refused},
                        {"Variable": "$.w.chk.r.ok", "BooleanEquals": True, "Next": outputs},
                    ],
                    wait,
                ),
                "try",
                info.key,
            ),
        )
        payload: dict[str, Any] = {
            "check": self.kind,
            "params": {name: info.v(value) for name, value in p.items() if name in self.tried},
        }
        if self.kind == "http":
            payload["request_timeout"] = seconds_param(p, "request_timeout", DEFAULT_REQUEST_TIMEOUT)
        assert info.checks_function, "export_plan names the checks function of a plan with checks"
        scope.put(
            attempt,
            {
                "Type": "Task",
                "Resource": INVOKE,
                "Parameters": template({"FunctionName": info.checks_function, "Payload": payload}),
                "ResultSelector": {"r.$": "$.Payload"},
                "ResultPath": "$.w.chk",
                "Retry": [
                    {"ErrorEquals": _THROTTLED, **THROTTLE_RETRY},
                    {"ErrorEquals": _WAKING, **_WAKING_RETRY},
                    {"ErrorEquals": _SERVICE, **_SERVICE_RETRY},
                ],
                "Next": passed,
            },
        )
        return attempt


class HttpCheckTranslation(_Check):
    action = "check.http"
    kind = "http"
    tried = frozenset({"url", "method", "expect_status", "body_contains", "body_matches", "headers"})
    understood = tried | {"interval", "request_timeout"}


class TcpCheckTranslation(_Check):
    action = "check.tcp"
    kind = "tcp"
    tried = frozenset({"host", "port"})
    understood = tried | {"interval"}


CHECKS = (HttpCheckTranslation.action, TcpCheckTranslation.action)
