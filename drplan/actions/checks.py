"""Checks that prove a restored service answers: HTTP and TCP.

A check tries once per poll and reports what it saw; the scheduler polls again after the check's
``interval`` until it passes or the step's timeout fails it. Only the standard library is used
(http.client, socket), so checks work without extra dependencies.

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
from urllib.parse import quote, urlsplit, urlunsplit

from drplan.actions.base import Action, Handle, Poll, Route, StepContext
from drplan.durations import parse_duration
from drplan.errors import StepFailed


def _seconds(params: Mapping[str, Any], name: str, default: float) -> float:
    value = params.get(name)
    return parse_duration(value).total_seconds() if isinstance(value, str) else default


#: RFC 9110's token: what an HTTP header name may be made of.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def as_uri(url: str) -> str:
    """``url`` as HTTP can send it: a non-ASCII host in IDNA, spaces and other characters a URL
    cannot carry percent-encoded (as UTF-8: what browsers do with ``http://example.com/santé``).
    A valid URL, escapes included, is left exactly as written."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = parts.netloc
    if not host.isascii():
        netloc = netloc.replace(host, host.encode("idna").decode("ascii"))
    keep = "/?#[]@!$&'()*+,;=%:~"
    return urlunsplit(
        (
            parts.scheme,
            quote(netloc, safe=keep),
            quote(parts.path, safe=keep),
            quote(parts.query, safe=keep),
            quote(parts.fragment, safe=keep),
        )
    )


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
        url = str(ctx.params["url"])
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise StepFailed(ctx.step.key, f"{url!r} is not an http:// or https:// URL")
        try:
            url = as_uri(url)
        except UnicodeError as exc:
            raise StepFailed(
                ctx.step.key, f"{url!r}: its host name is not a valid domain name ({exc})"
            ) from exc
        for name, value in ctx.params.get("headers", {}).items():
            if not HEADER_NAME.fullmatch(str(name)):
                raise StepFailed(ctx.step.key, f"header {name!r} is not an HTTP header name")
            try:
                str(value).encode("latin-1")
            except UnicodeEncodeError:
                # A value from a reference or secret (the schema checks literal ones).
                raise StepFailed(
                    ctx.step.key, f"header {name}: HTTP header values must be Latin-1 text"
                ) from None
        return {"url": url, "tries": 0}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        params = ctx.params
        handle["tries"] = handle.get("tries", 0) + 1
        interval = _seconds(params, "interval", 5.0)
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
        import http.client  # here, not at the top: validate reads this module and needs no network code
        import ssl

        parts = urlsplit(url)
        host, port, tls = route.host, route.port, route.tls
        timeout = _seconds(params, "request_timeout", 10.0)
        conn: http.client.HTTPConnection
        if tls:
            conn = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {"Host": parts.netloc, "User-Agent": "drplan-check", **params.get("headers", {})}
        try:
            conn.request(params.get("method", "GET"), path, headers=headers)
            response = conn.getresponse()
            body = response.read(1_000_000).decode("utf-8", errors="replace")
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            return False, f"no answer ({type(exc).__name__}: {exc})"
        finally:
            conn.close()
        expected = params.get("expect_status", 200)
        accepted = expected if isinstance(expected, list) else [expected]
        if status not in accepted:
            return False, f"status {status}, expected {'/'.join(map(str, accepted))}"
        if "body_contains" in params and params["body_contains"] not in body:
            return False, f"status {status}, but the body does not contain {params['body_contains']!r}"
        if "body_matches" in params and not re.search(params["body_matches"], body):
            return False, f"status {status}, but the body does not match /{params['body_matches']}/"
        return True, f"status {status}"

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
            port = int(ctx.params["port"])
        except (TypeError, ValueError):
            raise StepFailed(ctx.step.key, f"port {ctx.params['port']!r} is not a number") from None
        return {"host": str(ctx.params["host"]), "port": port, "tries": 0}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        handle["tries"] = handle.get("tries", 0) + 1
        route = ctx.route(handle["host"], handle["port"], False)
        if route.unverifiable:
            return Poll.unverified(route.unverifiable)
        host, port = route.host, route.port
        import socket

        try:
            with socket.create_connection((host, port), timeout=5):
                pass
        except OSError as exc:
            return Poll.running(
                f"try {handle['tries']}: {exc}", retry_after=_seconds(ctx.params, "interval", 5.0)
            )
        return Poll.finished(f"{handle['host']}:{handle['port']} accepted a connection")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {"address": f"{handle['host']}:{handle['port']}"}


ACTIONS = (HttpCheck, TcpCheck)
