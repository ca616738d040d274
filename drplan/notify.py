"""Notifications: tell people and systems when a run starts and how it ended.

``--notify`` names where to (repeatable): an SNS topic (``sns:TOPIC_ARN``), an EventBridge bus
(``eventbridge:BUS_NAME_OR_ARN``) or a Slack-compatible webhook (``webhook:URL``, or
``webhook:env:VARIABLE`` to read the URL, a secret, from the environment). :func:`parse_target`
checks each before the run starts, so a typo is a usage error and nothing is half-done.

:class:`Notifier` is an event-bus subscriber. It turns ``run.started``/``run.resumed`` into a
*started* notice and ``run.finished`` into a *passed*, *failed* or *cleanup-incomplete* one, built
from the event and, for drills, the evidence just written (``report.json``: verdict, measured RTO
and RPO against the objectives, what cleanup left). Notices are sent by one background thread, so
a slow endpoint never delays a step: the bus only queues them.

A notification must never change a run. Sending failures are caught, described without the
webhook's URL (it is a secret: it is never printed, journaled or put in the evidence) and handed
back through :meth:`Notifier.problems` and :meth:`Notifier.close`, which ``drplan.runs`` adds to
the run's problems (a warning on standard error, and a line in the evidence when it is known in
time).
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from drplan.aws import AwsAccess, describe_error
from drplan.durations import humanize
from drplan.engine.events import Event

NoticeKind = Literal["started", "passed", "failed", "cleanup-incomplete"]

#: EventBridge ``source`` and ``detail-type`` of every notice.
SOURCE = "drplan"
DETAIL_TYPES: dict[NoticeKind, str] = {
    "started": "drplan run started",
    "passed": "drplan run finished",
    "failed": "drplan run finished",
    "cleanup-incomplete": "drplan run finished",
}
#: Seconds one delivery may take (connect and answer); and how long the end of a run waits for the
#: notices still queued before it says which were not sent.
SEND_TIMEOUT = 10.0
CLOSE_TIMEOUT = 30.0
#: How long the evidence waits for the notices sent so far to be tried (their failures go in it).
SETTLE_TIMEOUT = 5.0

_SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_BUS_NAME = re.compile(r"^[/.\-_A-Za-z0-9]{1,256}$")
_BUS_ARN = re.compile(r"^arn:aws[a-z-]*:events:([a-z0-9-]+):[0-9]{12}:event-bus/[/.\-_A-Za-z0-9]{1,256}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class NotifyConfigError(ValueError):
    """A ``--notify`` value that cannot work; the message says what and how to write it."""


@dataclass(frozen=True)
class SnsTarget:
    topic_arn: str

    @property
    def region(self) -> str:
        match = _SNS_ARN.match(self.topic_arn)
        return match.group(1) if match else ""

    def describe(self) -> str:
        return f"SNS topic {self.topic_arn}"

    def spec(self) -> str:
        return f"sns:{self.topic_arn}"


@dataclass(frozen=True)
class EventBridgeTarget:
    bus: str  # a name (the run's region) or an ARN (its own region)

    @property
    def region(self) -> str | None:
        match = _BUS_ARN.match(self.bus)
        return match.group(1) if match else None

    def describe(self) -> str:
        return f"EventBridge bus {self.bus}"

    def spec(self) -> str:
        return f"eventbridge:{self.bus}"


@dataclass(frozen=True)
class WebhookTarget:
    #: The URL is a secret (it is the credential of a Slack webhook): kept out of repr and messages.
    url: str = field(repr=False)
    env: str | None = None  # the environment variable it was read from, if any

    def describe(self) -> str:
        return f"webhook (${self.env})" if self.env else "webhook"

    def spec(self) -> str | None:
        """The ``--notify`` value that finds this webhook again; none for a URL given as such,
        which is a secret and must not be written into the journal."""
        return f"webhook:env:{self.env}" if self.env else None


NotifyTarget = SnsTarget | EventBridgeTarget | WebhookTarget


def recorded_targets(targets: tuple[NotifyTarget, ...]) -> tuple[list[str], int]:
    """What a run's journal keeps of its ``--notify`` targets, so that ``drplan resume`` notifies
    the same places: each target's value, and how many it cannot keep (webhooks given by URL)."""
    specs = [target.spec() for target in targets]
    return [s for s in specs if s is not None], sum(s is None for s in specs)


