"""The reader: JSON data, a source map from JSON pointer to 1-based ``line:col``, reading findings."""

from __future__ import annotations

import codecs
import json
import sys

import pytest

from drplan.diagnostics import Position, Span
from drplan.document import Document, build_source_map, read_document


def read(text: str | bytes) -> Document:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return read_document("plan.json", data=data)


def at(doc: Document, pointer: str) -> tuple[int, int, int, int]:
    """(start line, start column, end line, end column) shown for a pointer."""
    span = doc.span_of(pointer)
    assert span is not None, pointer
    return span.start.line, span.start.column, span.end.line, span.end.column


def codes(doc: Document) -> list[tuple[str, int, int]]:
    return [(d.code, d.line, d.column) for d in doc.diagnostics]


# --- source map -------------------------------------------------------------------------------


def test_positions_are_one_based_and_ends_exclusive() -> None:
    doc = read('{\n  "name": "shop",\n  "tier": 12\n}\n')
    assert doc.ok
    # "shop" (with its quotes) starts in column 11 of line 2 and covers 6 characters.
    assert at(doc, "/name") == (2, 11, 2, 17)
    assert at(doc, "/tier") == (3, 11, 3, 13)
    assert doc.text.splitlines()[1][10:16] == '"shop"'


def test_offsets_of_every_value_and_key() -> None:
    text = '{"a": [1, [], {}, [2, 3]], "e": {}}'
    smap = build_source_map(text)
    found = {pointer: text[start:end] for pointer, (start, end) in smap.values.items()}
    assert found == {
        "": text,
        "/a": "[1, [], {}, [2, 3]]",
        "/a/0": "1",
        "/a/1": "[]",
        "/a/2": "{}",
        "/a/3": "[2, 3]",
        "/a/3/0": "2",
        "/a/3/1": "3",
        "/e": "{}",
    }
    assert {p: text[s:e] for p, (s, e) in smap.keys.items()} == {"/a": '"a"', "/e": '"e"'}


def test_containers_inside_objects_are_shown_at_their_key_and_array_items_at_themselves() -> None:
    doc = read(
        '{\n  "services": {\n    "db": {\n      "steps": [\n        {"id": "x"}\n      ]\n    }\n  }\n}'
    )
    assert at(doc, "/services/db") == (3, 5, 3, 9)  # the key "db", not the whole block
    assert at(doc, "/services/db/steps/0") == (5, 9, 5, 20)  # an array item has no key: its braces
    assert at(doc, "") == (1, 1, 9, 2)


def test_a_missing_member_falls_back_to_its_nearest_parent() -> None:
    doc = read('{\n  "aws": {\n    "region": "x"\n  }\n}')
    assert doc.span_of("/aws/account_id") == doc.span_of("/aws")
    assert at(doc, "/aws/account_id") == (2, 3, 2, 8)


@pytest.mark.parametrize(
    ("key", "pointer"),
    [
        ("a/b", "/a~1b"),
        ("m~n", "/m~0n"),
        ("~1", "/~01"),  # "~1" written literally: the "~" is escaped first, so it is not a "/"
        ("", "/"),
        ('quote"d', '/quote"d'),
    ],
)
def test_keys_become_rfc6901_pointers(key: str, pointer: str) -> None:
    doc = read(json.dumps({key: {"inner": True}}, indent=1))
    assert pointer in doc.source_map.values
    assert at(doc, pointer + "/inner")[0] == 3


def test_escaped_keys_are_decoded_before_they_become_pointers() -> None:
    # "\u002f" is "/" and "\u007e" is "~": the pointer depends on the key, not on how it is written.
    doc = read('{"a\\u002fb": 1, "\\u007e": 2, "tab\\there": 3}')
    assert set(doc.source_map.values) == {"", "/a~1b", "/~0", "/tab\there"}
    assert doc.data == {"a/b": 1, "~": 2, "tab\there": 3}


def test_columns_count_code_points() -> None:
    # "é" is 2 bytes in UTF-8 and "🚀" is 4 bytes (and 2 UTF-16 units): each is one column.
    text = '{"é🚀": "x", "b": "🚀🚀", "c": 1}'
    doc = read(text)
    assert at(doc, "/é🚀") == (1, 8, 1, 11)  # { " é 🚀 " : space, then "x" in column 8
    assert at(doc, "/b") == (1, 18, 1, 22)  # "🚀🚀" with its quotes is 4 columns (12 bytes)
    assert at(doc, "/c") == (1, 29, 1, 30)
    assert text.encode("utf-8").index(b"1") + 1 == 29 + 1 + 3 + 3 + 3  # in bytes it would be column 38


