"""The plan format reference: Markdown tables generated from schemas/plan.schema.json.

docs/plan-format.md is written by hand except for one section, between
``<!-- BEGIN GENERATED: drplan.report.reference -->`` and ``<!-- END GENERATED -->``, which is
:func:`render_reference` of the packaged schema. Rewrite it, or check that it is current (CI and
tests/test_docs.py do), with::

    python -m drplan.report.reference docs/plan-format.md
    python -m drplan.report.reference --check docs/plan-format.md

Allowed values are said in words: the schema's ``x-error`` phrase where it has one (the same words
``drplan validate`` uses), else the enum, bounds and lengths. Action parameters are not listed
here; they have their own generated page (``drplan actions --format markdown``, docs/actions.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from drplan.durations import MAX_DURATION_WORDS
from drplan.report.generated import END as END  # re-exported: the markers of the section
from drplan.report.generated import Section, refresh_main

BEGIN = "<!-- BEGIN GENERATED: drplan.report.reference -->"

#: The objects documented, in order: (``$defs`` name or "" for the plan itself, heading).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("", "Plan properties"),
    ("objectives", "Objectives properties"),
    ("contact", "Contact properties"),
    ("aws", "AWS properties"),
    ("drill", "Drill properties"),
    ("run", "Run properties"),
    ("service", "Service properties"),
    ("step", "Step properties"),
)
#: ``$defs`` that are values rather than objects with properties: described under "Value types".
VALUE_TYPES = ("id", "duration", "tags")
VALUE_TYPES_HEADING = "Value types"
ACTIONS_PAGE = "actions.md"

Schema = Mapping[str, Any]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading made of words and spaces."""
    return heading.lower().replace(" ", "-")


_LINKS: dict[str, str] = {name: _anchor(heading) for name, heading in SECTIONS if name}
_LINKS.update({name: _anchor(VALUE_TYPES_HEADING) for name in VALUE_TYPES})


def _ref_name(schema: Schema) -> str | None:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return ref.rsplit("/", 1)[-1]
    return None


def _resolve(root: Schema, schema: Schema) -> Schema:
    """The schema a ``$ref`` points at, with the referring schema's own keywords on top."""
    name = _ref_name(schema)
    if name is None:
        return schema
    target = root["$defs"][name]
    merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return merged


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _link(name: str) -> str:
    return f"[{name}](#{_LINKS[name]})" if name in _LINKS else name


# --- type, allowed values -----------------------------------------------------------------------


def type_words(root: Schema, schema: Schema) -> str:
    name = _ref_name(schema)
    if name is not None:
        return _link(name)
    if "const" in schema:
        return "integer" if isinstance(schema["const"], int) else "string"
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items", {})
        return f"list of {_plural(type_words(root, items))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        value = schema["additionalProperties"]
        if value.get("$ref") or value.get("type"):
            return f"map of name to {type_words(root, value)}"
    if isinstance(kind, list):
        return " or ".join(kind)
    return str(kind) if kind else "any"


def _plural(words: str) -> str:
    return words if words.startswith("[") or words.endswith("s") else words + "s"


def _bounds(low: Any, high: Any, what: str = "") -> str | None:
    unit = f" {what}" if what else ""
    if low is not None and high is not None:
        return f"must be {low} to {high}{unit}"
    if low is not None:
        return f"must be at least {low}{unit}"
    if high is not None:
        return f"must be at most {high}{unit}"
    return None


def _length(low: Any, high: Any, thing: str) -> str | None:
    if low == 1 and high is None:
        return "must not be empty"
    if low is None and high is None:
        return None
    return _bounds(low, high, thing)


def allowed_words(root: Schema, schema: Schema) -> list[str]:
    """What the schema allows, in the words ``drplan validate`` would use when it is broken."""
    resolved = _resolve(root, schema)
    words: list[str] = []
    if "x-error" in resolved:
        words.append(str(resolved["x-error"]))
    elif "pattern" in resolved:
        words.append(f"must match `{resolved['pattern']}`")
    if "const" in resolved:
        words.append(f"must be `{json.dumps(resolved['const'])}`")
    if "enum" in resolved:
        words.append("must be one of " + ", ".join(f"`{v}`" for v in resolved["enum"]))
    bound = _bounds(resolved.get("minimum"), resolved.get("maximum"))
    if bound:
        words.append(bound)
    kinds = resolved.get("x-kind", ())
    if "duration" in ([kinds] if isinstance(kinds, str) else kinds):
        words.append(f"at most {MAX_DURATION_WORDS}")
    if "x-error" not in resolved:
        length = _length(resolved.get("minLength"), resolved.get("maxLength"), "characters")
        if length:
            words.append(length)
    items = _length(resolved.get("minItems"), resolved.get("maxItems"), "items")
    if items:
        words.append("must have at least one item" if items == "must not be empty" else items)
    if resolved.get("uniqueItems"):
        words.append("no item may appear twice")
    entries = _length(resolved.get("minProperties"), resolved.get("maxProperties"), "entries")
    if entries:
        words.append("must have at least one entry" if entries == "must not be empty" else entries)
    items_schema = resolved.get("items")
    if isinstance(items_schema, Mapping) and _ref_name(items_schema) not in _LINKS.keys() - VALUE_TYPES:
        words += [f"each item {w}" for w in allowed_words(root, items_schema)]  # not the objects' own rules
    names = resolved.get("propertyNames")
    if isinstance(names, Mapping) and _ref_name(schema) not in VALUE_TYPES:
        words += [f"keys {w}" for w in allowed_words(root, names)]
    values = resolved.get("additionalProperties")
    if isinstance(values, Mapping) and _ref_name(values) is None and _ref_name(schema) not in VALUE_TYPES:
        words += [f"values {w}" for w in allowed_words(root, values)]
    return words


