"""Notifications (``--notify``): SNS, EventBridge and a Slack-compatible webhook, each received by the
real thing it integrates with: moto's SNS delivering to an SQS queue, moto's EventBridge routing a
rule to an SQS queue, and an HTTP server on loopback for the webhook. A notification never changes
a run: unreachable or missing destinations are warnings, and the webhook's URL (a secret) is never
printed, journaled or put in the evidence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from drplan.cli import cli
from drplan.notify import (
    EventBridgeTarget,
    Notice,
    Notifier,
    NotifyConfigError,
    ObjectiveResult,
    SnsTarget,
    WebhookTarget,
    parse_target,
)
from tests.conftest import ROOT, free_port

PLAN = ROOT / "plans" / "status-page.json"
SECRET = "T0000/B0000/s3cr3tW3bh00kT0k3n"


# --- helpers: a webhook receiver, SQS inboxes ------------------------------------------------------


@dataclass
class Hook:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Hook]:
    """A Slack-compatible receiver on loopback: records each POSTed JSON body, answers 200."""
    hook = Hook(url="")

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append({"path": self.path, **json.loads(body)})
            hook.content_types.append(self.headers["Content-Type"])
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    hook.url = f"http://127.0.0.1:{server.server_port}/services/{SECRET}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield hook
    finally:
        server.shutdown()


def clients(endpoint: str) -> tuple[Any, Any, Any]:
    def make(name: str) -> Any:
        return boto3.client(name, region_name="us-east-1", endpoint_url=endpoint)

    return make("sns"), make("sqs"), make("events")


def queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def sns_inbox(endpoint: str) -> tuple[str, str]:
    """A topic with an SQS queue subscribed to it: (topic ARN, queue URL)."""
    sns, sqs, _ = clients(endpoint)
    topic = sns.create_topic(Name="drplan-drills")["TopicArn"]
    url, arn = queue(sqs, "sns-inbox")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, url


def eventbridge_inbox(endpoint: str) -> str:
    """A custom bus whose rule sends drplan's events to an SQS queue: the queue URL."""
    _, sqs, events = clients(endpoint)
    events.create_event_bus(Name="dr-events")
    url, arn = queue(sqs, "eventbridge-inbox")
    events.put_rule(
        Name="drplan-runs", EventBusName="dr-events", EventPattern=json.dumps({"source": ["drplan"]})
    )
    events.put_targets(Rule="drplan-runs", EventBusName="dr-events", Targets=[{"Id": "inbox", "Arn": arn}])
    return url


def read_queue(endpoint: str, url: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    _, sqs, _ = clients(endpoint)
    bodies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < count and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def drplan(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drplan", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def run_id_of(stderr: str) -> str:
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(("PASSED: drill ", "FAILED: drill ")), last
    return last.split()[2]


def everything_written(directory: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(directory.rglob("*")) if p.is_file())


# --- --notify values: checked before anything starts -----------------------------------------------


def test_parse_target_accepts_the_three_kinds() -> None:
    assert parse_target("sns:arn:aws:sns:eu-west-1:123456789012:dr-alerts") == SnsTarget(
        "arn:aws:sns:eu-west-1:123456789012:dr-alerts"
    )
    assert parse_target("sns:arn:aws:sns:eu-west-1:123456789012:dr-alerts").region == "eu-west-1"  # type: ignore[union-attr]
    assert parse_target("eventbridge:default") == EventBridgeTarget("default")
    bus = parse_target("eventbridge:arn:aws:events:us-west-2:123456789012:event-bus/dr")
    assert isinstance(bus, EventBridgeTarget) and bus.region == "us-west-2"
    hook = parse_target("webhook:https://hooks.example.com/services/x", {})
    assert isinstance(hook, WebhookTarget) and hook.url == "https://hooks.example.com/services/x"
    from_env = parse_target(
        "webhook:env:SLACK_WEBHOOK_URL", {"SLACK_WEBHOOK_URL": f"https://hooks.example.com/{SECRET}"}
    )
    assert isinstance(from_env, WebhookTarget) and from_env.env == "SLACK_WEBHOOK_URL"
    assert SECRET not in repr(from_env) and SECRET not in from_env.describe()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sms:+15550100", "not a kind of notification"),
        ("sns", "names no destination"),
        ("sns:my-topic", "not an SNS topic ARN"),
        ("sns:arn:aws:sqs:us-east-1:123456789012:q", "not an SNS topic ARN"),
        ("eventbridge:bad bus name", "not an EventBridge bus"),
        ("webhook:ftp://hooks.example.com/" + SECRET, "must start with http:// or https://"),
        ("webhook:env:SLACK_UNSET_FOR_TEST", "SLACK_UNSET_FOR_TEST is not set"),
        ("webhook:env:NOT_A_URL", "does not hold an http:// or https:// URL"),
        ("webhook:env:1BAD", "not an environment variable name"),
        (f"https://hooks.example.com/{SECRET}", "a bare URL needs its kind"),
        (f"hooks.example.com/{SECRET}", "<a URL> names no destination"),
    ],
)
def test_parse_target_refuses_with_what_is_wrong_and_never_echoes_a_webhook_url(
    value: str, expected: str
) -> None:
    with pytest.raises(NotifyConfigError) as caught:
        parse_target(value, {"NOT_A_URL": f"hooks.example.com/{SECRET}"})
    assert expected in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("command", ["drill", "recover"])
