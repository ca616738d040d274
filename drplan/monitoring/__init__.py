"""Monitoring files shipped with drplan, over the metrics drills write (``metrics.prom``, see
:mod:`drplan.report.evidence`): a Grafana dashboard and Prometheus alert rules.

``drplan dashboard grafana`` and ``drplan dashboard prometheus-rules`` print them; the files are in
this package, so an installed drplan always has the ones that match its metrics.
"""

from __future__ import annotations

from importlib.resources import files

#: What ``drplan dashboard`` prints: name -> file in this package.
ASSETS = {
    "grafana": "grafana-dashboard.json",
    "prometheus-rules": "prometheus-rules.yml",
}


def asset(name: str) -> str:
    """The text of a shipped monitoring file, by its ``drplan dashboard`` name."""
    return files(__package__).joinpath(ASSETS[name]).read_text(encoding="utf-8")
