"""The sandbox's stand-in for the applications and databases a plan checks.

The sandbox emulates AWS, not the applications running on it: there is no PostgreSQL behind an
emulated RDS endpoint and no web shop behind ``shop.example.com``. So that a check of an emulated
database endpoint has something to connect to, this module serves one loopback port that accepts
TCP connections and answers every HTTP request with ``200 ok``. The sandbox sends a check here only
for endpoints it emulates: database endpoints that exist in the emulated AWS *and* are available,
and names the emulated Route 53 resolves to them. A check of any other host, and any check that
judges what an application answers (``body_contains``, ``body_matches``), ends at once as *not
verifiable in the sandbox*: neither a pass nor a failure, and said so in the output and evidence.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server_version = "drplan-sandbox-standin/1"

    def _answer(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_OPTIONS = _answer

    def log_message(self, format: str, *args: object) -> None:  # keep the terminal for drplan's own output
        pass


class StandIn:
    """A loopback HTTP server (and therefore a TCP listener) on a free port."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one interval
            name="sandbox-standin",
            daemon=True,
        )

    def start(self) -> StandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
