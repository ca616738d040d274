"""Drills in the sandbox: isolation, evidence, cleanup, safety, failure and interruption paths."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from junitparser import JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from drplan.engine.records import RunOptions
from drplan.engine.sweep import find_drill_resources
from drplan.model import build_plan
from drplan.pipeline import load_plan
from drplan.runs import DrillRefused, RunRequest, run_plan
from drplan.sandbox import start_sandbox
from tests.conftest import EXAMPLE_PLANS, ROOT

pytestmark = pytest.mark.slow
REPORT_SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
FAST = RunOptions(poll_initial=0.05, poll_factor=1.2, poll_max=0.5, backoff_base=0.05, retry_delay=0.05)


def drill_in(box, plan, state_dir: Path, session=None, **request):  # type: ignore[no-untyped-def]
    """Drill ``plan`` in the sandbox ``box`` through the library, as the CLI would (fast polling)."""
    options = RunOptions(**{**FAST.__dict__, **box.run_options()})
    return run_plan(
        RunRequest(plan, "drill", Path(state_dir), options=options, sandbox=True, **request),
        session or box.session(),
    )


def drplan(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drplan", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def check_evidence(directory: Path, *, passed: bool) -> dict:
    """The five evidence files exist and are valid; returns report.json."""
    report = json.loads((directory / "report.json").read_text())
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(report)
    assert report["verdict"]["passed"] is passed
    suites = list(JUnitXml.fromfile(str(directory / "junit.xml")))
    cases = [case for suite in suites for case in suite]
    assert {c.name for c in cases} >= {s["key"] for s in report["steps"]}
    assert any("RTO" in c.name for c in cases)
    metrics = {f.name: f for f in text_string_to_metric_families((directory / "metrics.prom").read_text())}
    success = metrics["drplan_drill_success"].samples[0]
    assert success.value == (1.0 if passed else 0.0) and success.labels["plan"] == report["plan"]["name"]
    assert "drplan_drill_objective_met" in metrics and "drplan_drill_cleanup_complete" in metrics
    if shutil.which("promtool"):
        done = subprocess.run(
            ["promtool", "check", "metrics"],
            input=(directory / "metrics.prom").read_text(),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    markdown = (directory / "report.md").read_text()
    html = (directory / "report.html").read_text()
    verdict = "PASSED" if passed else "FAILED"
    assert verdict in markdown.split("\n## ")[0] and verdict in html
    return report


@pytest.mark.parametrize("plan_file", EXAMPLE_PLANS, ids=lambda p: p.stem)
def test_sandbox_drill_of_each_example_plan_passes_and_leaves_nothing(plan_file, tmp_path):
    plan, _ = load_plan(plan_file)
    with start_sandbox(plan) as box:
        session = box.session(region=plan.drill.region or plan.aws.region)
        result = drill_in(box, plan, tmp_path, session)
        left = find_drill_resources(session, session.region_of(None))
    assert result.outcome.ok, {k: (r.status, r.error) for k, r in result.outcome.records.items()}
    assert result.exit_code == 0 and not result.cleanup_failed
    assert left == [], f"drill resources left behind: {left}"
    created = [r for rec in result.outcome.records.values() for r in rec.resources]
    named = [r for r in created if r.kind in ("rds:db", "rds:cluster", "dynamodb:table", "s3:bucket")]
    assert created and all(result.prepared.suffix in r.id for r in named), named


def test_drill_cli_in_the_sandbox_writes_valid_evidence(tmp_path):
    done = drplan(
        "drill", str(ROOT / "plans" / "webshop.json"), "--sandbox", "--report-dir", "evidence", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "PASSED" in done.stderr and "evidence/report.md" in done.stderr
    report = check_evidence(tmp_path / "evidence", passed=True)
    assert report["environment"]["sandbox"] is True
    assert report["cleanup"]["status"] == "complete"
    assert all(r["deleted"] and r["verified_gone_at"] for r in report["cleanup"]["resources"])
    services = {s["id"]: s for s in report["objectives"]["services"]}
    assert (
        services["orders-db"]["rto"]["met"] is True
        and services["orders-db"]["rto"]["predicted_seconds"] == 27 * 60
    )
    assert {p["step"] for p in report["recovery_points"]} >= {
        "orders-db.restore",
        "carts.restore",
        "media.volume",
    }
    skipped = {s["key"]: s["reason"] for s in report["skipped"]}
    assert "web.scale" in skipped and "production" in skipped["web.scale"]
    assert "web.approve" in skipped


def test_drill_never_touches_production_resources(tmp_path):
    """Production-named resources (even ones named like the plan's restore targets) stay identical."""
    plan, _ = load_plan(ROOT / "plans" / "status-page.json")
    with start_sandbox(plan) as box:
        ddb = box.client("dynamodb", "us-east-1")
        ddb.create_table(
            TableName="status-incidents-restored",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName="status-incidents-restored", Item={"pk": {"S": "production-row"}})

        def snapshot() -> dict:
            out = {}
            for name in sorted(ddb.list_tables()["TableNames"]):
                table = ddb.describe_table(TableName=name)["Table"]
                items = sorted(json.dumps(i, sort_keys=True) for i in ddb.scan(TableName=name)["Items"])
                tags = ddb.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags", [])
                out[name] = (table["TableStatus"], table["KeySchema"], items, tags)
            return out

        before = snapshot()
        result = drill_in(box, plan, tmp_path)
        after = snapshot()
    assert result.outcome.ok
    assert after == before


def test_drill_refuses_to_start_when_an_isolated_name_is_taken(tmp_path):
    plan, _ = load_plan(ROOT / "plans" / "status-page.json")
    with start_sandbox(plan) as box:
        ddb = box.client("dynamodb", "us-east-1")
        ddb.create_table(
            TableName="status-incidents-restored-drill-fixed01",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        tables_before = sorted(ddb.list_tables()["TableNames"])
        with pytest.raises(DrillRefused, match="status-incidents-restored-drill-fixed01"):
            drill_in(box, plan, tmp_path, run_id="fixed01")
        assert sorted(ddb.list_tables()["TableNames"]) == tables_before


def failing_plan(tmp_path: Path) -> Path:
    path = tmp_path / "failing.json"
    path.write_text(
        json.dumps(
            {
                "drplan": 1,
                "name": "failing",
                "aws": {"region": "us-east-1"},
                "objectives": {"rto": "PT1H", "rpo": "P1D"},
                "services": {
                    "db": {
                        "steps": [
                            {
                                "id": "restore",
                                "uses": "aws.dynamodb.restore_backup",
                                "estimate": "PT5M",
                                "with": {"source_table": "orders", "target": "orders-restored"},
                            },
                            # Nothing listens on port 9 here: the check fails once its timeout passes.
                            {
                                "id": "reachable",
                                "uses": "check.tcp",
                                "estimate": "PT1M",
                                "timeout": "PT2S",
                                "with": {"host": "127.0.0.1", "port": 9, "interval": "PT1S"},
                            },
                        ]
                    },
                    "api": {
                        "depends_on": ["db"],
                        "steps": [
                            {
                                "id": "restore",
                                "uses": "aws.dynamodb.restore_backup",
                                "estimate": "PT5M",
                                "with": {"source_table": "sessions", "target": "sessions-restored"},
                            }
                        ],
                    },
                    "carts": {
                        "steps": [
                            {
                                "id": "restore",
                                "uses": "aws.dynamodb.restore_backup",
                                "estimate": "PT5M",
                                "with": {"source_table": "carts", "target": "carts-restored"},
                            },
                            {
                                "id": "up",
                                "uses": "check.http",
                                "estimate": "PT1M",
                                "with": {"url": "https://carts.example.com/health"},
                            },
                            {
                                "id": "deep",
                                "uses": "check.http",
                                "estimate": "PT1M",
                                "with": {"url": "${carts.up.url}?deep=1"},
                            },
                        ]
                    },
                },
            }
        )
    )
    return path


def test_a_failing_step_skips_dependents_writes_evidence_cleans_up_and_exits_1(tmp_path):
    done = drplan("drill", str(failing_plan(tmp_path)), "--sandbox", "--report-dir", "evidence", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    report = check_evidence(tmp_path / "evidence", passed=False)
    status = {s["key"]: s["status"] for s in report["steps"]}
    assert status == {
        "db.restore": "succeeded",
        "db.reachable": "failed",
        "api.restore": "skipped",
        "carts.restore": "succeeded",
        "carts.up": "unverified",  # the sandbox does not emulate carts.example.com: not a pass
        "carts.deep": "unverified",  # its URL comes from carts.up, which has no outputs
    }
    unverified = {u["key"]: u["reason"] for u in report["verdict"]["unverified"]}
    assert list(unverified) == ["carts.up", "carts.deep"]
    assert "its input comes from `carts.up`" in unverified["carts.deep"]
    assert report["cleanup"]["status"] == "complete"
    assert {r["id"] for r in report["cleanup"]["resources"]} == {
        f"orders-restored{report['run']['name_suffix']}",
        f"carts-restored{report['run']['name_suffix']}",
    }
    # db takes the plan's RTO: it is judged with the plan ("every service back"), and the miss says why.
    reasons = report["verdict"]["reasons"]
    assert any(r.startswith("plan: RTO objective missed") for r in reasons), reasons
    db = {s["id"]: s for s in report["objectives"]["services"]}["db"]["rto"]
    assert db["met"] is False and db["objective_from"] == "plan" and "db.reachable" in db["cause"]


def test_sigint_mid_drill_cleans_up_and_exits_3(tmp_path):
    plan = tmp_path / "slow.json"
    plan.write_text(
        json.dumps(
            {
                "drplan": 1,
                "name": "slow",
                "aws": {"region": "us-east-1"},
                "services": {
                    "db": {
                        "steps": [
                            {
                                "id": "restore",
                                "uses": "aws.dynamodb.restore_backup",
                                "with": {"source_table": "orders", "target": "orders-restored"},
                            },
                            {"id": "settle", "uses": "command", "with": {"run": ["sleep", "60"]}},
                            {"id": "up", "uses": "check.tcp", "with": {"host": "127.0.0.1", "port": 9}},
                        ]
                    }
                },
                "allow_commands": True,
            }
        )
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drplan",
            "drill",
            str(plan),
            "--sandbox",
            "--allow-commands",
            "--report-dir",
            "evidence",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen, deadline = "", time.time() + 120
    while "db.settle started" not in seen and time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert "db.settle started" in seen, seen
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err = seen + rest
    assert proc.returncode == 3, err
    report = json.loads((tmp_path / "evidence" / "report.json").read_text())
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(report)
    assert report["run"]["interrupted"] is True and report["run"]["status"] == "interrupted"
    assert report["cleanup"]["status"] == "complete"
    assert [r["deleted"] for r in report["cleanup"]["resources"]] == [True]
    assert {s["key"]: s["status"] for s in report["steps"]}["db.up"] in ("not_started", "skipped")


def test_sweep_removes_what_a_keep_run_left_and_only_that(tmp_path):
    plan_path = tmp_path / "keep.json"
    plan_path.write_text(
        json.dumps(
            {
                "drplan": 1,
                "name": "keep",
                "aws": {"region": "us-east-1"},
                "services": {
                    "db": {
                        "steps": [
                            {
                                "id": "restore",
                                "uses": "aws.dynamodb.restore_backup",
                                "with": {"source_table": "orders", "target": "orders-copy"},
                            }
                        ]
                    },
                    "files": {
                        "steps": [
                            {
                                "id": "rewind",
                                "uses": "aws.s3.restore_versions",
                                "with": {"bucket": "keep-files-example", "at": "PT1H"},
                            }
                        ]
                    },
                },
            }
        )
    )
    plan = build_plan(json.loads(plan_path.read_text()), path=str(plan_path))
    with start_sandbox(plan) as box:
        endpoint = ["--endpoint-url", box.endpoint_url, "--region", "us-east-1"]
        kept = drplan("drill", str(plan_path), "--keep", *endpoint, cwd=tmp_path)
        assert kept.returncode == 0, kept.stderr
        assert "drplan cleanup" in kept.stderr
        session = box.session()
        left = find_drill_resources(session, "us-east-1")
        assert {f.resource.kind for f in left} == {"dynamodb:table", "s3:bucket"}

        young = drplan("cleanup", "--sweep", "--older-than", "1d", *endpoint, cwd=tmp_path)
        assert young.returncode == 0 and "0 drill resource(s)" in young.stderr
        assert len(find_drill_resources(session, "us-east-1")) == 2

        swept = drplan("cleanup", "--sweep", *endpoint, cwd=tmp_path)
        assert swept.returncode == 0, swept.stderr
        assert find_drill_resources(session, "us-east-1") == []
        # The production sources the sandbox seeded are still there.
        assert "orders" in box.client("dynamodb", "us-east-1").list_tables()["TableNames"]
        assert box.client("s3", "us-east-1").head_bucket(Bucket="keep-files-example")


def test_cleanup_by_run_id_from_the_journal(tmp_path):
    plan, _ = load_plan(ROOT / "plans" / "status-page.json")
    with start_sandbox(plan) as box:
        session = box.session()
        result = drill_in(box, plan, tmp_path / ".drplan", keep=True)
        assert result.cleanup_skipped == "--keep"
        assert len(find_drill_resources(session, "us-east-1")) == 1
        done = drplan("cleanup", result.run_id, "--endpoint-url", box.endpoint_url, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert find_drill_resources(session, "us-east-1") == []
        again = drplan("cleanup", result.run_id, "--endpoint-url", box.endpoint_url, cwd=tmp_path)
        assert again.returncode == 0 and "0 resource(s) not yet removed" in again.stderr


def test_incomplete_cleanup_exits_3_and_lists_what_remains(tmp_path):
    from botocore.exceptions import ClientError

    from drplan.evidence import build_report

    plan, _ = load_plan(ROOT / "plans" / "status-page.json")
    with start_sandbox(plan) as box:

        def deny_deletes(client):
            def hook(model, **kwargs):
                if model.name == "DeleteTable":
                    raise ClientError(
                        {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, model.name
                    )

            client.meta.events.register("before-call", hook)

        from drplan.aws import AwsSession

        session = AwsSession(
            region="us-east-1",
            endpoint_url=box.endpoint_url,
            credentials=("sandbox", "sandbox"),
            emulated=True,
            customize=deny_deletes,
        )
        result = drill_in(box, plan, tmp_path, session)
        left = find_drill_resources(box.session(), "us-east-1")
    assert result.outcome.ok and result.cleanup_failed == ["incidents.restore"]
    assert result.exit_code == 3
    report = build_report(result, sandbox=True)
    assert report["cleanup"]["status"] == "incomplete"
    assert [r["deleted"] for r in report["cleanup"]["resources"]] == [False]
    assert [f.resource.id for f in left] == [report["cleanup"]["resources"][0]["id"]]
    assert "cleanup incomplete: resources remain" in report["verdict"]["reasons"]


def test_pushgateway_receives_the_drill_metrics(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self):
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"])).decode()))
            self.send_response(200)
            self.end_headers()

        do_POST = do_PUT

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = drplan(
            "drill",
            str(ROOT / "plans" / "status-page.json"),
            "--sandbox",
            "--pushgateway",
            f"http://127.0.0.1:{server.server_port}",
            cwd=tmp_path,
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    ((path, body),) = received
    # A sandbox drill is its own group and series: it can never reset a real drill's alerts.
    assert path == "/metrics/job/drplan_drill/environment/sandbox/mode/drill/plan/status-page"
    families = {f.name: f for f in text_string_to_metric_families(body)}
    success = families["drplan_drill_success"].samples[0]
    assert success.value == 1.0 and success.labels["environment"] == "sandbox"
    last = families["drplan_drill_last_success_timestamp_seconds"].samples[0]
    assert last.labels["environment"] == "sandbox"  # its own series: the real one is untouched


def test_the_sandbox_refuses_a_taken_name_without_any_aws_credentials_in_the_environment(
    tmp_path, monkeypatch
):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    plan, _ = load_plan(ROOT / "plans" / "webshop.json")
    with start_sandbox(plan) as box:
        ddb = box.client("dynamodb", "us-east-1")
        ddb.create_table(
            TableName="shop-carts-restored-drill-0badc0de",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        with pytest.raises(DrillRefused, match="shop-carts-restored-drill-0badc0de"):
            drill_in(box, plan, tmp_path, run_id="0badc0de")


def test_injected_faults_are_rehearsed_cleaned_up_and_in_the_evidence(tmp_path):
    """fail-once exercises a step's retries; throttle the backoff; timeout undo and cleanup. The
    plan declares one fault, the command line adds two."""
    data = json.loads((ROOT / "plans" / "webshop.json").read_text())
    data["drill"]["faults"] = [{"step": "orders-db.restore", "fault": "throttle", "times": 2}]
    data["services"]["carts"]["steps"][0]["retries"] = 1
    plan = tmp_path / "webshop.json"
    plan.write_text(json.dumps(data, indent=2))
    done = drplan(
        "drill",
        str(plan),
        "--sandbox",
        "--inject",
        "carts.restore:fail-once",
        "--inject",
        "media.volume:timeout",
        "--report-dir",
        "evidence",
        "--events",
        "events.jsonl",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads((tmp_path / "evidence" / "report.json").read_text())
    injected = {i["step"]: (i["fault"], i["status"]) for i in report["injected"]}
    assert injected == {
        "orders-db.restore": ("throttle", "succeeded"),
        "carts.restore": ("fail-once", "succeeded"),
        "media.volume": ("timeout", "failed"),
    }
    steps = {s["key"]: s for s in report["steps"]}
    assert steps["carts.restore"]["attempts"] == 2
    assert "injected fault" in steps["media.volume"]["error"]
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    throttled = [e for e in events if e["kind"] == "step.throttled" and e["step"] == "orders-db.restore"]
    assert len(throttled) == 2
    assert report["cleanup"]["status"] == "complete"
    assert all(r["deleted"] for r in report["cleanup"]["resources"])
