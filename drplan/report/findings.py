"""Write validation findings for people and for CI systems.

``FORMATTERS`` maps a format name to a function ``(results, options) -> str``; the CLI offers its
keys as ``--format`` choices. Every format sees all files at once so it can summarise.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from drplan import __version__
from drplan.diagnostics import RULES, Diagnostic, Severity, Span, counts
from drplan.pipeline import ValidationResult
from drplan.report.junit import Case, Suite, to_xml

JSON_FORMAT_VERSION = "1.0"
INFORMATION_URI = "https://github.com/drplan/drplan"
RULES_HELP_URI = INFORMATION_URI + "/blob/main/docs/validation.md"


@dataclass(frozen=True)
class Options:
    strict: bool = False
    color: bool = False
    base_dir: Path | None = None  # relative paths in SARIF are relative to this (default: cwd)
    ignored: tuple[str, ...] = ()  # codes left out on request (--ignore, settings): the summary says so


Formatter = Callable[[list[ValidationResult], Options], str]


def _all(results: list[ValidationResult]) -> list[Diagnostic]:
    return [d for r in results for d in r.diagnostics]


def _summary(results: list[ValidationResult], options: Options) -> str:
    c = counts(_all(results))
    files = len(results)
    bad = sum(1 for r in results if not r.ok(strict=options.strict))
    parts = [
        f"{c['error']} error{'s' if c['error'] != 1 else ''}",
        f"{c['warning']} warning{'s' if c['warning'] != 1 else ''}",
    ]
    verdict = "all valid" if not bad else f"{bad} of {files} invalid"
    ignored = f"; ignoring {', '.join(options.ignored)}" if options.ignored else ""
    return f"{', '.join(parts)} in {files} plan{'s' if files != 1 else ''} ({verdict}){ignored}"


# --- text -------------------------------------------------------------------------------------

_COLORS = {Severity.ERROR: "\x1b[31m", Severity.WARNING: "\x1b[33m", Severity.NOTE: "\x1b[36m"}
# C0 and C1 control characters (and DEL) as visible escapes: a message quotes plan keys and values,
# and a newline or a terminal escape sequence in one must not break the one-finding-per-line
# format (editors' and CI problem matchers parse it) or recolour the user's terminal.
_VISIBLE = {c: ascii(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0))}


def _one_line(text: str) -> str:
    return text.translate(_VISIBLE)


def format_text(results: list[ValidationResult], options: Options) -> str:
    lines = []
    for d in _all(results):
        severity = str(d.severity)
        if options.color:
            severity = f"{_COLORS[d.severity]}{severity}\x1b[0m"
        file = _one_line(d.file)
        lines.append(f"{file}:{d.line}:{d.column}: {severity} {d.code} {_one_line(d.message)}")
        for rel in d.related:
            line = rel.span.start.line if rel.span else 1
            col = rel.span.start.column if rel.span else 1
            lines.append(f"  {file}:{line}:{col}: note: {_one_line(rel.message)}")
    lines.append(_summary(results, options))
    return "\n".join(lines) + "\n"


# --- json -------------------------------------------------------------------------------------


def _range(file: str, span: Span | None) -> dict[str, Any] | None:
    if span is None:
        return None
    return {
        "filename": file,
        "start": {"line": span.start.line, "column": span.start.column, "offset": span.start.offset},
        "end": {"line": span.end.line, "column": span.end.column, "offset": span.end.offset},
    }


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    out: dict[str, Any] = {
        "severity": d.severity.value,
        "code": d.code,
        "rule": RULES[d.code].name,
        "summary": RULES[d.code].summary,
        "message": d.message,
        "file": d.file,
        "pointer": d.pointer,
        "range": _range(d.file, d.span),
    }
    if d.related:
        out["related"] = [
            {"message": r.message, "pointer": r.pointer, "range": _range(d.file, r.span)} for r in d.related
        ]
    return out


def format_json(results: list[ValidationResult], options: Options) -> str:
    c = counts(_all(results))
    document = {
        "format_version": JSON_FORMAT_VERSION,
        "drplan_version": __version__,
        "valid": all(r.ok(strict=options.strict) for r in results),
        "error_count": c["error"],
        "warning_count": c["warning"],
        "files": [
            {
                "path": r.path,
                "sha256": r.document.sha256 or None,
                "valid": r.ok(strict=options.strict),
                "error_count": len(r.errors),
                "warning_count": len(r.warnings),
            }
            for r in results
        ],
        "diagnostics": [diagnostic_json(d) for d in _all(results)],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- SARIF 2.1.0 ------------------------------------------------------------------------------

_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "note"}


def _artifact(path: str, base: Path) -> dict[str, str]:
    """A relative URI under %SRCROOT% when the file is inside the base directory (what GitHub needs).

    The path is percent-encoded: a file name with a space, ``#`` or ``%`` is not a URI as it is.
    """
    absolute = Path(path).resolve()
    try:
        relative = absolute.relative_to(base.resolve())
    except ValueError:
        return {"uri": absolute.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": "%SRCROOT%"}


def _region(span: Span | None) -> dict[str, int]:
    if span is None:
        return {"startLine": 1, "startColumn": 1}
    return {
        "startLine": span.start.line,
        "startColumn": span.start.column,
        "endLine": span.end.line,
        "endColumn": max(span.end.column, span.start.column + 1)
        if span.end.line == span.start.line
        else span.end.column,
    }


def fingerprint(d: Diagnostic, uri: str) -> str:
    """Stable across edits that only move lines: code, file, JSON pointer and message."""
    text = "\x1f".join((d.code, uri, d.pointer or "", d.message))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def format_sarif(results: list[ValidationResult], options: Options) -> str:
    base = options.base_dir or Path(os.getcwd())
    diagnostics = _all(results)
    fired = sorted({d.code for d in diagnostics})
    index = {code: i for i, code in enumerate(fired)}
    rules = [
        {
            "id": code,
            "name": RULES[code].name,
            "shortDescription": {"text": RULES[code].summary},
            "helpUri": f"{RULES_HELP_URI}#{code.lower()}",
            "defaultConfiguration": {"level": _SARIF_LEVEL[RULES[code].severity]},
        }
        for code in fired
    ]
    sarif_results = []
    for d in diagnostics:
        artifact = _artifact(d.file, base)
        location: dict[str, Any] = {
            "physicalLocation": {"artifactLocation": artifact, "region": _region(d.span)},
        }
        if d.pointer is not None:
            location["logicalLocations"] = [{"fullyQualifiedName": d.pointer or "/", "kind": "member"}]
        result: dict[str, Any] = {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": _SARIF_LEVEL[d.severity],
            "message": {"text": d.message},
            "locations": [location],
            "partialFingerprints": {"drplanFindingHash/v1": fingerprint(d, artifact["uri"])},
        }
        if d.related:
            result["relatedLocations"] = [
                {
                    "id": i + 1,
                    "message": {"text": r.message},
                    "physicalLocation": {"artifactLocation": artifact, "region": _region(r.span)},
                }
                for i, r in enumerate(d.related)
            ]
        sarif_results.append(result)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "drplan",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "originalUriBaseIds": {"%SRCROOT%": {"uri": base.resolve().as_uri() + "/"}},
        "artifacts": [{"location": _artifact(r.path, base)} for r in results if r.path != "<stdin>"],
        "results": sarif_results,
        "columnKind": "unicodeCodePoints",
    }
    document = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- GitHub Actions workflow commands ---------------------------------------------------------

_GITHUB_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(results: list[ValidationResult], options: Options) -> str:
    lines = []
    for d in _all(results):
        props = [f"file={escape_property(d.file)}", f"line={d.line}", f"col={d.column}"]
        if d.span is not None:
            props += [f"endLine={d.span.end.line}", f"endColumn={d.span.end.column}"]
        props.append(f"title={escape_property(d.code + ' ' + RULES[d.code].name)}")
        lines.append(f"::{_GITHUB_COMMAND[d.severity]} {','.join(props)}::{escape_data(d.message)}")
    lines.append(_summary(results, options))
    return "\n".join(lines) + "\n"


# --- JUnit ------------------------------------------------------------------------------------


def format_junit(results: list[ValidationResult], options: Options) -> str:
    """One test suite per plan; one test case per check (rule), failed by its findings."""
    suites = []
    for r in results:
        suite = Suite(name=r.path, properties={"sha256": r.document.sha256} if r.document.sha256 else {})
        by_code: dict[str, list[Diagnostic]] = {}
        for d in r.diagnostics:
            by_code.setdefault(d.code, []).append(d)
        for code, rule in RULES.items():
            found = by_code.get(code, [])
            lines = [f"{d.file}:{d.line}:{d.column}: {d.severity} {d.code} {d.message}" for d in found]
            failing = [d for d in found if d.severity is Severity.ERROR or options.strict]
            case = Case(name=f"{code} {rule.name}", classname=r.path)
            if failing:
                case.failure = (
                    f"{len(failing)} finding{'s' if len(failing) != 1 else ''}: {failing[0].message}"
                )
                case.failure_text = "\n".join(lines)
                case.failure_type = code
            elif found:
                case.output = "\n".join(lines)
            suite.cases.append(case)
        suites.append(suite)
    return to_xml(suites, name="drplan validate")


FORMATTERS: dict[str, Formatter] = {
    "text": format_text,
    "json": format_json,
    "sarif": format_sarif,
    "github": format_github,
    "junit": format_junit,
}