USAGE = "write sns:TOPIC_ARN, eventbridge:BUS_NAME_OR_ARN, webhook:URL or webhook:env:VARIABLE"


def parse_target(text: str, environ: Mapping[str, str] | None = None) -> NotifyTarget:
    """One ``--notify`` value. Raises :class:`NotifyConfigError` naming what is wrong; never puts
    a webhook URL in the message (it may be a secret pasted in the wrong place)."""
    env = os.environ if environ is None else environ
    kind, sep, rest = text.partition(":")
    if kind in ("http", "https"):
        raise NotifyConfigError(
            "a bare URL needs its kind: write webhook:URL, or webhook:env:VARIABLE to keep the URL (a "
            "secret) out of the command line"
        )
    if not sep or not rest:
        raise NotifyConfigError(f"{_shown(text)} names no destination: {USAGE}")
    if kind == "sns":
        if not _SNS_ARN.match(rest):
            raise NotifyConfigError(f"{rest!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)")
        return SnsTarget(rest)
    if kind == "eventbridge":
        if not (_BUS_NAME.match(rest) or _BUS_ARN.match(rest)):
            raise NotifyConfigError(
                f"{rest!r} is not an EventBridge bus name or ARN (default, my-bus, or "
                "arn:aws:events:REGION:ACCOUNT:event-bus/NAME)"
            )
        return EventBridgeTarget(rest)
    if kind == "webhook":
        if rest.startswith("env:"):
            name = rest[4:]
            if not _ENV_NAME.match(name):
                raise NotifyConfigError(f"webhook:env:{name}: {name!r} is not an environment variable name")
            url = env.get(name, "")
            if not url:
                raise NotifyConfigError(f"webhook:env:{name}: the environment variable {name} is not set")
            if not _is_http(url):
                raise NotifyConfigError(
                    f"webhook:env:{name}: ${name} does not hold an http:// or https:// URL"
                )
            return WebhookTarget(url, env=name)
        if not _is_http(rest):
            raise NotifyConfigError("webhook: the URL must start with http:// or https:// and name a host")
        return WebhookTarget(rest)
    raise NotifyConfigError(f"{_shown(kind)} is not a kind of notification: {USAGE}")


def _is_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _shown(text: str) -> str:
    """``text`` for an error message, unless it looks like a URL or a path (a webhook pasted
    without ``webhook:``): those may hold the webhook's secret."""
    return "<a URL>" if "/" in text else repr(text)


# --- what a notice says --------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveResult:
    """One objective of the run: the plan's or a service's RTO or RPO, measured against it."""

    scope: str  # "plan" or a service id
    objective: Literal["RTO", "RPO"]
    target_seconds: float | None
    measured_seconds: float | None
    met: bool | None  # None: nothing to judge

    def line(self) -> str:
        measured = humanize(self.measured_seconds) if self.measured_seconds is not None else "not measured"
        target = (
            f"objective {humanize(self.target_seconds)}"
            if self.target_seconds is not None
            else "no objective"
        )
        verdict = {True: "met", False: "MISSED", None: "-"}[self.met]
        return f"{self.scope} {self.objective} {measured} ({target}): {verdict}"


