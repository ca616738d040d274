"""Property-based tests: ``validate`` survives anything, and the two schema validators agree."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
from click.testing import CliRunner
from conftest import EXAMPLE_PLANS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drplan import schema as drplan_schema
from drplan.cli import cli
from drplan.schema import has_integral_float, is_valid, plan_schema

EXAMPLES = [json.loads(p.read_text(encoding="utf-8")) for p in EXAMPLE_PLANS]
EXAMPLE_TEXTS = [p.read_bytes() for p in EXAMPLE_PLANS]

# Random JSON values. No NaN or Infinity: they are not JSON (the reader rejects them on its own).
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
# Values of the kinds the plan format uses, so mutations often reach deep into valid structure.
PLAUSIBLE = st.sampled_from(
    [
        "PT5M",
        "P1D",
        "latest",
        "db",
        "x.y.z",
        "${db.restore.endpoint}",
        "aws.rds.restore_snapshot",
        "check.http",
        "recover",
        "drill",
        "",
        0,
        1,
        5,
        -1,
        1.5,
        True,
        None,
        [],
        {},
        1.0,  # an integer to JSON Schema, not to drplan (write 1)
        60.0,
        ["db"],
        {"url": "https://x"},
        # Where regex dialects differ: "$" before a final newline, and non-ASCII digits for \d.
        "db\n",
        "PT5M\n",
        "123456789012\n",
        "PT\u0665M",
        "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662",
    ]
)


ARABIC_DIGITS = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")


def paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document, as a tuple of keys and indexes."""
    out = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*here, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += paths(value, (*here, i))
    return out


def get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_plans(draw: st.DrawFn) -> Any:
    """An example plan with one to four mutations: delete, retype, replace or insert a value."""
    doc = json.loads(json.dumps(draw(st.sampled_from(EXAMPLES))))
    for _ in range(draw(st.integers(1, 4))):
        places = paths(doc)
        path = draw(st.sampled_from(places))
        kind = draw(st.sampled_from(["delete", "replace", "insert", "retype", "dialect"]))
        new = copy.deepcopy(draw(VALUES | PLAUSIBLE))  # PLAUSIBLE holds lists and dicts: never share them
        if not path:
            if kind == "replace":
                doc = new
            continue
        parent, last = get(doc, path[:-1]), path[-1]
        if kind == "delete":
            del parent[last]
        elif kind == "insert":
            target = get(doc, path)
            if isinstance(target, dict):
                target[
                    draw(st.text(max_size=8) | st.sampled_from(["id", "uses", "with", "after", "estimate"]))
                ] = new
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), new)
            else:
                parent[last] = new
        elif kind == "dialect":  # a small edit where Python's and ECMA-262's regexes disagree
            if isinstance(parent[last], str):
                parent[last] = draw(
                    st.sampled_from([parent[last] + "\n", parent[last].translate(ARABIC_DIGITS)])
                )
        elif kind == "retype":
            old = parent[last]
            parent[last] = (
                ([old] if not isinstance(old, list) else {"value": old})
                if draw(st.booleans())
                else json.dumps(old)
            )
        else:
            parent[last] = new
    return doc


# Tokens that Python's json module reads but that are not JSON or not text, and strings that
# differ between regex dialects; spliced into the text in place of a value.
NASTY = [
    "NaN",
    "-Infinity",
    "1e999",
    "9" * 4400,
    '"\\ud800"',
    '"x\\udfff y"',
    '"\\ud83d\\ude00"',
    '"\\\\ud800"',
    '"\\u0000"',
    '"a\\nb"',
    '"\\u001b[31m"',
    '"123456789012\\n"',
    '"PT\u0661H"',
    '"\u0661\u0662"',
    "[" * 50 + "]" * 50,
    '{"": {"~1/": []}}',
    "-0",
    "1.0",
    "0.1e1",
]
VALUE_TOKEN = re.compile(r'(?<=: )("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*|true|false|null)')


@st.composite
def dialect_plans(draw: st.DrawFn) -> Any:
    """An example plan with one string where Python's and ECMA-262's regexes disagree: a final
    newline, or Arabic-Indic digits. Everything else stays valid, so only that string decides."""
    doc = json.loads(json.dumps(draw(st.sampled_from(EXAMPLES))))
    leaves = [p for p in paths(doc) if p and isinstance(get(doc, p), str)]
    path = draw(st.sampled_from(leaves))
    parent, last = get(doc, path[:-1]), path[-1]
    parent[last] = draw(st.sampled_from([parent[last] + "\n", parent[last].translate(ARABIC_DIGITS)]))
    return doc


