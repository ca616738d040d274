"""Read a plan file: JSON data plus a source map from JSON pointer to ``line:col``.

Reading never raises for bad content. Malformed JSON, duplicate keys and wrong encodings come
back as located diagnostics (codes DR001-DR004), so ``drplan validate`` can report them next to
everything else.

Speed matters here (PR checks on 10,000-service plans), so the data is parsed by the C JSON
decoder and the source map is built only when something needs a position: a compact regex
tokenizer walks the text once (the stdlib scanner cannot report positions, and forking it, as
cfn-lint did, costs ~600 lines).
"""

from __future__ import annotations

import bisect
import codecs
import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from drplan.diagnostics import Diagnostic, Position, Related, Span, diagnostic, escape_pointer_token, shorten

# One JSON token, after optional whitespace. The text has already been accepted by json.loads,
# so the tokenizer can be permissive: it only has to find where each token starts and ends.
_TOKEN = re.compile(
    r'[ \t\n\r]*(?:("(?:[^"\\]|\\.)*")|([{}\[\],:])|(-?[0-9][0-9.eE+\-]*|true|false|null|NaN|-?Infinity))',
    re.DOTALL,
)
# A \uXXXX escape of half a UTF-16 surrogate pair: only these can decode to a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


@dataclass
class SourceMap:
    """Where each value (and each object member's key) starts and ends, by JSON pointer."""

    values: dict[str, tuple[int, int]] = field(default_factory=dict)
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[tuple[str, tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    """(pointer, first key span, repeated key span) for every repeated key."""


def build_source_map(text: str) -> SourceMap:
    """Tokenize well-formed JSON once and record the offsets of every value and key."""
    smap = SourceMap()
    values, keys = smap.values, smap.keys
    # Each frame: [pointer, is_object, next_array_index, seen_keys, start_offset, pending_key_ptr]
    stack: list[list[Any]] = []
    target = ""  # pointer of the value expected next
    expect_key = False
    for match in _TOKEN.finditer(text):
        kind = match.lastindex
        start, end = match.start(kind), match.end(kind)  # type: ignore[arg-type]
        token = match.group(kind)  # type: ignore[arg-type]
        if kind == 2:  # punctuation
            if token in "{[":
                stack.append([target, token == "{", 0, {}, start])
                expect_key = token == "{"
                if not expect_key:
                    target = f"{target}/0"
            elif token in "}]":
                frame = stack.pop()
                values[frame[0]] = (frame[4], end)
                expect_key = False
            elif token == ",":
                frame = stack[-1]
                if frame[1]:
                    expect_key = True
                else:
                    frame[2] += 1
                    target = f"{frame[0]}/{frame[2]}"
            continue  # ":" needs nothing: the key already set the target
        if expect_key:  # a string in key position
            frame = stack[-1]
            name = token[1:-1] if "\\" not in token else json.loads(token)
            target = f"{frame[0]}/{escape_pointer_token(name)}"
            seen = frame[3]
            if name in seen:
                smap.duplicates.append((target, seen[name], (start, end)))
            seen[name] = (start, end)
            keys[target] = (start, end)
            expect_key = False
            continue
        values[target] = (start, end)
    return smap


class _NotJson(Exception):
    """``NaN``/``Infinity``: Python's reader accepts them, JSON (RFC 8259) and other tools do not."""


def _reject_constant(name: str) -> Any:
    raise _NotJson(name)


@dataclass
class Document:
    """A plan file as read: its text, its data and reading findings.

    ``parsed`` says whether the text was read as JSON at all; only then does ``data`` mean
    anything. ``data`` itself may be any JSON value, ``null`` included: that the top level must be
    an object is the schema's to say, at its place in the file.
    """

    path: str
    text: str
    data: Any
    sha256: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    parsed: bool = False
    #: The text has a number with a fraction or exponent that is a whole number (``1.0``, ``1e2``):
    #: JSON Schema counts it as an integer, Python code does not (see drplan.schema).
    integral_floats: bool = False

    @property
    def ok(self) -> bool:
        return self.parsed and not self.diagnostics

    @cached_property
    def _line_starts(self) -> list[int]:
        starts = [0]
        starts.extend(m.end() for m in re.finditer("\n", self.text))
        return starts

    @cached_property
    def source_map(self) -> SourceMap:
        return build_source_map(self.text)

    def position(self, offset: int) -> Position:
        line = bisect.bisect_right(self._line_starts, offset)
        return Position(line=line, column=offset - self._line_starts[line - 1] + 1, offset=offset)

    def span(self, start: int, end: int) -> Span:
        return Span(self.position(start), self.position(end))

    def span_of(self, pointer: str | None, *, at_key: bool = False) -> Span | None:
        """The span to show for a pointer.

        Objects and arrays that are members of an object are shown at their key (one line, not
        the whole block); scalars at their value, or at their key with ``at_key``. A pointer that
        does not exist (a missing property) falls back to the nearest existing parent.
        """
        if pointer is None or not self.parsed:
            return None
        smap = self.source_map
        while True:
            value = smap.values.get(pointer)
            key = smap.keys.get(pointer)
            if value is not None:
                is_container = self.text[value[0]] in "{["
                start, end = key if (key is not None and (is_container or at_key)) else value
                return self.span(start, end)
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]

    def locate(self, diag: Diagnostic) -> Diagnostic:
        """Fill in the span of a diagnostic (and of its related places) from its pointer."""
        related = tuple(
            r if r.span is not None else replace(r, span=self.span_of(r.pointer)) for r in diag.related
        )
        span = diag.span if diag.span is not None else self.span_of(diag.pointer, at_key=diag.at_key)
        if span is not None and diag.fragment:
            span = self._narrow(span, diag.fragment)
        return replace(diag, span=span, related=related)

    def _narrow(self, span: Span, fragment: str) -> Span:
        """The part of ``span`` where ``fragment`` is written (unchanged when escapes hide it).

        The last place: a fragment that runs to the end of a string (an unclosed ``${``) may also
        begin a closed reference earlier in it (``${a.b.c}-${a.b.c``), but it is found only there.
        """
        start = self.text.rfind(fragment, span.start.offset, span.end.offset)
        if start < 0:
            return span
        return self.span(start, start + len(fragment))


def read_document(
    path: str | Path, *, display_path: str | None = None, data: bytes | None = None
) -> Document:
    """Read and parse a plan file. Never raises for bad content; see ``Document.diagnostics``."""
    name = display_path or str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return Document(
                name, "", None, "", [diagnostic("DR004", f"cannot read file: {reason}", name, None)]
            )
    digest = hashlib.sha256(data).hexdigest()
    text, problem = _decode(data)
    if problem is not None:
        problem_diag = diagnostic("DR003", problem[0], name, None)
        doc = Document(name, text, None, digest)
        doc.diagnostics.append(replace(problem_diag, span=doc.span(problem[1], problem[1] + 1)))
        return doc
    doc = Document(name, text, None, digest)
    duplicates = False

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicates
        result = dict(pairs)  # the last value wins, as in every JSON reader
        if len(result) != len(pairs):
            duplicates = True
        return result

    def float_hook(token: str) -> float:
        value = float(token)  # called only for numbers with a fraction or an exponent: rare in plans
        if value.is_integer():
            doc.integral_floats = True
        return value

    try:
        parsed = json.loads(
            text, object_pairs_hook=pairs_hook, parse_constant=_reject_constant, parse_float=float_hook
        )
    except json.JSONDecodeError as exc:
        doc.diagnostics.append(_malformed(doc, exc))
        return doc
    except _NotJson as exc:
        constant = str(exc)
        message = f"malformed JSON: {constant} is not a JSON value"
        doc.diagnostics.append(_at_token(doc, lambda t: t == constant, message))
        return doc
    except ValueError:  # an integer too long for int(): sys.get_int_max_str_digits()
        limit = sys.get_int_max_str_digits()
        message = f"malformed JSON: a number has more than {limit} digits, too many to read"
        doc.diagnostics.append(_at_token(doc, lambda t: t[:1] in "-0123456789" and len(t) > limit, message))
        return doc
    except RecursionError:
        doc.diagnostics.append(
            replace(
                diagnostic("DR001", "the JSON is nested too deeply to read", name, None), span=doc.span(0, 0)
            )
        )
        return doc
    if _SURROGATE_ESCAPE.search(text):
        lone = _lone_surrogate(doc)
        if lone is not None:
            doc.diagnostics.append(lone)
            return doc
    doc.data = parsed
    doc.parsed = True
    if duplicates:
        doc.diagnostics.extend(_duplicate_key_diagnostics(doc))
    return doc


def _at_token(doc: Document, wanted: Callable[[str], bool], message: str) -> Diagnostic:
    """A DR001 at the first scalar token ``wanted`` accepts (json.loads gave no position)."""
    found = next((m for m in _TOKEN.finditer(doc.text) if m.lastindex == 3 and wanted(m.group(3))), None)
    span = doc.span(found.start(3), found.end(3)) if found else doc.span(0, 0)
    return replace(diagnostic("DR001", message, doc.path, None), span=span)


_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)


