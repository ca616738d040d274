"""SANDBOX ONLY: the sandbox's own AWS calls answered in this process, without HTTP.

The sandbox's emulator is a WSGI application (:func:`drplan.sandbox.start_sandbox`'s ``app``:
the AWS Backup and global cluster emulators, the refusal of what nothing emulates, and moto). It
is also served on a loopback port, for whatever needs a real endpoint (a ``drplan`` subprocess
given ``--endpoint-url``, tests); but the clients of the sandbox's own sessions hand every request
to the application directly: a ``before-send`` handler (:class:`InProcessRoute`, the hook moto's
own ``mock_aws`` uses) turns botocore's prepared request into the WSGI environ werkzeug's server
would have built from the same bytes, calls the application in the caller's thread, and gives
botocore the answer as an ``AWSResponse`` it reads as it would a socket's (streaming bodies such
as S3 ``GetObject`` included). Nothing else changes: botocore still builds, signs and parses
every request, the URL is the server's, and each answer is the one the server would have sent.
What is saved is the loopback round trip: urllib3, a socket, werkzeug's thread per request and
its HTTP parsing, about two thirds of the CPU of a trivial call.

Thread safety: a run calls AWS from several worker threads, as the server already called the
application from one thread per request; the route itself keeps no state.
"""

from __future__ import annotations

import io
import logging
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote, urlsplit

#: A WSGI application: ``app(environ, start_response) -> iterable of bytes``.
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Methods whose requests carry a Content-Length even when empty (as urllib3 sends them).
_METHODS_EXPECTING_BODY = frozenset({"PATCH", "POST", "PUT"})


class ResponseBody(io.BytesIO):
    """An answer's body, read by botocore as it reads urllib3's response: ``read(amt)`` (streaming
    outputs such as S3 ``GetObject``, through ``StreamingBody``) and ``stream()`` (every other)."""

    def stream(self, amt: int = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


class InProcessRoute:
    """A ``before-send`` handler answering a client's requests with ``app`` in this process.

    ``server`` is the (host, port) of the loopback server the requests are addressed to, which
    werkzeug would put in ``SERVER_NAME`` and ``SERVER_PORT``."""

    def __init__(self, app: WsgiApp, server: tuple[str, int]) -> None:
        self.app = app
        self.server_name, self.server_port = server[0], str(server[1])

    def register(self, client: Any) -> None:
        """Route ``client``'s requests here (each handler of ``before-send`` may answer first; none
        of the sandbox's does)."""
        client.meta.events.register("before-send", self)

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        status, headers, body = self.answer(self.environ(request))
        return AWSResponse(request.url, status, headers, ResponseBody(body))

    def environ(self, request: Any) -> dict[str, Any]:
        """The WSGI environ werkzeug's server builds from this request as urllib3 would send it."""
        url = urlsplit(request.url)
        target = url.path or "/"
        if url.query:
            target += "?" + url.query
        body = _body_bytes(request.body)
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url.scheme or "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": _latin1(unquote(url.path or "/")),
            "QUERY_STRING": _latin1(url.query),
            "REQUEST_URI": _latin1(target),
            "RAW_URI": _latin1(target),
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": 0,
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": self.server_port,
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        names = set()
        for name, value in request.headers.items():
            names.add(name.lower())
            if "_" in name:  # werkzeug drops them (they could pose as another header)
                continue
            key = name.upper().replace("-", "_")
            text = (value.decode("latin-1") if isinstance(value, bytes) else str(value)).replace("\r\n", "")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
                if key in environ:
                    text = f"{environ[key]},{text}"
            environ[key] = text
        # What urllib3 and http.client add on the wire.
        environ.setdefault("HTTP_HOST", url.netloc)
        environ.setdefault("HTTP_ACCEPT_ENCODING", "identity")
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked:
            environ["wsgi.input_terminated"] = True
        elif "content-length" not in names and (body or request.method in _METHODS_EXPECTING_BODY):
            environ["CONTENT_LENGTH"] = str(len(body))
        return environ

    def answer(self, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of the application's answer to ``environ``; a failure of the
        application is answered as werkzeug's server answers it (500, the traceback logged)."""
        try:
            return _call(self.app, environ)
        except Exception:
            logging.getLogger("werkzeug").error("Error on request:\n%s", traceback.format_exc())
            from werkzeug.exceptions import InternalServerError

            return _call(InternalServerError(), environ)


def _call(app: WsgiApp, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    started: list[Any] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return written.append

    written: list[bytes] = []
    result = app(environ, start_response)
    try:
        data = b"".join([*written, *result])
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, header_list = started
    headers: dict[str, str] = {}
    for name, value in header_list:
        key = next((k for k in headers if k.lower() == name.lower()), name)
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if not any(k.lower() == "date" for k in headers):
        headers["Date"] = formatdate(usegmt=True)  # werkzeug's server adds it
    code = int(status.split(None, 1)[0])
    if environ["REQUEST_METHOD"] == "HEAD" or code < 200 or code in (204, 304):
        data = b""
    return code, headers, data


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):  # a file-like body (an upload): read as urllib3 would send it
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return b"".join(bytes(chunk) for chunk in body)  # an iterable of chunks


def _latin1(text: str) -> str:
    """WSGI's "bytes as latin-1" strings (werkzeug's ``_wsgi_encoding_dance``)."""
    return text.encode("utf-8").decode("latin-1")
