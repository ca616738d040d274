"""Checks that prove a restored service answers: HTTP and TCP.

A check tries once per poll and reports what it saw; the scheduler polls again after the check's
``interval`` until it passes or the step's timeout fails it. One try is :mod:`drplan.actions.probes`
(standard library only): the same code an exported state machine runs in its checks' Lambda.

Where a check connects is asked of the run's :class:`~drplan.actions.base.Network` (directly, in
real runs). When the network cannot vouch for the answer (an emulated AWS has no application behind
its endpoints, so it cannot judge a body assertion), the check ends at once with
:meth:`~drplan.actions.base.Poll.unverified`: neither a pass nor a failure, and said so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from drplan.actions.base import Action, Handle, Poll, Route, StepContext
from drplan.actions.probes import Refused, http_target, tcp_port, try_http, try_tcp
from drplan.durations import seconds_param
from drplan.errors import StepFailed

#: Seconds between tries, and an HTTP try's timeout, when the step does not say.
DEFAULT_INTERVAL = 5.0
DEFAULT_REQUEST_TIMEOUT = 10.0


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
        if "body_matches" in params:
            body += f"{' and' if body else ' with a body'} matching /{params['body_matches']}/"
        return f"Check that {params.get('method', 'GET')} {params.get('url')} answers {codes}{body}"

    def start(self, ctx: StepContext) -> Handle:
        try:
            url = http_target(str(ctx.params["url"]), ctx.params.get("headers", {}))
        except Refused as exc:
            raise StepFailed(ctx.step.key, str(exc)) from exc
        return {"url": url, "tries": 0}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        params = ctx.params
        handle["tries"] = handle.get("tries", 0) + 1
        interval = seconds_param(params, "interval", DEFAULT_INTERVAL)
        parts = urlsplit(handle["url"])
        tls = parts.scheme == "https"
        content = any(k in params for k in ("body_contains", "body_matches"))
        route = ctx.route(parts.hostname or "", parts.port or (443 if tls else 80), tls, content=content)
        if route.unverifiable:
            return Poll.unverified(route.unverifiable)
        ok, seen = self._try(route, handle["url"], params)
        handle["last"] = seen
        return (
            Poll.finished(seen)
            if ok
            else Poll.running(f"try {handle['tries']}: {seen}", retry_after=interval)
        )

    def _try(self, route: Route, url: str, params: Mapping[str, Any]) -> tuple[bool, str]:
        timeout = seconds_param(params, "request_timeout", DEFAULT_REQUEST_TIMEOUT)
        return try_http(url, params, route.host, route.port, route.tls, timeout)

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        status = re.search(r"status (\d+)", handle.get("last", ""))
        return {"status": int(status.group(1)) if status else None, "url": handle["url"]}


class TcpCheck(Action):
    name = "check.tcp"
    family = "check"
    summary = "Open a TCP connection until it succeeds"
    outputs = {"address": "host:port that accepted the connection"}
    default_estimate = timedelta(minutes=1)

    def describe(self, params: Mapping[str, Any]) -> str:
        return f"Check that {params.get('host')}:{params.get('port')} accepts TCP connections"

    def start(self, ctx: StepContext) -> Handle:
        try:
            port = tcp_port(ctx.params["port"])
        except Refused as exc:
            raise StepFailed(ctx.step.key, str(exc)) from exc
        return {"host": str(ctx.params["host"]), "port": port, "tries": 0}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        handle["tries"] = handle.get("tries", 0) + 1
        route = ctx.route(handle["host"], handle["port"], False)
        if route.unverifiable:
            return Poll.unverified(route.unverifiable)
        ok, seen = try_tcp(route.host, route.port)
        if not ok:
            return Poll.running(
                f"try {handle['tries']}: {seen}",
                retry_after=seconds_param(ctx.params, "interval", DEFAULT_INTERVAL),
            )
        return Poll.finished(f"{handle['host']}:{handle['port']} accepted a connection")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {"address": f"{handle['host']}:{handle['port']}"}


ACTIONS = (HttpCheck, TcpCheck)
