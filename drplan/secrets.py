"""Secrets in plans: read by reference at run time, never written anywhere.

A plan never holds a secret itself. Where a step needs one (a command's ``env``, a check's
``headers``, any parameter), it names where to read it::

    "env":     {"PGPASSWORD": "${env:LEDGER_DB_PASSWORD}"}        the environment of drplan
    "headers": {"Authorization": "${ssm:/shop/health-token}"}     SSM Parameter Store (decrypted)
    "env":     {"API_KEY": "${secretsmanager:prod/shop/api-key}"}  AWS Secrets Manager (SecretString)

A run resolves these when the step starts, and from then on every value it resolved is replaced by
``***`` in everything drplan writes: events, the journal, the ``--events`` file, terminal
progress and the evidence. The values of ``env`` and ``headers`` are masked even when written
literally in the plan (they are where credentials end up), in the dry run and runbook too.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

#: ``${env:NAME}``, ``${ssm:NAME}``, ``${secretsmanager:ID}``.
SECRET_REFERENCE = re.compile(r"^(env|ssm|secretsmanager):(.+)$")
MASK = "***"
#: Parameters whose values are masked wherever they are shown, literal or not.
SENSITIVE = frozenset({"env", "headers"})
_SHORTEST = 4  # shorter values would mask innocent text (a "1" everywhere)


class SecretMissing(Exception):
    """A secret reference that cannot be resolved (no such variable, parameter or secret)."""


def is_secret_reference(expr: str) -> bool:
    """Is the text inside ``${...}`` a secret reference (``env:``, ``ssm:``, ``secretsmanager:``)?"""
    return SECRET_REFERENCE.match(expr) is not None


class Secrets:
    """Resolves secret references for one run and remembers every value, to mask it."""

    def __init__(self, client: Callable[[str], Any] | None = None) -> None:
        self._client = client  # client("ssm") for Parameter Store and Secrets Manager
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()

    def resolve(self, expr: str) -> str:
        match = SECRET_REFERENCE.match(expr)
        if match is None:
            raise ValueError(f"not a secret reference: {expr}")
        with self._lock:
            if expr in self._values:
                return self._values[expr]
        source, name = match.groups()
        value = self._read(source, name)
        with self._lock:
            self._values[expr] = value
        return value

    def _read(self, source: str, name: str) -> str:
        if source == "env":
            if name not in os.environ:
                raise SecretMissing(f"environment variable {name} is not set")
            return os.environ[name]
        if self._client is None:
            raise SecretMissing(f"cannot read {source}:{name}: no AWS access here")
        try:
            if source == "ssm":
                found = self._client("ssm").get_parameter(Name=name, WithDecryption=True)
                return str(found["Parameter"]["Value"])
            found = self._client("secretsmanager").get_secret_value(SecretId=name)
            return str(found["SecretString"])
        except Exception as exc:
            from drplan.aws import describe_error

            raise SecretMissing(f"cannot read {source}:{name}: {describe_error(exc)}") from exc

    def mask(self, value: Any) -> Any:
        """``value`` with every resolved secret replaced by ``***`` and sensitive parameters masked."""
        with self._lock:
            known = sorted((v for v in self._values.values() if len(v) >= _SHORTEST), key=len, reverse=True)
        return _mask(value, known)


def mask_sensitive(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters for display: the values of ``env`` and ``headers`` replaced by ``***`` (secret
    references are kept: they show where a value comes from, not the value)."""
    return {k: (_masked_values(v) if k in SENSITIVE else v) for k, v in params.items()}


def _masked_values(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: (v if isinstance(v, str) and v.startswith("${") and v.endswith("}") else MASK)
            for k, v in value.items()
        }
    return MASK


def _mask(value: Any, known: list[str]) -> Any:
    if isinstance(value, str):
        for secret in known:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, Mapping):
        return {k: (_masked_values(v) if k in SENSITIVE else _mask(v, known)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v, known) for v in value]
    return value
