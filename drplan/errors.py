"""The one small error tree of drplan.

Library code raises these; only :mod:`drplan.cli` turns them into messages and exit codes
(each class carries its own ``exit_code``, the way click's exceptions do). Findings about a
plan's *content* are not errors: they are :class:`drplan.diagnostics.Diagnostic` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Exit codes shared by every command (documented in docs/cli.md).
EXIT_OK = 0
EXIT_FINDINGS = 1  # the plan is invalid, or a run failed / missed an objective
EXIT_USAGE = 2  # usage or input error (click uses 2 for its own usage errors)
EXIT_INTERRUPTED = 3  # a run was interrupted or its cleanup is incomplete


class DrplanError(Exception):
    """Base class: a problem the user can act on, reported without a traceback."""

    exit_code = EXIT_FINDINGS

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(DrplanError):
    """Bad command-line input: a missing file, a bad option value."""

    exit_code = EXIT_USAGE


class PlanInvalid(DrplanError):
    """A plan has error findings, so it cannot be compiled or run."""

    exit_code = EXIT_FINDINGS

    def __init__(self, message: str, diagnostics: Sequence[Any]) -> None:
        super().__init__(message)
        self.diagnostics = list(diagnostics)


class GraphvizMissing(DrplanError):
    """Rendering SVG/PNG/PDF needs Graphviz's ``dot`` binary."""

    exit_code = EXIT_USAGE


class AwsError(DrplanError):
    """An AWS call failed in a way that is not the plan's fault (credentials, region, account guard)."""

    exit_code = EXIT_FINDINGS


class StepFailed(DrplanError):
    """A step of a run failed; carries the step key so messages say which one."""

    def __init__(self, step: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.reason = message
        self.retryable = retryable