def _lone_surrogate(doc: Document) -> Diagnostic | None:
    """Half a surrogate pair (``"\\ud800"``) parses in Python but is no character: nothing can encode it."""
    for match in _TOKEN.finditer(doc.text):
        token = match.group(1)
        if token is None or not _SURROGATE_ESCAPE.search(token):
            continue
        pending: re.Match[str] | None = None  # a high surrogate waiting for its low half
        for escape in _ESCAPE.finditer(token):
            unit = int(escape.group(1), 16) if escape.group(1) else None
            if pending is not None and not (
                unit is not None and 0xDC00 <= unit <= 0xDFFF and escape.start() == pending.end()
            ):
                break
            if pending is not None:
                pending = None
            elif unit is not None and 0xD800 <= unit <= 0xDBFF:
                pending = escape
            elif unit is not None and 0xDC00 <= unit <= 0xDFFF:
                pending = escape  # a low half with no high half before it
                break
        if pending is None:
            continue
        message = f"malformed JSON: `{pending.group(0)}` is half of a UTF-16 surrogate pair, not a character"
        start = match.start(1) + pending.start()
        return replace(diagnostic("DR001", message, doc.path, None), span=doc.span(start, start + 6))
    return None


def _decode(data: bytes) -> tuple[str, tuple[str, int] | None]:
    """Decode UTF-8 (a UTF-8 BOM is tolerated); name the encoding when it is something else."""
    for bom, label in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if data.startswith(bom):
            return "", (f"the file is {label}; plans must be UTF-8 (convert it, e.g. with iconv -t UTF-8)", 0)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    # Without a BOM, UTF-16 and UTF-32 show as NUL bytes next to the first ASCII character (RFC 4627).
    encoding = json.detect_encoding(data)
    if encoding != "utf-8":
        label = "UTF-" + encoding.split("-")[1]  # utf-16-le -> UTF-16
        return "", (f"the file is {label}; plans must be UTF-8 (convert it, e.g. with iconv -t UTF-8)", 0)
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8")
        byte = data[exc.start : exc.start + 1].hex()
        return good, (
            f"the file is not valid UTF-8: byte 0x{byte} cannot start or continue a character",
            len(good),
        )


