"""Checks that prove a restored service answers: HTTP and TCP."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions.base import Action


class HttpCheck(Action):
    name = "check.http"
    family = "check"
    summary = "Request a URL until it answers as expected"
    outputs = {"status": "HTTP status code of the successful response", "url": "URL that answered"}
    default_estimate = timedelta(minutes=1)

    def describe(self, params: Mapping[str, Any]) -> str:
        expect = params.get("expect_status", 200)
        codes = "/".join(str(c) for c in expect) if isinstance(expect, list) else str(expect)
        body = f" with a body containing {params['body_contains']!r}" if "body_contains" in params else ""
        return f"Check that {params.get('method', 'GET')} {params.get('url')} answers {codes}{body}"


class TcpCheck(Action):
    name = "check.tcp"
    family = "check"
    summary = "Open a TCP connection until it succeeds"
    outputs = {"address": "host:port that accepted the connection"}
    default_estimate = timedelta(minutes=1)

    def describe(self, params: Mapping[str, Any]) -> str:
        return f"Check that {params.get('host')}:{params.get('port')} accepts TCP connections"


ACTIONS = (HttpCheck, TcpCheck)