def test_a_bad_notify_value_is_a_usage_error_before_the_run_starts(
    tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, [command, str(PLAN), "--sandbox", "--yes", "--notify", "webhook:env:SLACK_UNSET_FOR_TEST"]
    )
    assert result.exit_code == 2, result.output
    assert "--notify" in result.output and "SLACK_UNSET_FOR_TEST is not set" in result.output
    assert not (tmp_path / ".drplan").exists()  # nothing started, nothing written
    result = CliRunner().invoke(cli, ["resume", "0123abcd", "--notify", "pager:on-call"])
    assert result.exit_code == 2 and "not a kind of notification" in result.output


# --- the real destinations --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_sandbox_drill_notifies_sns_eventbridge_and_a_webhook(
    tmp_path: Path, moto_server: str, webhook: Hook
) -> None:
    topic, sns_queue = sns_inbox(moto_server)
    events_queue = eventbridge_inbox(moto_server)
    done = drplan(
        "drill",
        str(PLAN),
        "--sandbox",
        "--report-dir",
        "evidence",
        "--events",
        "events.jsonl",
        # With --sandbox the plan's AWS is emulated; notices still go to the AWS --endpoint-url names.
        "--endpoint-url",
        moto_server,
        "--notify",
        f"sns:{topic}",
        "--notify",
        "eventbridge:dr-events",
        "--notify",
        "webhook:env:DRPLAN_TEST_HOOK",
        cwd=tmp_path,
        env={"DRPLAN_TEST_HOOK": webhook.url},
    )
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stderr)
    assert "notification" not in done.stderr  # every delivery worked

    # SNS: the topic delivered both notices to the subscribed queue, with filterable attributes.
    envelopes = read_queue(moto_server, sns_queue, 2)
    assert [e["MessageAttributes"]["event"]["Value"] for e in envelopes] == ["started", "passed"]
    started, finished = envelopes
    assert started["Subject"] == f"drplan: drill {run_id} of status-page started"
    assert "region us-east-1" in started["Message"] and "sandbox" in started["Message"]
    assert finished["Subject"] == f"drplan: drill {run_id} of status-page PASSED (exit 0)"
    assert "plan RTO" in finished["Message"] and "(objective 30m): met" in finished["Message"]
    assert "incidents RPO" in finished["Message"]
    assert "report: evidence/report.md" in finished["Message"]

    # EventBridge: the rule routed both events to its queue.
    events = read_queue(moto_server, events_queue, 2)
    assert [(e["source"], e["detail-type"]) for e in events] == [
        ("drplan", "drplan run started"),
        ("drplan", "drplan run finished"),
    ]
    detail = events[1]["detail"]
    assert detail["event"] == "passed" and detail["passed"] is True and detail["run_id"] == run_id
    assert detail["exit_code"] == 0 and detail["mode"] == "drill" and detail["plan"] == "status-page"
    plan_rto = next(o for o in detail["objectives"] if o["scope"] == "plan" and o["objective"] == "RTO")
    assert plan_rto["target_seconds"] == 1800 and plan_rto["met"] is True and plan_rto["measured_seconds"] > 0
    assert detail["leftovers"] == [] and detail["report"] == "evidence/report.md"

    # The webhook: Slack's {"text": ...}, as JSON.
    assert [h["text"].splitlines()[0] for h in webhook.received] == [
        f"drplan: drill {run_id} of status-page started",
        f"drplan: drill {run_id} of status-page PASSED (exit 0)",
    ]
    assert webhook.content_types == ["application/json", "application/json"]
    assert webhook.received[0]["path"] == f"/services/{SECRET}"

    # The webhook's URL is a secret: nowhere in the output, the journal, the events or the evidence.
    assert SECRET not in done.stdout + done.stderr
    assert SECRET not in everything_written(tmp_path)


