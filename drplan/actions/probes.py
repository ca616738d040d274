"""One try of an HTTP or TCP check: what ``check.http`` and ``check.tcp`` do at each poll.

This module is also the source of the Lambda function an exported Step Functions state machine
invokes for its checks (the template embeds this file as the function's ``index.py``; its entry
point is :func:`handler`): a local run and an execution in AWS try a check with the same code and
report it with the same words. So it imports nothing but the standard library, and nothing of
drplan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

#: RFC 9110's token: what an HTTP header name may be made of.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class Refused(ValueError):
    """The check cannot be tried at all (its URL, header or port is wrong): the step fails."""


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


def http_target(url: str, headers: Mapping[str, Any]) -> str:
    """The URL to request, as HTTP sends it; :class:`Refused` when the check cannot be tried."""
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise Refused(f"{url!r} is not an http:// or https:// URL")
    try:
        url = as_uri(url)
    except UnicodeError as exc:
        raise Refused(f"{url!r}: its host name is not a valid domain name ({exc})") from exc
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(str(name)):
            raise Refused(f"header {name!r} is not an HTTP header name")
        try:
            str(value).encode("latin-1")
        except UnicodeEncodeError:
            # A value from a reference or secret (the schema checks literal ones).
            raise Refused(f"header {name}: HTTP header values must be Latin-1 text") from None
    return url


def try_http(
    url: str, params: Mapping[str, Any], host: str, port: int, tls: bool, timeout: float
) -> tuple[bool, str]:
    """Request ``url`` once, connecting to ``host:port`` (where the URL's host is reached):
    (passed, what was seen)."""
    import http.client  # here, not at the top: validate reads the checks and needs no network code
    import ssl

    parts = urlsplit(url)
    conn: http.client.HTTPConnection
    if tls:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
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


def tcp_port(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Refused(f"port {value!r} is not a number") from None


def try_tcp(host: str, port: int, timeout: float = 5) -> tuple[bool, str]:
    """Open a TCP connection to ``host:port`` once: (passed, what was seen)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return False, str(exc)
    return True, f"{host}:{port} accepted a connection"


#: Seconds kept back from the function's deadline to answer in time.
DEADLINE_MARGIN = 3.0


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda function's entry point: one try of the check ``event`` describes.

    ``event``: ``{"check": "http", "params": {...}, "request_timeout": seconds}`` (the step's
    ``with``, references filled in) or ``{"check": "tcp", "params": {"host", "port"}}``. The answer:
    ``ok`` and ``seen``, what the try saw; ``refused``, why the check cannot be tried at all (the
    step fails at once, as locally); the step's outputs under ``outputs`` once it passes.

    A try's timeout bounds each network operation, not the whole try (a host name with three
    addresses that drop packets takes it three times): given Lambda's ``context``, a try still going
    near the function's deadline is answered as a failed one, so the state machine tries again
    rather than seeing the function time out."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return _one_try(event)
    budget = max(1.0, remaining() / 1000 - DEADLINE_MARGIN)
    import threading

    answer: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: answer.update(_one_try(event)), daemon=True)
    worker.start()
    worker.join(budget)
    if worker.is_alive():
        return {"ok": False, "seen": f"no answer within {budget:.0f}s (the try was given up)"}
    return answer


def _one_try(event: Mapping[str, Any]) -> dict[str, Any]:
    params = dict(event.get("params") or {})
    try:
        if event.get("check") == "tcp":
            host, port = str(params.get("host")), tcp_port(params.get("port"))
            ok, seen = try_tcp(host, port)
            return {"ok": ok, "seen": seen, "outputs": {"address": f"{host}:{port}"}}
        url = http_target(str(params.get("url")), params.get("headers") or {})
    except Refused as exc:
        return {"ok": False, "refused": str(exc)}
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    timeout = float(event.get("request_timeout") or 10.0)
    ok, seen = try_http(url, params, parts.hostname or "", parts.port or (443 if tls else 80), tls, timeout)
    status = re.search(r"status (\d+)", seen)
    return {
        "ok": ok,
        "seen": seen,
        "outputs": {"status": int(status.group(1)) if status else None, "url": url},
    }