def test_crlf_line_endings() -> None:
    doc = read('{\r\n  "a": 1,\r\n  "b": [\r\n    true\r\n  ]\r\n}\r\n')
    assert at(doc, "/a") == (2, 8, 2, 9)
    assert at(doc, "/b/0") == (4, 5, 4, 9)


def test_utf8_byte_order_mark_is_tolerated_and_not_counted() -> None:
    doc = read(codecs.BOM_UTF8 + b'{"a": 1}')
    assert doc.ok
    assert doc.data == {"a": 1}
    assert at(doc, "/a") == (1, 7, 1, 8)


def test_position_of_an_offset() -> None:
    doc = read("ab\ncd\n")
    assert doc.position(0) == Position(1, 1, 0)
    assert doc.position(3) == Position(2, 1, 3)
    assert doc.position(6) == Position(3, 1, 6)  # the end of the file
    assert doc.span(1, 4) == Span(Position(1, 2, 1), Position(2, 2, 4))


def test_sha256_of_the_bytes_read() -> None:
    import hashlib

    data = b'{"a": 1}\n'
    assert read(data).sha256 == hashlib.sha256(data).hexdigest()


# --- DR001 malformed JSON -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("", 1, 1, "the file is empty"),
        ("  \n\n", 3, 1, "the file is empty"),
        ('{\n  "a": 1,\n}', 3, 1, "trailing comma"),
        ('{\n  "a": [1, 2,]\n}', 2, 14, "trailing comma"),
        ('{"a": 1}\n{"b": 2}', 2, 1, "unexpected text after the end of the JSON document"),
        ('{"a": [1, 2', 1, 12, "expecting ',' delimiter"),
        ('{"a": ', 1, 7, "the file ends where a value was expected"),
        ("{'a': 1}", 1, 2, "property name in double quotes"),
        ('{"a": "b', 1, 7, "never closed"),
        ('{"a": "tab\there"}', 1, 11, "control character"),
        ('{"a": "\\x"}', 1, 8, "invalid \\escape"),
        ('{"a": NaN}', 1, 7, "NaN is not a JSON value"),
        ('{"a": [1, -Infinity]}', 1, 11, "-Infinity is not a JSON value"),
        ('{\n "a": "\\ud800"}', 2, 8, "`\\ud800` is half of a UTF-16 surrogate pair"),
        ('{"\\udc00": 1}', 1, 3, "`\\udc00` is half of a UTF-16 surrogate pair"),
        ('{"a": "\\ud83d\\ude00 then \\ud83d"}', 1, 26, "`\\ud83d` is half"),
        # Comments, wherever JSON's reader trips over them: at a value, a key, after a value.
        ('{\n  "a": // the a\n  1\n}', 2, 8, "JSON has no comments: remove this `//` comment"),
        ('{\n  // a note\n  "a": 1\n}', 2, 3, "JSON has no comments: remove this `//` comment"),
        ('{"a": 1 // a note\n}', 1, 9, "JSON has no comments"),
        ('{"a": 1, /* a\nnote */ "b": 2}', 1, 10, "remove this `/* ... */` comment"),
        ("/* a plan */\n{}", 1, 1, "remove this `/* ... */` comment"),
        ('{"a": 1,\n# a note\n"b": 2}', 2, 1, "remove this `#` comment"),
    ],
)
def test_malformed_json_is_a_located_dr001(text: str, line: int, column: int, words: str) -> None:
    doc = read(text)
    assert doc.data is None and not doc.parsed
    assert codes(doc) == [("DR001", line, column)]
    assert words in doc.diagnostics[0].message
    assert doc.diagnostics[0].message.startswith("malformed JSON: ")


def test_a_surrogate_pair_and_an_escaped_backslash_are_fine() -> None:
    doc = read('{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}')
    assert doc.ok
    assert doc.data == {"a": "😀", "b": "\\ud800"}


def test_an_integer_too_long_for_python_is_dr001_not_a_crash() -> None:
    digits = sys.get_int_max_str_digits() + 1
    doc = read('{\n  "a": [1, ' + "9" * digits + "]\n}")
    assert codes(doc) == [("DR001", 2, 12)]  # `  "a": [1, ` is 11 characters
    assert f"more than {digits - 1} digits" in doc.diagnostics[0].message


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 3000 + "]" * 3000, '{"a":' * 5000 + "1" + "}" * 5000])
def test_deep_nesting_is_dr001_not_a_crash(text: str) -> None:
    doc = read(text)
    assert doc.data is None
    assert codes(doc) == [("DR001", 1, 1)]
    assert "nested too deeply" in doc.diagnostics[0].message


