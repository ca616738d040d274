"""A fault-injecting reverse proxy between drplan and the moto server.

drplan is given the proxy's URL as ``--endpoint-url``; every AWS call it makes passes here, is
named (``service:Operation``) and counted, and may be delayed, throttled, failed, cut off or
refused according to the rules in force. The rules can change at any moment of a run, from the
harness (:meth:`FaultProxy.set_rules`) or over HTTP (``/__faults__/...``), which is how a scenario
slows the deletions of a cleanup it is about to interrupt, or takes the endpoint down mid-run.

Naming an operation, per protocol:

* JSON (DynamoDB, Resource Groups Tagging): the ``X-Amz-Target`` header.
* query (RDS, STS) and EC2: the ``Action`` form field.
* REST (S3, Route 53): method, path, query keys and headers matched against botocore's own
  service model, so ``PUT /bucket/key`` with ``x-amz-copy-source`` is ``CopyObject`` and
  ``PUT /bucket`` is ``CreateBucket``.

EC2 honours ``ClientToken`` (a repeated create with the same token returns the first result and
creates nothing); moto does not, so the proxy does it for it: otherwise a retry that AWS would
absorb shows up as a duplicate volume. Replays are recorded as ``replayed``, not as forwarded.

Errors are answered the way each service does, so botocore parses the code: DynamoDB
``ThrottlingException`` (JSON ``__type``), RDS/STS/Route 53 ``Throttling`` (``ErrorResponse``
XML), EC2 ``RequestLimitExceeded`` (``Response/Errors`` XML, 503), S3 ``SlowDown`` (``Error``
XML, 503).
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

Action = Literal["delay", "throttle", "error", "reset", "drop_response"]
CONTROL_PREFIX = "/__faults__/"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
)
_CREDENTIAL = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


@dataclass
class Rule:
    """One fault. ``operations`` are ``fnmatch`` patterns matched against ``Operation``,
    ``service:Operation`` and, for Route 53 changes, ``service:Operation/ACTION`` (``Create*``,
    ``rds:Delete*``, ``route53:ChangeResourceRecordSets/DELETE``); empty means every request.

    * ``delay``: wait ``seconds`` before forwarding, or after it (``after_forward``: the backend
      has done the work, the answer is late). Delays add up; the request then goes on to the
      other rules.
    * ``throttle``: answer the service's throttling error; the request never reaches the backend.
    * ``error``: answer a 500 ``InternalError``; never reaches the backend.
    * ``reset``: close the connection with a TCP reset, without forwarding.
    * ``drop_response``: forward (the backend does the work), then reset instead of answering.

    ``probability`` draws from the proxy's seeded random generator; ``times`` caps how often the
    rule fires.
    """

    action: Action
    operations: tuple[str, ...] = ()
    probability: float = 1.0
    seconds: float = 0.0
    after_forward: bool = False
    times: int | None = None
    fired: int = 0

    def matches(self, service: str, operation: str, detail: str = "") -> bool:
        if not self.operations:
            return True
        names = (operation, f"{service}:{operation}", f"{service}:{operation}/{detail}" if detail else "")
        return any(fnmatch.fnmatchcase(name, p) for p in self.operations for name in names if name)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rule:
        return cls(
            action=data["action"],
            operations=tuple(data.get("operations", ())),
            probability=float(data.get("probability", 1.0)),
            seconds=float(data.get("seconds", 0.0)),
            after_forward=bool(data.get("after_forward", False)),
            times=data.get("times"),
        )


@dataclass(frozen=True)
class Request:
    """One request as the proxy saw it: what it was and what the proxy did with it."""

    at: float
    service: str
    operation: str
    fault: (
        str  # "" (passed through), "throttle", "error", "reset", "drop_response", "refused", "backend-down"
    )
    status: int | None
    forwarded: bool
    detail: str = ""  # Route 53 changes: the change actions (UPSERT, DELETE), so creates count apart

    @property
    def name(self) -> str:
        """``service:Operation``, with ``/DETAIL`` where it tells a create from a delete."""
        return f"{self.service}:{self.operation}" + (f"/{self.detail}" if self.detail else "")


@dataclass
class _Stats:
    requests: list[Request] = field(default_factory=list)
    inflight: int = 0


class FaultProxy:
    """A threaded HTTP reverse proxy on a loopback port, forwarding to ``backend``.

    Use as a context manager, or :meth:`start`/:meth:`stop`. :meth:`down` closes the listening
    socket and every open connection (connections are then refused, as from a dead endpoint);
    :meth:`up` listens again on the same port.
    """

    def __init__(self, backend: str, *, seed: int = 0, port: int = 0) -> None:
        parts = urlsplit(backend)
        self.backend_host = parts.hostname or "127.0.0.1"
        self.backend_port = parts.port or 80
        self.random = random.Random(seed)
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._stats = _Stats()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._tokens: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}
        self.port = port

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._stopping.clear()
        self._listen()
        return self

    def _listen(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.proxy = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed requests
        self.down()

    def down(self) -> None:
        """Refuse connections: stop listening and cut every open (keep-alive) connection."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # wake their handler threads; the client sees the connection drop
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def up(self) -> None:
        if self._server is None:
            self._listen()

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- rules and counts ------------------------------------------------------------------------

    def set_rules(self, rules: Iterable[Rule]) -> None:
        with self._lock:
            self._rules = list(rules)

    def add_rule(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """No faults, and forget every request seen (and every EC2 client token)."""
        with self._lock:
            self._rules = []
            self._stats = _Stats(inflight=self._stats.inflight)
            self._tokens = {}

    @contextmanager
    def rules(self, *rules: Rule) -> Iterator[None]:
        self.set_rules(rules)
        try:
            yield
        finally:
            self.set_rules([])

    def requests(self, since: float = 0.0) -> list[Request]:
        with self._lock:
            return [r for r in self._stats.requests if r.at >= since]

    def received(self, since: float = 0.0) -> Counter[str]:
        """Requests that arrived, per ``service:Operation`` (whatever the proxy did with them)."""
        return Counter(r.name for r in self.requests(since) if r.fault != "refused")

    def forwarded(self, since: float = 0.0) -> Counter[str]:
        """Requests the backend executed, per ``service:Operation``: what AWS would have acted on."""
        return Counter(r.name for r in self.requests(since) if r.forwarded)

    @property
    def inflight(self) -> int:
        with self._lock:
            return self._stats.inflight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled (delayed creates of a killed client still land)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.inflight == 0:
                return True
            time.sleep(0.05)
        return self.inflight == 0

    # --- used by the handler -------------------------------------------------------------------

    def _decide(self, service: str, operation: str, detail: str = "") -> tuple[float, float, Rule | None]:
        """(delay before, delay after forwarding, terminal rule or None) for one request."""
        before = after = 0.0
        terminal = None
        with self._lock:
            for rule in self._rules:
                if not rule.matches(service, operation, detail):
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if rule.probability < 1.0 and self.random.random() >= rule.probability:
                    continue
                if rule.action == "delay":
                    rule.fired += 1
                    if rule.after_forward:
                        after += rule.seconds
                    else:
                        before += rule.seconds
                elif terminal is None:
                    rule.fired += 1
                    terminal = rule
        return before, after, terminal

    def _record(self, request: Request) -> None:
        with self._lock:
            self._stats.requests.append(request)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def _inflight(self, delta: int) -> None:
        with self._lock:
            self._stats.inflight += delta

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """``GET /__faults__/counts``; ``GET|PUT /__faults__/rules``; ``POST /__faults__/clear``."""
        what = path[len(CONTROL_PREFIX) :].strip("/")
        if what == "counts" and method == "GET":
            return 200, {
                "received": self.received(),
                "forwarded": self.forwarded(),
                "inflight": self.inflight,
            }
        if what == "rules" and method == "GET":
            with self._lock:
                return 200, [asdict(r) for r in self._rules]
        if what == "rules" and method in ("PUT", "POST"):
            self.set_rules(Rule.from_json(r) for r in json.loads(body or b"[]"))
            return 200, {"ok": True}
        if what == "clear" and method == "POST":
            self.clear()
            return 200, {"ok": True}
        return 404, {"error": f"unknown control request {method} {path}"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients killed mid-request (the point of the exercise) are not errors worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like AWS endpoints: botocore pools connections
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.proxy._track(self.connection, True)

    def finish(self) -> None:
        with suppress(OSError):
            super().finish()
        self.server.proxy._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._body()
        if self.path.startswith(CONTROL_PREFIX):
            status, data = proxy._control(self.command, urlsplit(self.path).path, body)
            self._answer(status, {"Content-Type": "application/json"}, json.dumps(data).encode())
            return
        service, operation, protocol = identify(self.command, self.path, dict(self.headers.items()), body)
        proxy._inflight(+1)
        try:
            self._proxy(proxy, service, operation, protocol, body)
        finally:
            proxy._inflight(-1)

    def _proxy(self, proxy: FaultProxy, service: str, operation: str, protocol: str, body: bytes) -> None:
        detail = change_actions(operation, body)
        before, after, rule = proxy._decide(service, operation, detail)
        proxy._sleep(before)
        fault = rule.action if rule else ""

        def record(what: str, status: int | None, forwarded: bool) -> None:
            proxy._record(Request(time.time(), service, operation, what, status, forwarded, detail))

        if not proxy.is_up:  # taken down while this request waited
            record("refused", None, False)
            self._cut()
            return
        if fault in ("throttle", "error"):
            status, headers, payload = error_response(service, protocol, throttle=fault == "throttle")
            record(fault, status, False)
            self._answer(status, headers, b"" if self.command == "HEAD" else payload)
            return
        if fault == "reset":
            record(fault, None, False)
            self._cut()
            return
        token = ec2_client_token(service, operation, body)
        with proxy._lock:
            replay = proxy._tokens.get((operation, token)) if token else None
        if replay is not None:
            record("replayed", replay[0], False)
            status, headers, payload = replay
        else:
            try:
                status, headers, payload = self._forward(proxy, body)
            except OSError:
                record("backend-down", None, False)
                self._cut()
                return
            record(fault, status, True)
            if token and status == 200:
                with proxy._lock:
                    proxy._tokens[(operation, token)] = (status, headers, payload)
        proxy._sleep(after)
        if fault == "drop_response" or not proxy.is_up:
            self._cut()
            return
        self._answer(status, headers, payload)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, proxy: FaultProxy, body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(proxy.backend_host, proxy.backend_port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers.pop("Content-Length", None)
            headers.pop("Expect", None)
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            out = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            return response.status, out, payload
        finally:
            conn.close()

    def _answer(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
        try:
            self.send_response_only(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "date", "server"):
                    self.send_header(key, value)
            length = (
                headers.get("Content-Length", headers.get("content-length"))
                if self.command == "HEAD"
                else None
            )
            self.send_header("Content-Length", str(length if length is not None else len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _cut(self) -> None:
        _reset(self.connection)
        self.close_connection = True


def _reset(conn: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0): the client sees ``connection reset by peer``."""
    with suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        conn.close()


# --- naming requests ------------------------------------------------------------------------------


def identify(method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[str, str, str]:
    """(service, operation, protocol) of an AWS request: service is the SigV4 signing name."""
    match = _CREDENTIAL.search(headers.get("Authorization", "") or "")
    service = match.group(1) if match else ""
    target = headers.get("X-Amz-Target")
    if target:
        return service or target.split("_")[0].lower(), target.rsplit(".", 1)[-1], "json"
    parts = urlsplit(path)
    if service in ("s3", "route53") or (not service and method != "POST"):
        service = service or "s3"
        return service, _rest_operation(service, method, parts.path, parts.query, headers), "rest-xml"
    form = parse_qs(body.decode("utf-8", "replace")) if body else parse_qs(parts.query)
    action = (form.get("Action") or ["Unknown"])[0]
    return service or "unknown", action, "ec2" if service == "ec2" else "query"


def ec2_client_token(service: str, operation: str, body: bytes) -> str:
    """The ``ClientToken`` of an EC2 create call (``CreateVolume``, ``RunInstances``...), or ``""``."""
    if service != "ec2" or not operation.startswith(("Create", "Run")) or not body:
        return ""
    return (parse_qs(body.decode("utf-8", "replace")).get("ClientToken") or [""])[0]


def change_actions(operation: str, body: bytes) -> str:
    """``UPSERT``, ``DELETE``, ``CREATE`` (joined by ``+``) of a Route 53 change batch; else ``""``."""
    if operation != "ChangeResourceRecordSets":
        return ""
    return "+".join(sorted({a.decode() for a in re.findall(rb"<Action>([A-Z]+)</Action>", body)}))


@dataclass(frozen=True)
class _RestOp:
    name: str
    method: str
    pattern: re.Pattern[str]
    query: frozenset[str]
    headers: frozenset[str]
    literal: int

    @property
    def score(self) -> tuple[int, int]:
        return len(self.query) + len(self.headers), self.literal


@cache
def _rest_operations(service: str) -> tuple[_RestOp, ...]:
    """Every operation of a REST service, as a matcher built from botocore's service model."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    ops = []
    for name in model.operation_names:
        op = model.operation_model(name)
        uri_path, _, uri_query = op.http["requestUri"].partition("?")
        regex, literal = "", 0
        for token in re.split(r"(\{[^}]+\})", uri_path):
            if token.startswith("{"):
                regex += ".+" if token.endswith("+}") else "[^/]+"
            else:
                regex += re.escape(token)
                literal += len(token)
        query = {q.split("=")[0] for q in uri_query.split("&") if q and not q.startswith("x-id")}
        headers: set[str] = set()
        shape = op.input_shape
        for member in shape.required_members if shape else ():
            where = shape.members[member].serialization
            if where.get("location") == "querystring":
                query.add(where["name"])
            elif where.get("location") == "header":
                headers.add(where["name"].lower())
        pattern = re.compile(regex.rstrip("/") + "/?$")
        ops.append(_RestOp(name, op.http["method"], pattern, frozenset(query), frozenset(headers), literal))
    return tuple(ops)


def _rest_operation(service: str, method: str, path: str, query: str, headers: Mapping[str, str]) -> str:
    keys = set(parse_qs(query, keep_blank_values=True))
    present = {k.lower() for k in headers}
    candidates = [
        op
        for op in _rest_operations(service)
        if op.method == method and op.pattern.match(path) and op.query <= keys and op.headers <= present
    ]
    if not candidates:
        return f"{method} {path}"
    return max(candidates, key=lambda op: op.score).name


# --- errors as each protocol writes them ------------------------------------------------------------

_JSON_THROTTLE = {"dynamodb": "ThrottlingException", "tagging": "ThrottledException"}


def error_response(service: str, protocol: str, *, throttle: bool) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a throttling or internal error, as the service would send it."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id, "x-amz-request-id": request_id}
    if protocol == "json":
        code = _JSON_THROTTLE.get(service, "ThrottlingException") if throttle else "InternalServerError"
        message = "Rate exceeded" if throttle else "We encountered an internal error. Please try again."
        body = json.dumps({"__type": f"com.amazonaws.{service}#{code}", "message": message})
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return (400 if throttle else 500), headers, body.encode()
    headers["Content-Type"] = "text/xml"
    if protocol == "ec2":
        code, status = ("RequestLimitExceeded", 503) if throttle else ("InternalError", 500)
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>Request limit exceeded.</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        return status, headers, body.encode()
    if service == "s3":
        code, status = ("SlowDown", 503) if throttle else ("InternalError", 500)
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>Please reduce your request rate.</Message><RequestId>{request_id}</RequestId></Error>"
        )
        return status, headers, body.encode()
    code, status = ("Throttling", 400) if throttle else ("InternalFailure", 500)
    body = (
        f"<ErrorResponse><Error><Type>{'Sender' if throttle else 'Receiver'}</Type><Code>{code}</Code>"
        f"<Message>{'Rate exceeded' if throttle else 'Internal failure'}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, headers, body.encode()
