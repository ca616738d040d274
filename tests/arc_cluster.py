"""A Route 53 ARC cluster for the tests: moto 5.2 emulates none of ARC's cluster API.

:class:`ArcCluster` is a WSGI application answering ``GetRoutingControlState`` and
``UpdateRoutingControlState`` as ARC's cluster endpoints do (JSON 1.0, ``ToggleCustomerAPI``),
from routing control states it keeps: unknown controls are ``ResourceNotFoundException``, an
assertion rule (at least N of some controls On) refuses a change with ``ConflictException`` unless
the request lists it in ``SafetyRulesToOverride``, and endpoints the test marks down answer
``EndpointTemporarilyUnavailableException`` (503) or cannot be reached at all. Every request is logged with the endpoint it
reached. tests/moto_emulated.py routes drplan's own clients, moto's interpreter's and the calls
function's to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

TARGET = "ToggleCustomerAPI."


@dataclass
class AssertionRule:
    arn: str
    controls: list[str]
    min_on: int


@dataclass
class ArcCluster:
    states: dict[str, str]
    rules: list[AssertionRule] = field(default_factory=list)
    down: set[str] = field(default_factory=set)  # endpoint hosts that answer 503
    unreachable: set[str] = field(default_factory=set)  # endpoint hosts no connection reaches
    log: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (host, operation, body)

    def handles(self, environ: dict[str, Any]) -> bool:
        """A call of the cluster API (raised here, before any answer: an endpoint no connection
        reaches fails as botocore's connection does)."""
        mine = str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(TARGET)
        host = str(environ.get("HTTP_HOST", "")).split(":")[0]
        if mine and host in self.unreachable:
            from botocore.exceptions import EndpointConnectionError

            self.log.append((host, "unreachable", {}))
            raise EndpointConnectionError(endpoint_url=f"https://{host}/v1")
        return mine

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        operation = str(environ["HTTP_X_AMZ_TARGET"])[len(TARGET) :]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        host = str(environ.get("HTTP_HOST", "")).split(":")[0]
        self.log.append((host, operation, body))
        status, answer = self._answer(host, operation, body)
        start_response(status, [("Content-Type", "application/x-amz-json-1.0")])
        return [json.dumps(answer).encode()]

    def _answer(self, host: str, operation: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if host in self.down:
            return _error(
                "503 Service Unavailable", "EndpointTemporarilyUnavailableException", f"{host} is down"
            )
        arn = str(body.get("RoutingControlArn", ""))
        if arn not in self.states:
            return _error(
                "404 Not Found",
                "ResourceNotFoundException",
                f"Routing control {arn} not found",
                resourceId=arn,
                resourceType="RoutingControl",
            )
        if operation == "GetRoutingControlState":
            return "200 OK", {
                "RoutingControlArn": arn,
                "RoutingControlState": self.states[arn],
                "RoutingControlName": arn.rsplit("/", 1)[-1],
            }
        if operation == "UpdateRoutingControlState":
            wanted = str(body["RoutingControlState"])
            after = {**self.states, arn: wanted}
            overridden = set(body.get("SafetyRulesToOverride") or [])
            for rule in self.rules:
                on = sum(after.get(c) == "On" for c in rule.controls)
                if on < rule.min_on and rule.arn not in overridden:
                    return _error(
                        "409 Conflict",
                        "ConflictException",
                        f"Cannot update routing control state: it would violate safety rule {rule.arn}",
                        resourceId=arn,
                        resourceType="RoutingControl",
                    )
            self.states[arn] = wanted
            return "200 OK", {}
        return _error("400 Bad Request", "ValidationException", f"{operation} is not emulated")

    def asked(self, operation: str) -> list[str]:
        """The hosts that received ``operation``, in order."""
        return [host for host, op, _ in self.log if op == operation]


def _error(status: str, code: str, message: str, **extra: str) -> tuple[str, dict[str, Any]]:
    return status, {"__type": code, "message": message, **extra}