# --- tables -------------------------------------------------------------------------------------


def _conditional(root: Schema, schema: Schema) -> tuple[set[str], set[str]]:
    """Properties required, and properties constrained, by every ``if uses = ...`` branch."""
    branches = [b.get("then", {}) for b in schema.get("allOf", ()) if isinstance(b, Mapping) and "if" in b]
    if not branches:
        return set(), set()
    required = set.intersection(*(set(b.get("required", ())) for b in branches))
    constrained = set().union(*(set(b.get("properties", {})) for b in branches))
    return required, constrained


def property_table(root: Schema, schema: Schema) -> list[str]:
    required = set(schema.get("required", ()))
    conditionally_required, per_action = _conditional(root, schema)
    rows = [
        "| property | type | required | default | allowed values | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, prop in schema.get("properties", {}).items():
        if name in required:
            need = "yes"
        elif name in conditionally_required:
            need = "yes, for built-in actions"
        else:
            need = ""
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        allowed = allowed_words(root, prop)
        if name in per_action:
            allowed.append(f"depends on `uses`: see the [action catalogue]({ACTIONS_PAGE})")
        description = prop.get("description") or _resolve(root, prop).get("description", "")
        cells = [f"`{name}`", type_words(root, prop), need, default, "; ".join(allowed), description]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _section(root: Schema, name: str, heading: str) -> list[str]:
    schema = root if not name else root["$defs"][name]
    intro = "The plan file itself: one JSON object." if not name else schema.get("description", "")
    out = [f"### {heading}", "", intro]
    if schema.get("additionalProperties") is False:
        out[-1] += " Any other property is an error (DR102)."
    return [*out, "", *property_table(root, schema), ""]


def _value_types(root: Schema) -> list[str]:
    out = [
        f"### {VALUE_TYPES_HEADING}",
        "",
        "| type | JSON type | allowed values | description |",
        "| --- | --- | --- | --- |",
    ]
    for name in VALUE_TYPES:
        schema = root["$defs"][name]
        cells = [
            f"`{name}`",
            type_words(root, schema),
            "; ".join(allowed_words(root, schema)),
            schema.get("description", ""),
        ]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*out, ""]


def render_reference(schema: dict[str, Any]) -> str:
    """The generated part of docs/plan-format.md (between the markers, markers excluded)."""
    out = [
        "",
        f"Generated from `schemas/plan.schema.json` (`{schema.get('$id', '')}`) by "
        "`python -m drplan.report.reference docs/plan-format.md`; do not edit by hand.",
        "",
        "Required properties must be present. Defaults apply when a property is left out. Allowed values are "
        "the words `drplan validate` uses when a value breaks them.",
        "",
    ]
    for name, heading in SECTIONS:
        out += _section(schema, name, heading)
    out += _value_types(schema)
    return "\n".join(out)


# --- the generated section of a document ----------------------------------------------------------

SECTION = Section(BEGIN, "\n", "reference")


def split_document(text: str) -> tuple[str, str, str]:
    """(before and including BEGIN, the generated text, END and after)."""
    return SECTION.split(text)


def update_document(text: str, schema: dict[str, Any]) -> str:
    return SECTION.update(text, render_reference(schema))


def main(argv: list[str] | None = None) -> int:
    def render() -> str:
        from drplan.schema import plan_schema

        return render_reference(plan_schema())

    return refresh_main(
        argv,
        prog="python -m drplan.report.reference",
        description="Rewrite (or, with --check, verify) the plan format reference in a Markdown file.",
        example="docs/plan-format.md",
        section=SECTION,
        render=render,
    )


if __name__ == "__main__":
    sys.exit(main())