@dataclass(frozen=True)
class Notice:
    """Everything one notification says; rendered as text (SNS, webhook) and as JSON (EventBridge)."""

    kind: NoticeKind
    run_id: str
    plan: str
    mode: str
    account: str | None
    region: str | None
    user: str | None
    sandbox: bool
    resumed: bool = False
    exit_code: int | None = None
    reasons: tuple[str, ...] = ()
    objectives: tuple[ObjectiveResult, ...] = ()
    leftovers: tuple[str, ...] = ()
    report: str | None = None
    duration_seconds: float | None = None

    @property
    def what(self) -> str:
        return "drill" if self.mode == "drill" else "recovery"

    def title(self) -> str:
        head = f"drplan: {self.what} {self.run_id} of {self.plan}"
        return {
            "started": f"{head} {'resumed' if self.resumed else 'started'}",
            "passed": f"{head} PASSED",
            "failed": f"{head} FAILED",
            "cleanup-incomplete": f"{head}: cleanup INCOMPLETE",
        }[self.kind] + ("" if self.exit_code is None else f" (exit {self.exit_code})")

    def text(self) -> str:
        where = ", ".join(
            p
            for p in (
                f"account {self.account}" if self.account else "",
                f"region {self.region}" if self.region else "",
                "in the sandbox (emulated AWS)" if self.sandbox else "",
                f"by {self.user}" if self.user else "",
            )
            if p
        )
        lines = [
            self.title(),
            f"plan {self.plan}, {self.what} (run {self.run_id}){': ' + where if where else ''}",
        ]
        if self.duration_seconds is not None:
            lines.append(f"took {humanize(self.duration_seconds)}")
        lines += [f"- {reason}" for reason in self.reasons]
        lines += [o.line() for o in self.objectives]
        if self.leftovers:
            lines.append("still there: " + ", ".join(self.leftovers))
            lines.append(f"remove them with: drplan cleanup {self.run_id}")
        if self.report:
            lines.append(f"report: {self.report}")
        return "\n".join(lines)

    def detail(self) -> dict[str, Any]:
        """The EventBridge ``detail``: the same facts, for rules and tools."""
        return {
            "event": self.kind,
            "run_id": self.run_id,
            "plan": self.plan,
            "mode": self.mode,
            "account": self.account,
            "region": self.region,
            "sandbox": self.sandbox,
            "resumed": self.resumed,
            "exit_code": self.exit_code,
            "passed": None if self.kind == "started" else self.kind == "passed",
            "reasons": list(self.reasons),
            "objectives": [
                {
                    "scope": o.scope,
                    "objective": o.objective,
                    "target_seconds": o.target_seconds,
                    "measured_seconds": o.measured_seconds,
                    "met": o.met,
                }
                for o in self.objectives
            ],
            "leftovers": list(self.leftovers),
            "report": self.report,
            "duration_seconds": self.duration_seconds,
            "summary": self.title(),
        }


def _objectives(report: Mapping[str, Any]) -> tuple[ObjectiveResult, ...]:
    out = []
    scopes = [("plan", report.get("objectives", {}).get("plan") or {})]
    scopes += [(str(s.get("id")), s) for s in report.get("objectives", {}).get("services", [])]
    for scope, judged in scopes:
        for key, label in (("rto", "RTO"), ("rpo", "RPO")):
            value = judged.get(key) or {}
            if value.get("objective_seconds") is None and value.get("measured_seconds") is None:
                continue
            out.append(
                ObjectiveResult(
                    scope,
                    label,  # type: ignore[arg-type]
                    value.get("objective_seconds"),
                    value.get("measured_seconds"),
                    value.get("met"),
                )
            )
    return tuple(out)


# --- delivering ----------------------------------------------------------------------------------