# --- DR002 duplicate keys -------------------------------------------------------------------------


def test_duplicate_keys_at_every_depth_with_the_first_one_as_related() -> None:
    doc = read('{\n  "a": 1,\n  "b": {"x": 1, "x": 2},\n  "a": 3\n}')
    assert doc.data == {"a": 3, "b": {"x": 2}}  # read like every JSON reader: the last one wins
    found = sorted(doc.diagnostics, key=lambda d: d.line)
    assert [(d.code, d.pointer, d.line, d.column) for d in found] == [
        ("DR002", "/b/x", 3, 17),
        ("DR002", "/a", 4, 3),
    ]
    assert [(r.pointer, r.span.start.line, r.span.start.column) for r in found[1].related] == [("/a", 2, 3)]
    assert [(r.span.start.line, r.span.start.column) for r in found[0].related] == [(3, 9)]
    assert found[1].message == 'duplicate key "a" in the same object; JSON readers keep only the last one'


def test_same_key_in_different_objects_is_not_a_duplicate() -> None:
    assert read('{"a": {"x": 1}, "b": {"x": 1}, "c": [{"x": 1}, {"x": 2}]}').ok


def test_keys_that_differ_only_in_escapes_are_duplicates() -> None:
    doc = read('{"a": 1, "\\u0061": 2}')
    assert [(d.code, d.pointer) for d in doc.diagnostics] == [("DR002", "/a")]


def test_duplicates_before_a_syntax_error_give_dr001_not_a_crash() -> None:
    doc = read('{"x": {"a": 1, "a": 2}, "y": }')
    assert codes(doc) == [("DR001", 1, 30)]


# --- DR003 encodings, DR004 unreadable ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "label"),
    [
        ('{"a": 1}'.encode("utf-16"), "UTF-16"),
        ('{"a": 1}'.encode("utf-16-le"), "UTF-16"),
        ('{"a": 1}'.encode("utf-16-be"), "UTF-16"),
        ('{"a": 1}'.encode("utf-32"), "UTF-32"),
        ('{"a": 1}'.encode("utf-32-be"), "UTF-32"),
    ],
)
def test_utf16_and_utf32_with_or_without_bom_are_dr003(data: bytes, label: str) -> None:
    doc = read(data)
    assert doc.data is None
    assert codes(doc) == [("DR003", 1, 1)]
    assert doc.diagnostics[0].message.startswith(f"the file is {label}; plans must be UTF-8")


def test_invalid_utf8_is_dr003_at_the_bad_byte() -> None:
    doc = read(b'{\n  "name": "caf\xe9"\n}')
    assert codes(doc) == [("DR003", 2, 15)]
    assert "byte 0xe9" in doc.diagnostics[0].message


def test_a_file_that_cannot_be_read_is_dr004(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for path in (tmp_path / "missing.json", tmp_path):  # missing, and a directory
        doc = read_document(path)
        assert doc.data is None
        assert [d.code for d in doc.diagnostics] == ["DR004"]
        assert doc.diagnostics[0].message.startswith("cannot read file: ")
        assert doc.diagnostics[0].file == str(path)


def test_display_path_names_the_file_in_findings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.json"
    path.write_text("{")
    doc = read_document(path, display_path="shown.json")
    assert doc.path == "shown.json"
    assert doc.diagnostics[0].file == "shown.json"


# --- what was read: any JSON value, and whether it has numbers like 1.0 ----------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("null", None), ("[]", []), ("3", 3), ('"x"', "x"), ("false", False)]
)
def test_any_json_value_is_read_and_parsed_even_null(text: str, value: object) -> None:
    # `data is None` used to mean "could not read", so a file holding `null` passed as valid.
    doc = read(text)
    assert doc.parsed and doc.ok and doc.data == value
    assert doc.span_of("") is not None


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ('{"a": 1}', False),
        ('{"a": 1.5}', False),
        ('{"a": "1.0"}', False),
        ('{"a": 1.0}', True),
        ('{"a": [2, 1e2]}', True),
        ('{"a": -0.0}', True),
        ('{"a": 1e999}', False),  # infinity: not a whole number (the schema refuses it anyway)
    ],
)
def test_the_reader_notices_integral_floats(text: str, flag: bool) -> None:
    assert read(text).integral_floats is flag


def test_a_long_duplicate_key_is_shortened_in_the_message() -> None:
    key = "k" * 5000
    doc = read(f'{{"{key}": 1, "{key}": 2}}')
    (dup,) = doc.diagnostics
    assert dup.code == "DR002" and len(dup.message) < 200
    assert "…(5002 characters)" in dup.message  # the key as written, quotes included