@st.composite
def corrupted_texts(draw: st.DrawFn) -> bytes:
    """An example plan's bytes: truncated, with bytes overwritten, with a value replaced by a
    nasty token, or a mutated plan written out."""
    kind = draw(st.sampled_from(["mutated", "truncated", "bytes", "both", "spliced", "spliced"]))
    if kind == "mutated":
        return json.dumps(draw(mutated_plans()), indent=draw(st.sampled_from([None, 2]))).encode("utf-8")
    if kind == "spliced":
        text = draw(st.sampled_from(EXAMPLE_TEXTS)).decode("utf-8")
        for _ in range(draw(st.integers(1, 3))):
            spots = list(VALUE_TOKEN.finditer(text))
            spot = draw(st.sampled_from(spots))
            text = text[: spot.start()] + draw(st.sampled_from(NASTY)) + text[spot.end() :]
        return text.encode("utf-8")
    data = bytearray(draw(st.sampled_from(EXAMPLE_TEXTS)))
    if kind in ("truncated", "both"):
        data = data[: draw(st.integers(0, len(data)))]
    if kind in ("bytes", "both") and data:
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def check_run(data: bytes, fmt: str = "json") -> None:
    result = CliRunner().invoke(cli, ["validate", "--format", fmt, "-"], input=data)
    # No traceback: any exception other than the command's own exit is a crash.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code in (0, 1, 2)
    report = json.loads(result.stdout)
    assert result.exit_code == (1 if report["error_count"] else 0)
    for d in report["diagnostics"]:
        assert d["range"] is not None, d
        start, end = d["range"]["start"], d["range"]["end"]
        assert start["line"] >= 1 and start["column"] >= 1, d
        assert (end["line"], end["column"]) >= (start["line"], start["column"]), d
        for r in d.get("related", []):
            assert r["range"]["start"]["line"] >= 1 and r["range"]["start"]["column"] >= 1, r


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_texts())
def test_validate_never_crashes_on_mutated_plans(data: bytes) -> None:
    check_run(data)


@settings(max_examples=30, deadline=None)
@given(VALUES)
def test_validate_never_crashes_on_random_json(value: Any) -> None:
    check_run(json.dumps(value).encode("utf-8"))


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=100).map(lambda t: t.encode("utf-8")))
def test_validate_never_crashes_on_random_bytes(data: bytes) -> None:
    check_run(data)


_PYTHON_ONLY_MATCH = re.compile(r"\n\Z|[^\x00-\x7f]")


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (k, *_strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


STOCK = jsonschema.Draft202012Validator(plan_schema())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_plans() | dialect_plans())
def test_the_two_validators_agree(doc: Any) -> None:
    fast = is_valid(doc)
    # What drplan runs: jsonschema-rs for the verdict, jsonschema for the explanation.
    assert fast == drplan_schema._explaining_validator().is_valid(doc)
    assert bool(drplan_schema.validate_schema(doc, "p.json")) == (not fast)
    # Stock jsonschema too, except on strings where Python's regex dialect differs from ECMA-262
    # (a final newline, non-ASCII digits): see test_schema.py::test_patterns_mean_*; and on numbers
    # like 1.0, which JSON Schema counts as integers and drplan does not (test_schema.py).
    if not any(_PYTHON_ONLY_MATCH.search(s) for s in _strings(doc)) and not has_integral_float(doc):
        assert fast == STOCK.is_valid(doc)


@settings(max_examples=40, deadline=None)
@given(mutated_plans())
def test_explanations_never_fall_back_to_dr100(doc: Any) -> None:
    assert "DR100" not in {d.code for d in drplan_schema.validate_schema(doc, "p.json")}


# --- the validator and the engine's resolver agree on what a `${` means -----------------------------


class _AnyOutput(dict):  # type: ignore[type-arg]
    """Every step produced every output: what a run sees once everything has succeeded."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: Any) -> Any:
        return "value"


class _AnyStep(dict):  # type: ignore[type-arg]
    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: Any) -> Any:
        return _AnyOutput()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="${}a.b_x ", max_size=16))
def test_validate_reports_every_dollar_brace_the_resolver_would_not_substitute(text: str) -> None:
    """If validate is silent about a string, the run substitutes every `${` in it; if a run would
    fail on it or leave a `${` as literal text, validate says so (DR209)."""
    try:  # the engine's resolver moved from runner.py to worker.py
        from drplan.engine.worker import resolve
    except ImportError:
        from drplan.engine.runner import resolve  # type: ignore[attr-defined,no-redef]
    from drplan.errors import StepFailed
    from drplan.model import Step

    step = Step(service="s", id="t", uses="check.http", params={"url": text}, pointer="/p")
    reported = bool(step.malformed_references() or step.unresolved_references())
    try:
        resolved = resolve({"url": text}, _AnyStep())
    except StepFailed:
        assert reported, text
        return
    assert ("${" in resolved["url"]) == reported, text


@settings(max_examples=60, deadline=None)
@given(VALUES)
def test_the_readers_integral_float_flag_is_exact(value: Any) -> None:
    from drplan.document import read_document

    doc = read_document("p.json", data=json.dumps(value).encode("utf-8"))
    assert doc.parsed and doc.integral_floats == has_integral_float(value)
