"""The plan schema: load it once, validate, and explain what is wrong in a person's words.

Two validators read the same file. ``jsonschema_rs`` (compiled, Draft 2020-12) answers the common
question "is this plan valid?" in milliseconds, even for 10,000 services, without importing
``jsonschema`` at all. Only when it says no does ``jsonschema`` run, because it explains: it gives
every error with its path and the failing keyword, and ``best_match`` picks the most relevant one
inside ``anyOf``/``oneOf``. A test keeps the two in agreement on random documents.

Schemas may carry an ``x-error`` annotation: the phrase to use when a value fails that schema
(``must be `latest` or a snapshot ARN``) instead of quoting a regular expression at the user; and
an ``x-kind`` annotation (``duration``, ``timestamp``, ``region``, ``availability-zone``, or a
list of them) that tells the semantic checks which values to read as what (see drplan.checks).

One deliberate difference from JSON Schema: an ``integer`` is a JSON number written without a
fraction or an exponent. JSON Schema counts ``1.0`` as an integer, and both validators accept it,
but Python code given ``1.0`` for ``retries`` fails (``range(1.0)``). The explaining validator
says so; the fast one cannot, so a document holding such a number (the reader notices them,
:attr:`drplan.document.Document.integral_floats`) always gets the explaining validator's verdict.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drplan.diagnostics import Diagnostic, diagnostic, join_pointer, shorten
from drplan.durations import duration_hint

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

SCHEMA_ID = "https://drplan.dev/schemas/plan/v1.json"
FORMAT_VERSION = 1


def schema_path() -> Path:
    """The packaged schema (inside the wheel), or the repository's ``schemas/`` in a source tree."""
    packaged = Path(__file__).parent / "schemas" / "plan.schema.json"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "schemas" / "plan.schema.json"


@cache
def schema_text() -> str:
    return schema_path().read_text(encoding="utf-8")


@cache
def plan_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text())
    return schema


def action_schemas() -> dict[str, dict[str, Any]]:
    """Parameter schemas of the built-in actions, keyed by action name (``$defs/actions``)."""
    actions: dict[str, dict[str, Any]] = plan_schema()["$defs"]["actions"]
    return actions


@cache
def _validation_schema() -> dict[str, Any]:
    """The schema both validators read: the file's, with patterns in their portable spelling."""
    portable: dict[str, Any] = _portable(plan_schema())
    return portable


def _portable(schema: Any) -> Any:
    """``schema`` with ``\\d`` in every ``pattern`` written as ``[0-9]``, which it means (ECMA-262).

    jsonschema-rs matches any Unicode digit with ``\\d`` in patterns that use look-around (they go
    to its fancy-regex engine) and only ASCII digits elsewhere, so ``PT\\u0663H`` passed as a duration.
    """
    if isinstance(schema, dict):
        return {
            k: _translate(v, dollar="$") if k == "pattern" and isinstance(v, str) else _portable(v)
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_portable(v) for v in schema]
    return schema


def _translate(pattern: str, *, dollar: str) -> str:
    """Rewrite ``\\d`` as ASCII digits and the ``$`` anchor as ``dollar``, outside escapes."""
    out = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            pair = pattern[i : i + 2]
            out.append(("0-9" if in_class else "[0-9]") if pair == "\\d" else pair)
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            ch = dollar
        out.append(ch)
        i += 1
    return "".join(out)


@cache
def _fast_validator() -> Any:
    import jsonschema_rs

    # offline: the schema has only local references; never fetch anything over the network.
    return jsonschema_rs.validator_for(_validation_schema(), offline=True)


@cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """A JSON Schema ``pattern`` (ECMA-262) as a Python regex that means the same.

    Python's ``$`` also matches before a final newline, so the explaining validator accepted
    ``"123456789012\\n"`` for ``^\\d{12}$`` where jsonschema-rs (and ECMA-262) reject it, and an
    invalid plan passed without a word; ``\\Z`` is the end of the string. ``\\d`` is ``[0-9]`` in
    ECMA-262 but any Unicode digit in Python.
    """
    return re.compile(_translate(pattern, dollar=r"\Z"), re.ASCII)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_integer(checker: Any, instance: Any) -> bool:
    """A JSON integer as Python code needs it: ``1``, not ``1.0`` (which JSON Schema accepts)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


@cache
def _explaining_class() -> Any:
    from jsonschema import Draft202012Validator, validators

    types = Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)
    return validators.extend(Draft202012Validator, {"pattern": _ecma_pattern}, type_checker=types)


def has_integral_float(value: Any) -> bool:
    """Does a JSON value hold a float that is a whole number (``1.0``) anywhere?"""
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(has_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_integral_float(v) for v in value)
    return False


def _offline_registry(root: Mapping[str, Any] | None = None) -> Any:
    """A registry that holds the plan schema (under its ``$id``) and fetches nothing."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    def refuse(uri: str) -> Resource:
        raise LookupError(f"drplan does not fetch schemas over the network (asked for {uri})")

    registry: Registry = Registry(retrieve=refuse)  # type: ignore[call-arg]
    if root is not None:
        registry = registry.with_resource(SCHEMA_ID, DRAFT202012.create_resource(root))
    return registry


@cache
def _explaining_validator() -> Any:
    schema = _validation_schema()
    return _explaining_class()(schema, registry=_offline_registry(schema))


_SUB_VALIDATORS: dict[int, tuple[dict[str, Any], Any]] = {}