@pytest.mark.slow
def test_a_failed_drill_sends_a_failed_notice_with_the_reasons(tmp_path: Path, webhook: Hook) -> None:
    done = drplan(
        "drill",
        str(PLAN),
        "--sandbox",
        "--inject",
        "incidents.restore:fail",
        "--notify",
        f"webhook:{webhook.url}",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    run_id = run_id_of(done.stderr)
    kinds = [h["text"].splitlines()[0] for h in webhook.received]
    assert kinds == [
        f"drplan: drill {run_id} of status-page started",
        f"drplan: drill {run_id} of status-page FAILED (exit 1)",
    ]
    text = webhook.received[1]["text"]
    assert "- the drill failed" in text and "RTO objective missed" in text
    assert SECRET not in done.stderr and SECRET not in everything_written(tmp_path)


@pytest.mark.slow
def test_an_unreachable_webhook_and_a_missing_topic_only_warn(tmp_path: Path, moto_server: str) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/services/{SECRET}"
    done = drplan(
        "drill",
        str(PLAN),
        "--sandbox",
        "--report-dir",
        "evidence",
        "--endpoint-url",
        moto_server,
        "--notify",
        "sns:arn:aws:sns:us-east-1:123456789012:no-such-topic",
        "--notify",
        "eventbridge:no-such-bus",
        "--notify",
        f"webhook:{unreachable}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("PASSED: drill ")
    warnings = [
        line for line in done.stderr.splitlines() if line.startswith("drplan: warning: notification:")
    ]
    for notice in ("started", "passed"):
        for where in (
            "SNS topic arn:aws:sns:us-east-1:123456789012:no-such-topic",
            "EventBridge bus no-such-bus",
            "webhook",
        ):
            assert any(f"the {notice} notice to {where} failed" in w for w in warnings), (
                notice,
                where,
                warnings,
            )
    assert any("NotFound" in w for w in warnings)
    assert any("cannot reach it" in w for w in warnings)
    # What failed before the evidence was written is in it too.
    report = json.loads((tmp_path / "evidence" / "report.json").read_text())
    assert report["verdict"]["passed"] is True
    assert any(
        p.startswith("notification: the started notice to webhook failed") for p in report["run"]["problems"]
    )
    assert SECRET not in done.stderr and SECRET not in everything_written(tmp_path)


@pytest.mark.slow
def test_incomplete_cleanup_sends_a_cleanup_incomplete_notice_with_the_leftovers(
    tmp_path: Path, webhook: Hook
) -> None:
    from botocore.exceptions import ClientError

    from drplan.aws import AwsSession
    from drplan.engine.records import RunOptions
    from drplan.pipeline import load_plan
    from drplan.runs import RunRequest, run_plan
    from drplan.sandbox import start_sandbox

    plan, _ = load_plan(PLAN)
    with start_sandbox(plan) as box:
        topic, sns_queue = sns_inbox(box.endpoint_url)  # the run's own (emulated) AWS: notify_aws is None

        def deny_deletes(client: Any) -> None:
            def hook(model: Any, **kwargs: Any) -> None:
                if model.name == "DeleteTable":
                    raise ClientError(
                        {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, model.name
                    )

            client.meta.events.register("before-call", hook)

        session = AwsSession(
            region="us-east-1",
            endpoint_url=box.endpoint_url,
            credentials=("sandbox", "sandbox"),
            emulated=True,
            customize=deny_deletes,
        )
        fast = RunOptions(
            poll_initial=0.05, poll_factor=1.2, poll_max=0.5, backoff_base=0.05, retry_delay=0.05
        )
        options = RunOptions(**{**fast.__dict__, **box.run_options(), "undo_timeout": 5.0})
        result = run_plan(
            RunRequest(
                plan,
                "drill",
                tmp_path,
                options=options,
                sandbox=True,
                notify=(SnsTarget(topic), WebhookTarget(webhook.url)),
            ),
            session,
        )
        envelopes = read_queue(box.endpoint_url, sns_queue, 2)
    assert result.exit_code == 3 and result.cleanup_failed == ["incidents.restore"]
    assert not [p for p in result.problems if p.startswith("notification")]
    assert [e["MessageAttributes"]["event"]["Value"] for e in envelopes] == ["started", "cleanup-incomplete"]
    text = webhook.received[-1]["text"]
    assert (
        text.splitlines()[0] == f"drplan: drill {result.run_id} of status-page: cleanup INCOMPLETE (exit 3)"
    )
    assert f"still there: dynamodb:table status-incidents-restored-drill-{result.run_id}" in text
    assert f"remove them with: drplan cleanup {result.run_id}" in text
    assert "cleanup incomplete: resources remain" in text


# --- the subscriber alone ------------------------------------------------------------------------


def test_a_webhook_error_never_shows_the_url() -> None:
    target = WebhookTarget(f"https://hooks.example.com/services/{SECRET}")
    for exc in (
        ValueError(f"unknown url type: {target.url}"),
        OSError(f"cannot open /services/{SECRET}"),
    ):
        assert SECRET not in Notifier._safe(exc, target)


def test_notice_text_and_detail_carry_the_objectives_and_leftovers() -> None:
    notice = Notice(
        "cleanup-incomplete",
        "3f9c2a71",
        "webshop",
        "drill",
        "123456789012",
        "us-east-1",
        "alice@ci",
        sandbox=False,
        exit_code=3,
        reasons=("cleanup incomplete: resources remain",),
        objectives=(
            ObjectiveResult("plan", "RTO", 7200, 2880, True),
            ObjectiveResult("carts", "RPO", 300, 900, False),
        ),
        leftovers=("rds:db shop-orders-restored-drill-3f9c2a71 (us-east-1)",),
        report=".drplan/runs/3f9c2a71/report/report.md",
    )
    text = notice.text()
    assert text.splitlines()[0] == "drplan: drill 3f9c2a71 of webshop: cleanup INCOMPLETE (exit 3)"
    assert "account 123456789012, region us-east-1, by alice@ci" in text
    assert "plan RTO 48m (objective 2h): met" in text and "carts RPO 15m (objective 5m): MISSED" in text
    assert "remove them with: drplan cleanup 3f9c2a71" in text
    detail = notice.detail()
    assert detail["event"] == "cleanup-incomplete" and detail["passed"] is False
    assert detail["leftovers"] == ["rds:db shop-orders-restored-drill-3f9c2a71 (us-east-1)"]
    json.dumps(detail)  # EventBridge takes it as JSON


def test_resume_notifies_where_the_run_started_and_never_journals_a_webhook_url(
    moto_server: str, tmp_path: Path, webhook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drill killed mid-run: its ``--notify`` targets are in its journal by the value that finds
    them again (``webhook:env:NAME``), so ``drplan resume`` sends the end notice there without being
    told; a webhook given by URL is not journaled (a secret), and resume says it was not notified."""
    from tests.test_durable import _kill_when, seed_tables, write_plan

    seed_tables(moto_server, "orders", "carts")
    plan = write_plan(tmp_path / "plan.json", wait="PT8S")
    state = tmp_path / "state"
    monkeypatch.setenv("DR_HOOK", webhook.url + "/by-env")
    args = ["drill", str(plan), "--endpoint-url", moto_server, "--state-dir", str(state)]
    args += ["--notify", "webhook:env:DR_HOOK", "--notify", f"webhook:{webhook.url}/by-url"]
    journal = _kill_when(args, tmp_path, state, {"step.started:orders.settle"})
    started = [h["path"] for h in webhook.received]
    assert sorted(started) == [f"/services/{SECRET}/by-env", f"/services/{SECRET}/by-url"]

    resumed = drplan("resume", journal.parent.name, "--state-dir", str(state), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 webhook(s) the run notified were given by URL" in resumed.stderr
    after = webhook.received[len(started) :]
    # The resumed process announces that it carries the run on, then its end: both by-env only.
    assert [h["path"] for h in after] == [f"/services/{SECRET}/by-env"] * 2
    assert "resumed" in after[0]["text"] and "PASSED" in after[1]["text"], after
    assert SECRET not in everything_written(state)


def test_a_pushgateway_url_that_may_hold_a_credential_is_not_journaled() -> None:
    from drplan.runs import _recordable

    assert _recordable("http://pushgateway.internal:9091") == "http://pushgateway.internal:9091"
    for secret in (
        "https://user:pass@push.example.com",
        "https://TOKEN@push.example.com",
        "https://push/?token=x",
    ):
        assert _recordable(secret) is None
