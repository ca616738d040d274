"""Shared state in S3 (``--state s3://bucket/prefix``, or ``run.state`` in the plan).

A drill scheduled on an ephemeral CI runner must be resumable, cleanable and auditable from any
other machine, and two runners must never run one plan at once. So with S3 state:

- the **lock** of a plan and account is an S3 object created with a conditional write
  (``If-None-Match: *``: only one creator wins), renewed as a lease with ``If-Match`` on its ETag,
  naming its holder; a lease that lapsed is taken over, as Terraform's S3 backend does;
- the **journal** is mirrored as it is written, in segments that are never overwritten
  (``runs/<id>/journal/<first>-<last>.jsonl``, each created with ``If-None-Match``), so two writers
  of one run cannot silently interleave, and a runner killed mid-run loses at most the last seconds;
- the **evidence** (``runs/<id>/report/``) is uploaded when written.

Everything else works on a local copy (``.drplan/s3/<bucket>/<prefix>``): commands pull what they
need before they start (:meth:`S3State.pull_run`, :meth:`S3State.pull_all`) and read it with the
same code as local state.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from drplan.aws import AwsAccess, describe_error, error_code
from drplan.engine.events import Event
from drplan.engine.journal import JOURNAL, encode, last_seq, run_dir
from drplan.engine.lock import LEASE, RENEW_EVERY, Holder, Locked
from drplan.errors import UsageError

STATE_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$")
_SEGMENT = re.compile(r"^(\d{10})-(\d{10})\.jsonl$")


def parse_state_url(url: str) -> tuple[str, str]:
    match = STATE_URL.match(url)
    if match is None:
        raise UsageError(f"{url!r} is not an S3 state location such as s3://my-bucket/drplan")
    return match[1], (match[2] or "").strip("/")


class S3State:
    def __init__(self, url: str, aws: AwsAccess, *, cache_root: str | Path = ".drplan/s3") -> None:
        self.url = url
        self.bucket, self.prefix = parse_state_url(url)
        self.local = Path(cache_root) / self.bucket / (self.prefix or "_")
        self._aws = aws

    @property
    def s3(self) -> Any:
        return self._aws.client("s3")

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    # --- pulling a copy ---------------------------------------------------------------------------

    def pull_run(self, run_id: str) -> Path:
        """Download a run's journal segments (joined in order) and evidence into the local copy."""
        directory = run_dir(self.local, run_id)
        directory.mkdir(parents=True, exist_ok=True)
        segments = sorted(
            (obj["Key"] for obj in self._list(self.key("runs", run_id, "journal") + "/")),
            key=lambda k: k.rsplit("/", 1)[-1],
        )
        if not segments:
            raise UsageError(f"no journal for run {run_id!r} in {self.url}")
        data = b"".join(self._get(key) for key in segments)
        (directory / JOURNAL).write_bytes(data)
        for obj in self._list(self.key("runs", run_id, "report") + "/"):
            target = directory / "report" / obj["Key"].rsplit("/", 1)[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self._get(obj["Key"]))
        return directory

    def pull_all(self) -> Path:
        """Download every run (for ``drplan runs``): the local copy then lists them."""
        for run_id in self.run_ids():
            self.pull_run(run_id)
        return self.local

    def run_ids(self) -> list[str]:
        ids = set()
        for obj in self._list(self.key("runs") + "/"):
            rest = obj["Key"][len(self.key("runs")) + 1 :]
            if "/journal/" in rest:
                ids.add(rest.split("/", 1)[0])
        return sorted(ids)

    # --- pushing ------------------------------------------------------------------------------------

    def mirror(self, run_id: str) -> JournalMirror:
        return JournalMirror(self, run_id)

    def push_report(self, run_id: str, directory: Path) -> None:
        for path in sorted(directory.iterdir()):
            if path.is_file():
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=self.key("runs", run_id, "report", path.name),
                    Body=path.read_bytes(),
                )

    def push_journal(self, run_id: str) -> str | None:
        """Copy the lines of the local journal that S3 does not have yet (after a cleanup or resume
        appended to it); the problem, if it could not."""
        local = run_dir(self.local, run_id) / JOURNAL
        remote_last = 0
        for obj in self._list(self.key("runs", run_id, "journal") + "/"):
            match = _SEGMENT.match(obj["Key"].rsplit("/", 1)[-1])
            if match:
                remote_last = max(remote_last, int(match[2]))
        lines = []
        for line in local.read_text(encoding="utf-8").splitlines():
            try:
                seq = int(json.loads(line).get("seq", 0))
            except (ValueError, AttributeError):
                continue
            if seq > remote_last:
                lines.append((seq, line))
        try:
            self.push_lines(run_id, lines)
        except Exception as exc:
            return f"cannot copy the journal to {self.url}: {describe_error(exc)}"
        return None

    def push_lines(self, run_id: str, lines: list[tuple[int, str]]) -> None:
        """One journal segment; never overwrites one (a second writer of the run fails loudly)."""
        if not lines:
            return
        first, last = lines[0][0], lines[-1][0]
        key = self.key("runs", run_id, "journal", f"{first:010d}-{last:010d}.jsonl")
        body = "".join(line + "\n" for _, line in lines).encode("utf-8")
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")

    # --- the lock -------------------------------------------------------------------------------------

    def lock(self, plan: str, account: str, *, run_id: str, user: str, mode: str) -> S3Lock:
        safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", f"{plan}@{account}")
        return S3Lock.acquire(self, self.key("locks", f"{safe}.json"), run_id=run_id, user=user, mode=mode)

    def unlock(self, plan: str) -> list[Holder | None]:
        """Remove the locks of ``plan`` (any account); the holders they named."""
        removed: list[Holder | None] = []
        for obj in self._list(self.key("locks") + "/"):
            name = obj["Key"].rsplit("/", 1)[-1].removesuffix(".json")
            if name.rsplit("@", 1)[0] != re.sub(r"[^A-Za-z0-9_.-]", "_", plan):
                continue
            try:
                holder: Holder | None = Holder(**json.loads(self._get(obj["Key"])))
            except (ValueError, TypeError):
                holder = None
            self.s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
            removed.append(holder)
        return removed

    def _list(self, prefix: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(page.get("Contents", []))
        return found

    def _get(self, key: str) -> bytes:
        data: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data


class S3Lock:
    """The S3 lock of a plan and account, held with a renewed lease."""

    def __init__(self, state: S3State, key: str, holder: Holder, etag: str) -> None:
        self.state, self.key, self.holder, self.etag = state, key, holder, etag
        self.lost: str | None = None  # set when someone else took the lock (the lease lapsed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="s3-lock-lease", daemon=True)

    @classmethod
    def acquire(cls, state: S3State, key: str, *, run_id: str, user: str, mode: str) -> S3Lock:
        s3 = state.s3
        for _ in range(3):
            now = time.time()
            holder = Holder(run_id, user, platform.node(), os.getpid(), mode, now, now + LEASE)
            try:
                put = s3.put_object(
                    Bucket=state.bucket, Key=key, Body=json.dumps(asdict(holder)).encode(), IfNoneMatch="*"
                )
            except Exception as exc:
                if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise UsageError(
                        f"cannot take the lock s3://{state.bucket}/{key}: {describe_error(exc)}"
                    ) from exc
                current = s3.get_object(Bucket=state.bucket, Key=key)
                try:
                    other = Holder(**json.loads(current["Body"].read()))
                except (ValueError, TypeError):
                    other = None
                if other is not None and time.time() <= other.expires:
                    raise Locked(
                        f"plan is being run by another drplan: {other.describe()} (lock s3://{state.bucket}/{key})",
                        hint=f"wait for it; its lease expires {int(other.expires - time.time())}s from now unless "
                        "renewed; `drplan unlock PLAN --state ...` removes it",
                    ) from exc
                # Stale: take it over, unless someone renewed or took it meanwhile (then If-Match fails).
                with contextlib.suppress(Exception):
                    s3.delete_object(Bucket=state.bucket, Key=key, IfMatch=current["ETag"])
                continue
            lock = cls(state, key, holder, put["ETag"])
            lock._thread.start()
            return lock
        raise Locked(f"could not take the lock s3://{state.bucket}/{key}: other runs keep taking it")

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            renewed = {**asdict(self.holder), "expires": time.time() + LEASE}
            try:
                put = self.state.s3.put_object(
                    Bucket=self.state.bucket,
                    Key=self.key,
                    Body=json.dumps(renewed).encode(),
                    IfMatch=self.etag,
                )
                self.etag = put["ETag"]
            except Exception as exc:
                if error_code(exc) == "PreconditionFailed":
                    self.lost = "another run took the lock after this run's lease lapsed"
                    return
                continue  # S3 unreachable for a moment: try again at the next renewal

    def release(self) -> None:
        self._stop.set()
        if self.lost is None:
            with contextlib.suppress(Exception):  # if S3 cannot be reached, the lease lapses by itself
                self.state.s3.delete_object(Bucket=self.state.bucket, Key=self.key, IfMatch=self.etag)

    def __enter__(self) -> S3Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class JournalMirror:
    """An event subscriber that copies the journal to S3 in segments, in the background (a slow S3
    never slows the run), and flushes what is left when the run closes it."""

    name = "S3 journal"

    def __init__(self, state: S3State, run_id: str, *, every: float = 2.0) -> None:
        self.state, self.run_id, self.every = state, run_id, every
        self._pending: list[tuple[int, str]] = []
        self._seq = last_seq(run_dir(state.local, run_id) / JOURNAL)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self.problem: str | None = None
        self._thread = threading.Thread(target=self._loop, name="s3-journal", daemon=True)
        self._thread.start()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._seq += 1
            self._pending.append((self._seq, encode(event, self._seq)))

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.every)
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self.state.push_lines(self.run_id, batch)
            self.problem = None
        except Exception as exc:
            with self._lock:
                self._pending = batch + self._pending  # try again with the next batch
            self.problem = f"cannot copy the journal to {self.state.url}: {describe_error(exc)}"

    def close(self) -> str | None:
        """Flush what is left; the problem, if the copy in S3 is incomplete."""
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self._flush()
        return self.problem