def _malformed(doc: Document, exc: json.JSONDecodeError) -> Diagnostic:
    message = exc.msg
    before = doc.text[: exc.pos].rstrip()
    comment = next((c for c in ("//", "/*", "#") if doc.text.startswith(c, exc.pos)), None)
    if comment is not None:
        kind = "`/* ... */`" if comment == "/*" else f"`{comment}`"
        message = (
            f"JSON has no comments: remove this {kind} comment (a `description` property can hold the note)"
        )
    elif message == "Expecting value" and exc.pos >= len(doc.text.rstrip()):
        message = "the file ends where a value was expected" if doc.text.strip() else "the file is empty"
    elif message == "Expecting value" and before.endswith(",") and doc.text[exc.pos : exc.pos + 1] in "]}":
        message = "expected a value after the comma (a trailing comma?)"
    elif message.startswith("Expecting property name enclosed in double quotes"):
        message = "expected a property name in double quotes (a trailing comma, or a single-quoted key?)"
    elif message == "Extra data":
        message = "unexpected text after the end of the JSON document"
    elif message == "Unterminated string starting at":
        message = 'a string starts here but is never closed (a missing `"`?)'
    elif message == "Invalid control character at":
        message = "a string contains a control character (write it as an escape such as \\n or \\t)"
    else:
        message = message.removesuffix(" at")  # json's messages end in " at" when the position follows
        message = message[0].lower() + message[1:]
    return replace(
        diagnostic("DR001", f"malformed JSON: {message}", doc.path, None), span=doc.span(exc.pos, exc.pos)
    )


def _duplicate_key_diagnostics(doc: Document) -> list[Diagnostic]:
    out = []
    for pointer, first, again in doc.source_map.duplicates:
        key = shorten(doc.text[again[0] : again[1]])
        out.append(
            Diagnostic(
                code="DR002",
                severity=diagnostic("DR002", "", doc.path, None).severity,
                # No line number in the message: the related location carries it, and the message must
                # stay the same when lines move (SARIF fingerprints are computed from it).
                message=f"duplicate key {key} in the same object; JSON readers keep only the last one",
                file=doc.path,
                pointer=pointer,
                span=doc.span(*again),
                related=(Related("first defined here", pointer, doc.span(*first)),),
            )
        )
    return out