class Notifier:
    """Subscribe it to a run's event bus; ``close()`` at the end of the run."""

    name = "notifications"

    def __init__(
        self,
        targets: tuple[NotifyTarget, ...],
        aws: AwsAccess,
        *,
        evidence_dir: Path | None = None,
        shared_state: str | None = None,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.targets = targets
        self.aws = aws
        self.evidence_dir = evidence_dir
        self.shared_state = shared_state
        self.send_timeout = send_timeout
        self._start: Notice | None = None
        self._started_at: float | None = None
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._problems: list[str] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # The bus calls this under its lock: it only builds the notice and queues it.
    def __call__(self, event: Event) -> None:
        if event.kind in ("run.started", "run.resumed"):
            data = event.data
            self._start = Notice(
                "started",
                event.run_id,
                plan=str(data.get("plan", "")),
                mode=str(data.get("mode", "")),
                account=_str(data.get("account")),
                region=_str(data.get("region")),
                user=_str(data.get("resumed_by") or data.get("user")),
                sandbox=bool(data.get("sandbox")),
                resumed=event.kind == "run.resumed",
            )
            self._started_at = event.time
            self._enqueue(self._start)
        elif event.kind == "run.finished" and self._start is not None:
            self._enqueue(self._finished(event))

    def _finished(self, event: Event) -> Notice:
        start = self._start
        assert start is not None
        data = event.data
        report = self._report(event.run_id)
        reasons: tuple[str, ...] = ()
        objectives: tuple[ObjectiveResult, ...] = ()
        leftovers: tuple[str, ...] = ()
        duration = event.time - self._started_at if self._started_at is not None else None
        if report is not None:
            reasons = tuple(str(r) for r in report.get("verdict", {}).get("reasons", []))
            objectives = _objectives(report)
            leftovers = tuple(
                f"{r.get('kind')} {r.get('id')}" + (f" ({r['region']})" if r.get("region") else "")
                for r in report.get("cleanup", {}).get("resources", [])
                if not r.get("deleted")
            )
            duration = report.get("run", {}).get("duration_seconds", duration)
        elif data.get("status") != "succeeded":
            reasons = (f"the {start.what} {data.get('status')}",)
        if data.get("cleanup_failed") and not leftovers:
            leftovers = tuple(f"what {key} created" for key in data["cleanup_failed"])
        if data.get("rollback_failed"):
            reasons += ("rollback incomplete: " + ", ".join(map(str, data["rollback_failed"])),)
        kind: NoticeKind = "passed" if data.get("passed") and data.get("exit_code") == 0 else "failed"
        if data.get("cleanup_failed") or leftovers:
            kind = "cleanup-incomplete"
        return Notice(
            kind,
            start.run_id,
            start.plan,
            start.mode,
            start.account,
            start.region,
            start.user,
            start.sandbox,
            start.resumed,
            exit_code=_int(data.get("exit_code")),
            reasons=reasons,
            objectives=objectives,
            leftovers=leftovers,
            report=self._report_path() if report is not None else None,
            duration_seconds=float(duration) if isinstance(duration, (int, float)) else None,
        )

    def _report(self, run_id: str) -> dict[str, Any] | None:
        """This run's report.json, when the drill wrote one (a --report-dir may hold an older run's)."""
        if self.evidence_dir is None:
            return None
        try:
            report: dict[str, Any] = json.loads(
                (self.evidence_dir / "report.json").read_text(encoding="utf-8")
            )
        except (OSError, ValueError):
            return None
        return report if report.get("run", {}).get("id") == run_id else None

    def _report_path(self) -> str | None:
        if self.evidence_dir is None:
            return None
        path = str(self.evidence_dir / "report.md")
        return f"{path} (also in {self.shared_state})" if self.shared_state else path

    def _enqueue(self, notice: Notice) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="drplan-notify", daemon=True)
            self._thread.start()
        self._queue.put(notice)

    def _work(self) -> None:
        while True:
            notice = self._queue.get()
            try:
                if notice is None:
                    return
                for target in self.targets:
                    try:
                        self.send(target, notice)
                    except Exception as exc:  # isolated: a notification never changes the run
                        with self._lock:
                            self._problems.append(
                                f"notification: the {notice.kind} notice to {target.describe()} failed: {self._safe(exc, target)}"
                            )
            finally:
                self._queue.task_done()

    def send(self, target: NotifyTarget, notice: Notice) -> None:
        if isinstance(target, SnsTarget):
            self._sns(target, notice)
        elif isinstance(target, EventBridgeTarget):
            self._eventbridge(target, notice)
        else:
            self._webhook(target, notice)

    def _sns(self, target: SnsTarget, notice: Notice) -> None:
        extra: dict[str, Any] = {}
        if target.topic_arn.endswith(".fifo"):
            extra = {
                "MessageGroupId": notice.plan or "drplan",
                "MessageDeduplicationId": f"{notice.run_id}-{notice.kind}",
            }
        # Subject: ASCII, no line breaks, under 100 characters (SNS refuses anything else).
        subject = notice.title().encode("ascii", "replace").decode("ascii")[:99]
        attributes = {
            key: {"DataType": "String", "StringValue": value}
            for key, value in (
                ("event", notice.kind),
                ("plan", notice.plan),
                ("mode", notice.mode),
                ("run_id", notice.run_id),
            )
            if value
        }
        self.aws.client("sns", region=target.region).publish(
            TopicArn=target.topic_arn,
            Subject=subject,
            Message=notice.text(),
            MessageAttributes=attributes,
            **extra,
        )

    def _eventbridge(self, target: EventBridgeTarget, notice: Notice) -> None:
        answer = self.aws.client("events", region=target.region).put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": DETAIL_TYPES[notice.kind],
                    "Detail": json.dumps(notice.detail(), sort_keys=True),
                    "EventBusName": target.bus,
                }
            ]
        )
        # PutEvents answers 200 even when it refused the entry: the entry says why.
        if answer.get("FailedEntryCount"):
            entry = (answer.get("Entries") or [{}])[0]
            raise RuntimeError(
                f"{entry.get('ErrorCode', 'refused')}: {entry.get('ErrorMessage', '')}".rstrip(": ")
            )

    def _webhook(self, target: WebhookTarget, notice: Notice) -> None:
        body = json.dumps({"text": notice.text()}).encode("utf-8")
        request = urllib.request.Request(
            target.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.send_timeout) as answer:
            if not 200 <= answer.status < 300:
                raise RuntimeError(f"HTTP {answer.status}")

    @staticmethod
    def _safe(exc: BaseException, target: NotifyTarget) -> str:
        """Why a delivery failed, without the webhook's URL (urllib puts it in some messages)."""
        if isinstance(exc, urllib.error.HTTPError):
            text = f"HTTP {exc.code} {exc.reason}"
        elif isinstance(exc, urllib.error.URLError):
            text = f"cannot reach it: {exc.reason}"
        elif getattr(exc, "response", None) is not None:
            text = describe_error(exc)
        else:
            text = f"{type(exc).__name__}: {exc}"
        if isinstance(target, WebhookTarget):
            text = text.replace(target.url, "<webhook URL>")
            path = urlsplit(target.url).path
            if len(path) > 1:  # the secret part of a Slack webhook URL
                text = text.replace(path, "<webhook path>")
        return text

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> list[str]:
        """Wait up to ``timeout`` seconds for the notices queued so far (the "started" one) to be
        tried, then the failures so far: what the evidence can report. A short run would otherwise
        write its evidence before a slow or unreachable target had failed."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.problems()

    def problems(self) -> list[str]:
        """The failures so far (each returned once)."""
        with self._lock:
            taken, self._problems = self._problems, []
        return taken

    def close(self, timeout: float = CLOSE_TIMEOUT) -> list[str]:
        """Wait up to ``timeout`` seconds for the queued notices; every failure not yet returned,
        and a line for what could not be sent in time."""
        if self._thread is not None:
            self._queue.put(None)
            deadline = time.monotonic() + timeout
            self._thread.join(max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                with self._lock:
                    self._problems.append(
                        f"notification: not every notice was sent within {timeout:.0f}s (an endpoint is slow or unreachable)"
                    )
        return self.problems()


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
