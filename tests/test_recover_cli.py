"""``drplan recover`` end to end: a real subprocess, boto3 talking HTTP to moto's server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.slow


def write_plan(tmp_path: Path, services: dict, **top) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(
        json.dumps({"drplan": 1, "name": "e2e", "aws": {"region": "us-east-1"}, **top, "services": services})
    )
    return path


def drplan(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "drplan", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def seed_table(endpoint: str, name: str, items: int) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(items):
        client.put_item(TableName=name, Item={"pk": {"S": f"{name}-{i}"}})
    client.create_backup(TableName=name, BackupName=f"{name}-nightly")


def test_recover_restores_through_a_local_aws_endpoint(tmp_path, moto_server):
    seed_table(moto_server, "orders", 12)
    port = moto_server.rsplit(":", 1)[1]
    plan = write_plan(
        tmp_path,
        {
            "orders": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "orders", "target": "orders-restored"},
                    },
                    # moto's server is the only thing listening here: a real TCP check against it.
                    {
                        "id": "reachable",
                        "uses": "check.tcp",
                        "with": {"host": "127.0.0.1", "port": int(port)},
                    },
                ]
            }
        },
    )
    done = drplan(
        "recover", str(plan), "--yes", "--endpoint-url", moto_server, "--events", "events.jsonl", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "orders.restore succeeded" in done.stderr
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_server)
    assert client.scan(TableName="orders-restored")["Count"] == 12
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[0]["kind"] == "run.started" and events[-1]["kind"] == "run.finished"
    run_id = events[0]["run_id"]
    journal = tmp_path / ".drplan" / "runs" / run_id / "journal.jsonl"
    assert [json.loads(x)["kind"] for x in journal.read_text().splitlines()] == [e["kind"] for e in events]


def test_recover_refuses_without_confirmation_when_not_on_a_terminal(tmp_path, moto_server):
    seed_table(moto_server, "orders", 1)
    plan = write_plan(
        tmp_path,
        {
            "orders": {
                "steps": [
                    {
                        "id": "r",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "orders", "target": "orders-restored"},
                    }
                ]
            }
        },
    )
    done = drplan("recover", str(plan), "--endpoint-url", moto_server, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "pass --yes" in done.stderr
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_server)
    assert "orders-restored" not in client.list_tables()["TableNames"]


def test_rollback_on_failure_through_the_cli(tmp_path, moto_server):
    seed_table(moto_server, "orders", 3)
    plan = write_plan(
        tmp_path,
        {
            "orders": {
                "steps": [
                    {
                        "id": "r",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "orders", "target": "orders-restored"},
                    }
                ]
            },
            "later": {
                "depends_on": ["orders"],
                "steps": [
                    {
                        "id": "r",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "nope", "target": "nope-restored"},
                    }
                ],
            },
        },
    )
    done = drplan(
        "recover", str(plan), "--yes", "--rollback-on-failure", "--endpoint-url", moto_server, cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    assert "later.r FAILED" in done.stderr and "orders.r undone" in done.stderr
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_server)
    assert "orders-restored" not in client.list_tables()["TableNames"]


def test_ctrl_c_stops_the_run_and_exits_3(tmp_path, moto_server):
    seed_table(moto_server, "orders", 1)
    plan = write_plan(
        tmp_path,
        {
            "slow": {
                "steps": [
                    {"id": "w", "uses": "wait", "with": {"duration": "PT60S"}},
                    {
                        "id": "r",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "orders", "target": "orders-restored"},
                    },
                ]
            }
        },
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "drplan", "recover", str(plan), "--yes", "--endpoint-url", moto_server],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 30
    seen = ""
    while "slow.w started" not in seen and time.time() < deadline:
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    err = seen + err
    assert proc.returncode == 3, err
    assert "SIGINT" in err and "slow.r skipped" in err
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_server)
    assert "orders-restored" not in client.list_tables()["TableNames"]
