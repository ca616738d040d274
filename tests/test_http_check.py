"""check.http sends what a URL means even when it is written as a person would (non-ASCII, spaces),
and a header value HTTP cannot carry fails the step with a message, not an internal error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from drplan.actions.base import StepContext
from drplan.actions.checks import HttpCheck
from drplan.actions.probes import as_uri
from drplan.aws import AwsSession
from drplan.errors import StepFailed
from drplan.model import build_plan
from tests.runs import one_step


@pytest.fixture
def server() -> Iterator[tuple[int, list[str]]]:
    """A local HTTP server that answers 200 and records the request lines it got."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.server_port, seen
    httpd.shutdown()
    httpd.server_close()


def context(params: dict[str, Any]) -> StepContext:
    plan = build_plan(one_step("check.http", params))
    step = next(iter(plan.steps()))
    return StepContext(
        step,
        params,
        "recover",
        "r1",
        plan,
        AwsSession(),
        plan.objectives_of("svc"),
        datetime.now(timezone.utc),
    )


def test_a_url_with_non_ascii_characters_and_spaces_is_sent_percent_encoded(server):
    port, seen = server
    ctx = context({"url": f"http://127.0.0.1:{port}/santé/a b?q=été"})
    check = HttpCheck()
    handle = check.start(ctx)
    poll = check.poll(ctx, handle)
    assert poll.done and not poll.failed, poll
    assert seen == ["/sant%C3%A9/a%20b?q=%C3%A9t%C3%A9"]
    assert check.result(ctx, handle) == {"status": 200, "url": f"http://127.0.0.1:{port}{seen[0]}"}


@pytest.mark.parametrize(
    "url",
    [
        "http://x.example/%20already-escaped?a=1&b=%2F#frag",
        "https://user:pw@x.example:8443/a;b/c?d",
        "http://[::1]:8080/x",
    ],
)
def test_a_valid_url_is_left_exactly_as_written(url):
    assert as_uri(url) == url


def test_an_international_host_name_is_sent_in_idna():
    assert as_uri("http://bücher.example/x") == "http://xn--bcher-kva.example/x"


def test_a_header_value_http_cannot_carry_fails_the_step_with_a_message():
    # Literal values are refused by validate (DR104); this one could come from a reference.
    ctx = context({"url": "http://127.0.0.1:9/", "headers": {"X-Note": "日本"}})
    with pytest.raises(StepFailed, match="header X-Note: HTTP header values must be Latin-1 text"):
        HttpCheck().start(ctx)


def test_a_header_name_http_cannot_carry_fails_the_step_with_a_message():
    ctx = context({"url": "http://127.0.0.1:9/", "headers": {"X Note": "a"}})
    with pytest.raises(StepFailed, match="header 'X Note' is not an HTTP header name"):
        HttpCheck().start(ctx)