def _sub_validator(subschema: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """(schema, compiled validator) for a sub-schema, with the plan's ``$defs`` so its refs resolve.

    Cached by the id of the sub-schema: built-in action schemas live as long as the plan schema,
    plugin ones as long as their class.
    """
    key = id(subschema)
    if key not in _SUB_VALIDATORS:
        import jsonschema_rs

        root = plan_schema()
        # The sub-schema's own $defs win over the plan's (a plugin may bring its own).
        wrapped = _portable({**subschema, "$defs": {**root["$defs"], **subschema.get("$defs", {})}})
        _SUB_VALIDATORS[key] = (wrapped, jsonschema_rs.validator_for(wrapped, offline=True))
    return _SUB_VALIDATORS[key]


def kinds_of(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``x-kind`` of a (resolved) schema as a tuple: ``("duration",)``, ``()``."""
    kinds = schema.get("x-kind", ())
    return (kinds,) if isinstance(kinds, str) else tuple(kinds)


def typed_values(
    params: Any, subschema: Mapping[str, Any]
) -> Iterator[tuple[tuple[Any, ...], tuple[str, ...], str]]:
    """(path, kinds, value) of every string in ``params`` whose schema in ``subschema`` carries an
    ``x-kind`` (a duration, a timestamp, a region...), at any depth of ``properties`` and ``items``.

    The schema is read once per action (a few typed parameters out of many): walking a
    10,000-service plan visits only the parameters that have a kind."""
    key = id(subschema)
    if key not in _TYPED:
        defs = {**plan_schema()["$defs"], **subschema.get("$defs", {})}
        _TYPED[key] = (subschema, _typed_node(subschema, defs, 0))
    node = _TYPED[key][1]
    if node is not None:
        yield from _typed(params, node, ())


#: A schema reduced to where typed values are: (kinds, properties, items); None: nothing typed.
_Node = tuple[tuple[str, ...], dict[str, Any], Any]
#: By id of the action's schema; the schema is kept so that its id is never reused.
_TYPED: dict[int, tuple[Mapping[str, Any], _Node | None]] = {}


def _typed_node(schema: Mapping[str, Any], defs: Mapping[str, Any], depth: int) -> _Node | None:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref.count("/") == 2:
        target = defs.get(ref.rsplit("/", 1)[1])
        if isinstance(target, Mapping):
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    if depth > 8:  # a recursive plugin schema: no kinds that deep
        return None
    properties: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, Mapping):
            node = _typed_node(prop, defs, depth + 1)
            if node is not None:
                properties[name] = node
    items = schema.get("items")
    items_node = _typed_node(items, defs, depth + 1) if isinstance(items, Mapping) else None
    kinds = kinds_of(schema)
    if not kinds and not properties and items_node is None:
        return None
    return kinds, properties, items_node


def _typed(
    value: Any, node: _Node, path: tuple[Any, ...]
) -> Iterator[tuple[tuple[Any, ...], tuple[str, ...], str]]:
    kinds, properties, items = node
    if isinstance(value, str):
        if kinds:
            yield path, kinds, value
    elif isinstance(value, Mapping):
        for name, child in properties.items():
            if name in value:
                yield from _typed(value[name], child, (*path, name))
    elif isinstance(value, list) and items is not None:
        for index, item in enumerate(value):
            yield from _typed(item, items, (*path, index))


def is_valid(data: Any, *, integral_floats: bool | None = None) -> bool:
    """The schema's verdict. ``integral_floats``: whether ``data`` holds a number like ``1.0``
    (None: look); only then is the explaining validator asked too (see the module's docstring)."""
    if not _fast_validator().is_valid(data):
        return False
    if integral_floats is None:
        integral_floats = has_integral_float(data)
    return not integral_floats or bool(_explaining_validator().is_valid(data))


def validate_schema(data: Any, file: str, *, integral_floats: bool | None = None) -> list[Diagnostic]:
    """Schema findings for a parsed plan, one per real problem, located by pointer only."""
    if is_valid(data, integral_floats=integral_floats):
        return []
    found: dict[tuple[str, str], Diagnostic] = {}
    for error in _explaining_validator().iter_errors(data):
        for explained in _explained(error):
            for diag in _describe(explained, data, file):
                found.setdefault((diag.pointer or "", diag.message), diag)
    # A value of the wrong type satisfies no rule about its contents: `with: null` breaks "exactly
    # one of `values` or `alias`" vacuously. Its type is the one thing to say about it.
    mistyped = {d.pointer for d in found.values() if d.code == "DR103"}
    found = {k: d for k, d in found.items() if d.code == "DR103" or d.pointer not in mistyped}
    if not found:
        # The two validators disagree. Never let the plan pass as valid because of that.
        return [
            diagnostic(
                "DR100",
                "the plan does not match the plan schema, but drplan cannot say where (please report this)",
                file,
                "",
            )
        ]
    return list(found.values())


def validate_against(
    params: Any,
    subschema: Mapping[str, Any],
    base_pointer: str,
    file: str,
    data: Any,
    *,
    subject: bool = True,
) -> list[Diagnostic]:
    """Check a value against a sub-schema of the plan schema (e.g. merged ``drill_with`` params).

    With ``subject=False`` the messages do not start with who they are about (``step `x` of
    service `y`: ``), for callers that say it themselves.
    """
    wrapped, compiled = _sub_validator(subschema)
    if compiled.is_valid(params) and not has_integral_float(params):
        return []
    out = []
    for error in _explaining_class()(wrapped, registry=_offline_registry()).iter_errors(params):
        for explained in _explained(error):
            out.extend(_describe(explained, data, file, base=base_pointer, subject=subject))
    return out


_RANGE_KEYWORDS = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    }
)


def _explained(error: ValidationError) -> list[ValidationError]:
    """The errors that say best what is wrong with an ``anyOf``/``oneOf`` failure.

    Without an ``x-error`` phrase: ``best_match`` of the branches. With one, the phrase says what
    the value may be (``must be an HTTP status code or a list of them``), except when the value
    has the right type for a branch and only breaks its range or is written ``1.0``: then that
    branch's own errors say it (``must be at most 599``).
    """
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return [error]
    if "x-error" not in error.schema:
        from jsonschema.exceptions import best_match

        best = best_match(error.context)
        return [best] if best is not None else [error]
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0] if sub.relative_schema_path else None, []).append(sub)
    for errors in branches.values():
        if all(e.validator in _RANGE_KEYWORDS or _integral_float(e) for e in errors):
            return errors
    return [error]


def _integral_float(error: ValidationError) -> bool:
    """A ``type`` error only because an integer is written like ``1.0``."""
    if error.validator != "type" or not isinstance(error.instance, float) or not error.instance.is_integer():
        return False
    types = [error.validator_value] if isinstance(error.validator_value, str) else list(error.validator_value)
    return "integer" in types


# --- turning one ValidationError into a sentence -------------------------------------------------

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}
_CODE_BY_KEYWORD = {
    "required": "DR101",
    "dependentRequired": "DR101",
    "additionalProperties": "DR102",
    "unevaluatedProperties": "DR102",
    "type": "DR103",
    "enum": "DR104",
    "const": "DR104",
    "pattern": "DR104",
    "format": "DR104",
    "oneOf": "DR104",
    "anyOf": "DR104",
    "propertyNames": "DR104",
    "minimum": "DR105",
    "maximum": "DR105",
    "exclusiveMinimum": "DR105",
    "exclusiveMaximum": "DR105",
    "minLength": "DR105",
    "maxLength": "DR105",
    "minItems": "DR105",
    "maxItems": "DR105",
    "minProperties": "DR105",
    "maxProperties": "DR105",
    "uniqueItems": "DR105",
}


