"""The shipped Grafana dashboard and Prometheus alert rules: they read the metrics drills really write.

The rules are checked and unit-tested with Prometheus's own promtool (``promtool check rules``,
``promtool test rules``); the dashboard's queries are parsed by promtool too, as recording rules.
.ci/run installs promtool from Debian's ``prometheus`` package; without it those tests skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from drplan.cli import cli
from drplan.monitoring import asset
from tests.conftest import ROOT

SHIPPED = ROOT / "drplan" / "monitoring"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing (Debian's prometheus package; .ci/run installs it)"
)


def written_metrics() -> set[str]:
    """Every metric drills write, read from the code that writes them."""
    source = (ROOT / "drplan" / "report" / "evidence.py").read_text(encoding="utf-8")
    metrics = set(re.findall(r'"(drplan_drill_[a-z_]+)"', source))
    assert len(metrics) >= 10
    return metrics


def metrics_in(expr: str) -> set[str]:
    return set(re.findall(r"\bdrplan_[a-z_]+", expr))


def dashboard() -> dict[str, Any]:
    return json.loads((SHIPPED / "grafana-dashboard.json").read_text(encoding="utf-8"))


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


# --- the command prints the shipped files -----------------------------------------------------------


@pytest.mark.parametrize(
    "which,name", [("grafana", "grafana-dashboard.json"), ("prometheus-rules", "prometheus-rules.yml")]
)
def test_dashboard_prints_the_shipped_file(which: str, name: str, tmp_path: Path) -> None:
    shipped = (SHIPPED / name).read_text(encoding="utf-8")
    result = CliRunner().invoke(cli, ["dashboard", which])
    assert result.exit_code == 0 and result.output == shipped == asset(which)
    out = tmp_path / name
    assert CliRunner().invoke(cli, ["dashboard", which, "-o", str(out)]).exit_code == 0
    assert out.read_text(encoding="utf-8") == shipped


# --- Grafana -------------------------------------------------------------------------------------------


def test_dashboard_structure() -> None:
    board = dashboard()
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert board["uid"] == "drplan-drills" and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["environment"]["current"]["value"] == ["aws"]  # sandbox drills left out by default
    assert {o["value"] for o in variables["environment"]["options"]} == {"aws", "sandbox"}
    assert variables["plan"]["includeAll"]


def test_dashboard_queries_read_metrics_drplan_writes_and_honour_the_variables() -> None:
    written = written_metrics()
    used: set[str] = set()
    for title, expr in queries(dashboard()):
        found = metrics_in(expr)
        assert found, f"{title}: {expr}"
        assert found <= written, f"{title}: {sorted(found - written)} are not written by drplan"
        used |= found
        # Every series selector is filtered by the environment and plan variables.
        for selector in re.findall(r"\bdrplan_[a-z_]+(\{[^}]*\})?", expr):
            assert 'environment=~"$environment"' in selector and 'plan=~"$plan"' in selector, (title, expr)
    # What the dashboard is for: age of the last pass, measured vs objective, cleanups, history.
    assert {
        "drplan_drill_last_success_timestamp_seconds",
        "drplan_drill_objective_measured_seconds",
        "drplan_drill_objective_target_seconds",
        "drplan_drill_cleanup_complete",
        "drplan_drill_success",
    } <= used


@needs_promtool
def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """Each query, with the dashboard's variables filled in, is a valid PromQL expression."""
    rules = []
    for n, (_, expr) in enumerate(queries(dashboard())):
        concrete = expr.replace("$environment", "aws").replace("$plan", ".*")
        rules.append({"record": f"drplan:dashboard_query_{n}", "expr": concrete})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# --- Prometheus rules --------------------------------------------------------------------------------


