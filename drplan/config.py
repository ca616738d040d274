"""Project settings for ``drplan validate``: ``.drplan.toml`` or ``[tool.drplan]`` in ``pyproject.toml``.

A repository tunes its pull-request check once, in a file reviewed like the plans, instead of in
every CI job's command line::

    [tool.drplan]
    ignore = ["DR303"]                       # warnings this project accepts
    strict = true                            # the other warnings fail the check
    reports = ["sarif:build/drplan.sarif"]   # written besides the console report

The file is found the way ruff and black find theirs: from the working directory upwards, the
first ``.drplan.toml``, or ``pyproject.toml`` with a ``[tool.drplan]`` table, wins; the search stops
at the repository's root (a folder holding ``.git``). Paths in ``reports`` are relative to the
file's folder, so the check writes the same files from any working directory.

Only warnings can be ignored: an error is something ``drill`` and ``recover`` refuse, and a check
that passed a plan the run then refuses would break validation's promise.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drplan.diagnostics import RULES, Severity
from drplan.errors import UsageError

#: The formats ``--report`` and ``reports`` can write (the ones ``--format`` knows).
REPORT_FORMATS = ("text", "json", "sarif", "github", "junit")
_KEYS = ("ignore", "strict", "reports")


@dataclass(frozen=True)
class Report:
    """One extra report of a validation run: a format written to a file."""

    format: str
    path: Path


@dataclass(frozen=True)
class ValidateSettings:
    ignore: frozenset[str] = frozenset()
    strict: bool = False
    reports: tuple[Report, ...] = ()
    source: Path | None = None  # the file the settings came from; None when there is none


def find_settings_file(start: Path) -> Path | None:
    """The settings file that applies in ``start``, or None."""
    for folder in (start, *start.parents):
        candidate = folder / ".drplan.toml"
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and _drplan_table(_read_toml(pyproject)) is not None:
            return pyproject
        if (folder / ".git").exists():
            return None
    return None


def load_settings(path: Path) -> ValidateSettings:
    """The settings in ``path`` (``.drplan.toml``, or ``pyproject.toml``'s ``[tool.drplan]``).

    Anything wrong is a :class:`UsageError` naming the file and the key: a typo in a CI setting
    must not silently check less than the team thinks.
    """
    data = _read_toml(path)
    table = _drplan_table(data) if path.name == "pyproject.toml" else data
    where = f"{path} [tool.drplan]" if path.name == "pyproject.toml" else str(path)
    if table is None:
        raise UsageError(f"{path}: has no [tool.drplan] table")
    if not isinstance(table, dict):
        raise UsageError(f"{where}: drplan's settings must be a table")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(_KEYS)})")
    ignore = table.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise UsageError(f'{where}: `ignore` must be a list of codes, e.g. ignore = ["DR303"]')
    strict = table.get("strict", False)
    if not isinstance(strict, bool):
        raise UsageError(f"{where}: `strict` must be true or false")
    reports = table.get("reports", [])
    if not isinstance(reports, list) or not all(isinstance(r, str) for r in reports):
        raise UsageError(f'{where}: `reports` must be a list like ["sarif:build/drplan.sarif"]')
    return ValidateSettings(
        ignore=ignorable_codes(ignore, where=where),
        strict=strict,
        reports=tuple(parse_report(r, base=path.parent, where=where) for r in reports),
        source=path,
    )


def ignorable_codes(codes: list[str] | tuple[str, ...], *, where: str) -> frozenset[str]:
    """The codes, checked: each must exist and be a warning (comma-separated lists are split)."""
    out: set[str] = set()
    for code in (c.strip().upper() for item in codes for c in item.split(",") if c.strip()):
        rule = RULES.get(code)
        if rule is None:
            raise UsageError(f"{where}: unknown finding code {code!r} (the codes: docs/validation.md)")
        if rule.severity is Severity.ERROR:
            raise UsageError(
                f"{where}: {code} ({rule.name}) is an error and cannot be ignored: drill and recover "
                "refuse a plan with errors, so validation must not pass it"
            )
        out.add(code)
    return frozenset(out)


def parse_report(text: str, *, base: Path, where: str) -> Report:
    """``FORMAT:PATH`` (``sarif:build/drplan.sarif``); a relative path is taken from ``base``."""
    fmt, sep, path = text.partition(":")
    if not sep or not path or fmt not in REPORT_FORMATS:
        raise UsageError(
            f"{where}: report {text!r} must be FORMAT:PATH with FORMAT one of {', '.join(REPORT_FORMATS)}"
        )
    return Report(fmt, base / path)


def _drplan_table(pyproject: dict[str, Any]) -> object:
    tool = pyproject.get("tool")
    return tool.get("drplan") if isinstance(tool, dict) else None


def _read_toml(path: Path) -> dict[str, Any]:
    # Imported here: a pull-request check of a repository without settings never pays for it.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