def _describe(
    error: ValidationError,
    data: Any,
    file: str,
    *,
    base: str = "",
    subject: bool = True,
) -> list[Diagnostic]:
    path = list(error.absolute_path)
    pointer = join_pointer(base, *path)
    where_path = _path_from_pointer(base) + path
    who, field = _subject(where_path, data)
    if not subject:
        who = ""
    keyword = str(error.validator)
    value = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    code = _CODE_BY_KEYWORD.get(keyword, "DR100")
    custom = schema.get("x-error")

    def say(fld: str, text: str, ptr: str = pointer, c: str = code, at_key: bool = False) -> Diagnostic:
        name = f"`{fld}` " if fld else ""
        return diagnostic(c, f"{who}{name}{text}", file, ptr, at_key=at_key)

    if keyword == "type" and not where_path and schema.get("$id") == SCHEMA_ID:  # the file itself
        return [diagnostic("DR103", _top_level_words(error.instance), file, pointer)]
    if _integral_float(error):
        whole = shorten(str(int(error.instance)))
        return [say(field, f"must be an integer: write {whole}, not {shorten(repr(error.instance))}")]

    if keyword == "required":
        missing = [p for p in value if isinstance(error.instance, dict) and p not in error.instance]
        return [say(_join(field, p), "is required") for p in missing]
    if keyword == "dependentRequired":
        return [
            say(_join(field, need), f"is required when `{_join(field, prop)}` is set")
            for prop, needs in value.items()
            if isinstance(error.instance, dict) and prop in error.instance
            for need in needs
            if need not in error.instance
        ]
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        known = sorted(schema.get("properties", {}))
        extras = [k for k in error.instance if k not in known] if isinstance(error.instance, dict) else []
        owner = _owner_phrase(where_path, data)
        unknown = []
        for k in extras:  # shown at the key: the key is what is wrong
            text = f"is not {owner}{_did_you_mean(k, known)}"
            unknown.append(say(_join(field, k), text, join_pointer(pointer, k), at_key=True))
        return unknown
    if keyword == "propertyNames":
        return []  # reported through the nested error (see below): jsonschema nests the key's failure
    if keyword == "const" and where_path == ["drplan"]:
        return [
            diagnostic(
                "DR106",
                f"this drplan reads plan format version {FORMAT_VERSION}; the file says "
                + shorten(json.dumps(error.instance, ensure_ascii=False)),
                file,
                pointer,
            )
        ]
    if _is_property_name_error(error):
        key = error.instance
        key_ptr = join_pointer(pointer, key)
        if keyword == "enum":
            owner = _owner_phrase(where_path, data)
            message = f"is not {owner}{_did_you_mean(key, value)}"
            return [say(_join(field, key), message, key_ptr, "DR102", at_key=True)]
        what = "service id" if where_path == ["services"] else "key"
        message = f"{who}{what} `{shorten(str(key))}` {custom or 'is not allowed'}"
        return [diagnostic("DR104", message, file, key_ptr, at_key=True)]
    hint = _value_hint(schema, error.instance, where_path)
    if keyword == "not" and isinstance(value, dict) and value.get("required"):
        # A property another one rules out (`iops` with a gp2 volume): said at that property.
        present = [p for p in value["required"] if isinstance(error.instance, dict) and p in error.instance]
        text = custom or "cannot be set here"
        return [say(_join(field, p), text, join_pointer(pointer, p), c="DR104") for p in present]
    if custom and keyword not in _RANGE_KEYWORDS:  # a value of the right type out of range: say the range
        return [say(field, custom + hint)]
    if keyword == "type":
        types = [value] if isinstance(value, str) else list(value)
        return [say(field, "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types) + hint)]
    if keyword == "enum":
        choices = ", ".join(f"`{c}`" for c in value)
        hint = _did_you_mean(error.instance, value) if isinstance(error.instance, str) else ""
        return [say(field, f"must be one of {choices}{hint}")]
    if keyword == "const":
        return [say(field, f"must be {json.dumps(value)}")]
    if keyword == "pattern":
        return [say(field, f"does not have the expected form (pattern {value}){hint}")]
    if keyword in ("minimum", "exclusiveMinimum"):
        return [
            say(field, f"must be at least {value}" if keyword == "minimum" else f"must be more than {value}")
        ]
    if keyword in ("maximum", "exclusiveMaximum"):
        return [
            say(field, f"must be at most {value}" if keyword == "maximum" else f"must be less than {value}")
        ]
    if keyword == "minLength":
        return [
            say(field, "must not be empty" if value == 1 else f"must be at least {value} characters long")
        ]
    if keyword == "maxLength":
        return [say(field, f"must be at most {value} characters long")]
    if keyword == "minItems":
        return [say(field, "must not be empty" if value == 1 else f"must have at least {value} items")]
    if keyword == "maxItems":
        return [say(field, f"must have at most {value} items")]
    if keyword == "minProperties":
        return [say(field, "must not be empty" if value == 1 else f"must have at least {value} entries")]
    if keyword == "uniqueItems":
        return [say(field, "must not list the same item twice")]
    return [say(field, shorten(error.message, 200))]  # jsonschema quotes the value: keep it short


def _top_level_words(instance: Any) -> str:
    kind = {type(None): "null", bool: "true or false", int: "a number", float: "a number", str: "a string"}
    what = "a list" if isinstance(instance, list) else kind.get(type(instance), "something else")
    return (
        f"a plan must be a JSON object (`{{...}}`) holding `drplan`, `name` and `services`; "
        f"this file holds {what}"
    )


def _duration_like(schema: Mapping[str, Any]) -> bool:
    return "duration" in kinds_of(schema)


def _value_hint(schema: Mapping[str, Any], instance: Any, path: list[Any]) -> str:
    """A guess at what was meant: ``PT1H`` for ``1h``, the lowercase action for ``AWS.RDS.x``."""
    if _duration_like(schema):
        if isinstance(instance, str):
            return duration_hint(instance)
        if isinstance(instance, int) and not isinstance(instance, bool) and instance > 0:
            return duration_hint(str(instance))
        return ""
    if path and path[-1] == "uses" and isinstance(instance, str):
        from drplan.actions import registry

        names = list(registry())
        if instance.lower() in names:
            return f" (did you mean `{instance.lower()}`? action names are lowercase)"
        return _did_you_mean(instance, names)
    return ""


def _is_property_name_error(error: ValidationError) -> bool:
    # jsonschema reports a failing property *name* with the parent's path and the key as instance.
    return any(part == "propertyNames" for part in error.relative_schema_path) or (
        error.parent is not None and error.parent.validator == "propertyNames"
    )


def _path_from_pointer(pointer: str) -> list[Any]:
    from drplan.diagnostics import pointer_tokens

    return [int(t) if t.isdigit() else t for t in pointer_tokens(pointer)]


def _subject(path: list[Any], data: Any) -> tuple[str, str]:
    """Split a path into who it is about (``step `restore` of service `db`: ``) and the field."""
    if len(path) >= 2 and path[0] == "services":
        service = path[1]
        shown = shorten(str(service))
        if len(path) >= 4 and path[2] == "steps" and isinstance(path[3], int):
            step_id = shorten(_step_id(data, service, path[3]))
            return f"step `{step_id}` of service `{shown}`: ", _dotted(path[4:])
        return f"service `{shown}`: ", _dotted(path[2:])
    return "", _dotted(path)


def _step_id(data: Any, service: str, index: int) -> str:
    try:
        step_id = data["services"][service]["steps"][index]["id"]
        if isinstance(step_id, str):
            return step_id
    except (KeyError, IndexError, TypeError):
        pass
    return f"#{index + 1}"


def _owner_phrase(path: list[Any], data: Any) -> str:
    if path and path[-1] in ("with", "drill_with") and len(path) >= 4 and path[0] == "services":
        try:
            uses = data["services"][path[1]]["steps"][path[3]]["uses"]
            return f"a parameter of `{uses}`"
        except (KeyError, IndexError, TypeError):
            pass
    return "a known property"


def _dotted(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{shorten(part)}" if out else shorten(str(part)))
    return out


def _join(field: str, name: str) -> str:
    return f"{field}.{shorten(name)}" if field else shorten(name)


def _did_you_mean(word: str, choices: Any) -> str:
    """The closest choice, compared without case (``AWS.RDS.x`` is close to ``aws.rds.x``)."""
    options = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(options), n=1, cutoff=0.6)
    return f" (did you mean `{options[close[0]]}`?)" if close else ""