def shipped_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((SHIPPED / "prometheus-rules.yml").read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_rules_read_metrics_drplan_writes_and_only_real_drills() -> None:
    written = written_metrics()
    for rule in shipped_rules():
        found = metrics_in(rule["expr"])
        assert found and found <= written, rule["alert"]
        for selector in re.findall(r"\bdrplan_[a-z_]+(\{[^}]*\})?", rule["expr"]):
            assert 'environment="aws"' in selector, rule["alert"]  # a sandbox drill never alerts
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(SHIPPED / "prometheus-rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(shipped_rules())} rules found" in result.stdout


LABELS = 'environment="{env}",mode="drill",plan="{plan}"'


def series(
    metric: str, values: str, *, env: str = "aws", plan: str = "webshop", **extra: str
) -> dict[str, str]:
    labels = LABELS.format(env=env, plan=plan) + "".join(f',{k}="{v}"' for k, v in extra.items())
    return {"series": f"{metric}{{{labels}}}", "values": values}


def fired(alert: str, *, plan: str = "webshop", severity: str, **extra: str) -> dict[str, Any]:
    return {
        "exp_labels": {
            "alertname": alert,
            "severity": severity,
            "environment": "aws",
            "mode": "drill",
            "plan": plan,
            **extra,
        }
    }


@needs_promtool
def test_promtool_unit_tests_of_the_alerts(tmp_path: Path) -> None:
    """Alerts fire for failed drills, leftovers, overdue and missed objectives of real drills;
    never for sandbox drills, nor for a drill while it runs (its metrics say success 0 until it ends)."""
    data = yaml.safe_load((SHIPPED / "prometheus-rules.yml").read_text(encoding="utf-8"))
    for group in data["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # compared by labels; promtool check rules parses the templates
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(data), encoding="utf-8")
    day = 86400
    tests = [
        {  # a failed real drill; a failed sandbox drill alongside says nothing
            "interval": "1m",
            "input_series": [
                series("drplan_drill_success", "0x30"),
                series("drplan_drill_in_progress", "0x30"),
                series("drplan_drill_cleanup_complete", "1x30"),
                series("drplan_drill_success", "0x30", env="sandbox"),
                series("drplan_drill_in_progress", "0x30", env="sandbox"),
                series("drplan_drill_cleanup_complete", "0x30", env="sandbox"),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "DrplanDrillFailed",
                    "exp_alerts": [fired("DrplanDrillFailed", severity="critical")],
                },
                {"eval_time": "10m", "alertname": "DrplanCleanupIncomplete", "exp_alerts": []},
            ],
        },
        {  # a drill running: success and cleanup are 0 until it ends, and nothing fires
            "interval": "1m",
            "input_series": [
                series("drplan_drill_success", "0x30"),
                series("drplan_drill_in_progress", "1x30"),
                series("drplan_drill_cleanup_complete", "0x30"),
                series("drplan_drill_last_run_timestamp_seconds", "0x30"),
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "DrplanDrillFailed", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "DrplanCleanupIncomplete", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "DrplanDrillStuck", "exp_alerts": []},
            ],
        },
        {  # leftovers after a drill, and a missed objective
            "interval": "1m",
            "input_series": [
                series("drplan_drill_success", "0x30"),
                series("drplan_drill_in_progress", "0x30"),
                series("drplan_drill_cleanup_complete", "0x30"),
                series("drplan_drill_objective_met", "0x30", service="orders-db", objective="rto"),
                series("drplan_drill_objective_met", "1x30", service="carts", objective="rto"),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "5m",
                    "alertname": "DrplanCleanupIncomplete",
                    "exp_alerts": [fired("DrplanCleanupIncomplete", severity="critical")],
                },
                {
                    "eval_time": "5m",
                    "alertname": "DrplanObjectiveMissed",
                    "exp_alerts": [
                        fired(
                            "DrplanObjectiveMissed", severity="warning", service="orders-db", objective="rto"
                        )
                    ],
                },
            ],
        },
        {  # time passes: a drill and a pass at time 0 become overdue after 8 days (sandbox: never)
            "interval": "1h",
            "input_series": [
                series("drplan_drill_last_run_timestamp_seconds", f"0x{10 * 24}"),
                series("drplan_drill_last_success_timestamp_seconds", f"0x{10 * 24}"),
                series("drplan_drill_last_run_timestamp_seconds", f"0x{10 * 24}", env="sandbox"),
                series("drplan_drill_last_success_timestamp_seconds", f"0x{10 * 24}", env="sandbox"),
            ],
            "alert_rule_test": [
                {"eval_time": f"{7 * day}s", "alertname": "DrplanNoPassingDrill", "exp_alerts": []},
                {
                    "eval_time": f"{9 * day}s",
                    "alertname": "DrplanNoPassingDrill",
                    "exp_alerts": [fired("DrplanNoPassingDrill", severity="warning")],
                },
                {
                    "eval_time": f"{9 * day}s",
                    "alertname": "DrplanDrillOverdue",
                    "exp_alerts": [fired("DrplanDrillOverdue", severity="warning")],
                },
                {"eval_time": f"{9 * day}s", "alertname": "DrplanDrillNeverPassed", "exp_alerts": []},
            ],
        },
        {  # drilled, never passed; and a drill stuck for 7 hours (scraped every minute)
            "interval": "1m",
            "input_series": [
                series("drplan_drill_last_run_timestamp_seconds", "0x500", plan="payments"),
                series("drplan_drill_in_progress", "1x500", plan="payments"),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "2h",
                    "alertname": "DrplanDrillNeverPassed",
                    "exp_alerts": [fired("DrplanDrillNeverPassed", plan="payments", severity="warning")],
                },
                {"eval_time": "3h", "alertname": "DrplanDrillStuck", "exp_alerts": []},
                {
                    "eval_time": "7h",
                    "alertname": "DrplanDrillStuck",
                    "exp_alerts": [fired("DrplanDrillStuck", plan="payments", severity="warning")],
                },
            ],
        },
        {  # no metrics of real drills for a day (only sandbox ones)
            "interval": "10m",
            "input_series": [series("drplan_drill_last_run_timestamp_seconds", "0x200", env="sandbox")],
            "alert_rule_test": [
                {
                    "eval_time": "25h",
                    "alertname": "DrplanMetricsMissing",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "alertname": "DrplanMetricsMissing",
                                "severity": "warning",
                                "environment": "aws",
                            }
                        }
                    ],
                }
            ],
        },
    ]
    spec = tmp_path / "rules-test.yml"
    spec.write_text(
        yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests}),
        encoding="utf-8",
    )
    result = promtool("test", "rules", spec.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

    # The same tests fail against a broken rule: they do test something.
    data["groups"][0]["rules"][0]["expr"] = "drplan_drill_success == 2"
    rules.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert promtool("test", "rules", spec.name, cwd=tmp_path).returncode == 1
