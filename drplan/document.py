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
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from drplan.diagnostics import Diagnostic, Position, Related, Span, diagnostic, escape_pointer_token

# One JSON token, after optional whitespace. The text has already been accepted by json.loads,
# so the tokenizer can be permissive: it only has to find where each token starts and ends.
_TOKEN = re.compile(
    r'[ \t\n\r]*(?:("(?:[^"\\]|\\.)*")|([{}\[\],:])|(-?[0-9][0-9.eE+\-]*|true|false|null))',
    re.DOTALL,
)


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


class _DuplicateKeys(Exception):
    pass


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKeys
    return result


@dataclass
class Document:
    """A plan file as read: its text, its data (None when unreadable) and reading findings."""

    path: str
    text: str
    data: Any
    sha256: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.data is not None and not self.diagnostics

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

    def span_of(self, pointer: str | None) -> Span | None:
        """The span to show for a pointer.

        Objects and arrays that are members of an object are shown at their key (one line, not
        the whole block); scalars at their value. A pointer that does not exist (a missing
        property) falls back to the nearest existing parent.
        """
        if pointer is None or self.data is None:
            return None
        smap = self.source_map
        while True:
            value = smap.values.get(pointer)
            key = smap.keys.get(pointer)
            if value is not None:
                is_container = self.text[value[0]] in "{["
                start, end = key if (key is not None and is_container) else value
                return self.span(start, end)
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]

    def locate(self, diag: Diagnostic) -> Diagnostic:
        """Fill in the span of a diagnostic (and of its related places) from its pointer."""
        related = tuple(
            r if r.span is not None else replace(r, span=self.span_of(r.pointer)) for r in diag.related
        )
        span = diag.span if diag.span is not None else self.span_of(diag.pointer)
        return replace(diag, span=span, related=related)


def read_document(path: str | Path, *, display_path: str | None = None, data: bytes | None = None) -> Document:
    """Read and parse a plan file. Never raises for bad content; see ``Document.diagnostics``."""
    name = display_path or str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return Document(name, "", None, "", [diagnostic("DR004", f"cannot read file: {reason}", name, None)])
    digest = hashlib.sha256(data).hexdigest()
    text, problem = _decode(data)
    if problem is not None:
        problem_diag = diagnostic("DR003", problem[0], name, None)
        doc = Document(name, text, None, digest)
        doc.diagnostics.append(replace(problem_diag, span=doc.span(problem[1], problem[1] + 1)))
        return doc
    doc = Document(name, text, None, digest)
    try:
        doc.data = json.loads(text, object_pairs_hook=_pairs_without_duplicates)
    except _DuplicateKeys:
        doc.data = json.loads(text)
        doc.diagnostics.extend(_duplicate_key_diagnostics(doc))
    except json.JSONDecodeError as exc:
        doc.diagnostics.append(_malformed(doc, exc))
    except RecursionError:
        doc.diagnostics.append(
            replace(diagnostic("DR001", "the JSON is nested too deeply to read", name, None), span=doc.span(0, 0))
        )
    return doc


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
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8")
        byte = data[exc.start : exc.start + 1].hex()
        return good, (f"the file is not valid UTF-8: byte 0x{byte} cannot start or continue a character", len(good))


def _malformed(doc: Document, exc: json.JSONDecodeError) -> Diagnostic:
    message = exc.msg
    if message == "Expecting value" and exc.pos >= len(doc.text.rstrip()):
        message = "the file ends where a value was expected" if doc.text.strip() else "the file is empty"
    elif message.startswith("Expecting property name enclosed in double quotes"):
        message = "expected a property name in double quotes (a trailing comma, or a single-quoted key?)"
    elif message == "Extra data":
        message = "unexpected text after the end of the JSON document"
    else:
        message = message[0].lower() + message[1:]
    return replace(diagnostic("DR001", f"malformed JSON: {message}", doc.path, None), span=doc.span(exc.pos, exc.pos))


def _duplicate_key_diagnostics(doc: Document) -> list[Diagnostic]:
    out = []
    for pointer, first, again in doc.source_map.duplicates:
        key = doc.text[again[0] : again[1]]
        first_pos = doc.position(first[0])
        out.append(
            Diagnostic(
                code="DR002",
                severity=diagnostic("DR002", "", doc.path, None).severity,
                message=f"duplicate key {key}: it first appears at line {first_pos.line}; "
                "JSON readers keep only the last one",
                file=doc.path,
                pointer=pointer,
                span=doc.span(*again),
                related=(Related("first defined here", pointer, doc.span(*first)),),
            )
        )
    return out
