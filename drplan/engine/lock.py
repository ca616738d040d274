"""One run per plan and account at a time: a lock with a lease, as Terraform's state backends have.

The lock is a small JSON file created with ``O_CREAT | O_EXCL`` (atomic on local file systems): it
names its holder (user, host, process, run id) so a refused run can say who holds it. The holder
renews a lease while it runs; a lock whose lease has expired, or whose holder process is gone from
this host, is stale and is taken over. ``drplan unlock PLAN`` removes a lock by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drplan.errors import DrplanError

#: A holder renews its lease this often; a lease not renewed for LEASE seconds is stale.
LEASE = 600.0
RENEW_EVERY = 60.0


class Locked(DrplanError):
    """Another run of the same plan (and account) holds the lock."""


@dataclass(frozen=True)
class Holder:
    run_id: str
    user: str
    host: str
    pid: int
    mode: str
    acquired: float
    expires: float

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.acquired))
        return f"{self.mode} run {self.run_id} by {self.user} on {self.host} (pid {self.pid}) since {since}"

    def stale(self, now: float) -> str | None:
        """Why the lock no longer protects a live run, or None when it does."""
        if now > self.expires:
            return "its lease expired (the holder stopped renewing it)"
        if self.host == platform.node() and not _alive(self.pid):
            return f"its process {self.pid} is no longer running on this host"
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_path(state_dir: str | Path, plan: str, account: str | None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", f"{plan}@{account or 'unknown'}")
    return Path(state_dir) / "locks" / f"{safe}.json"


class RunLock:
    """A held lock; :meth:`release` (or the context manager) lets it go."""

    def __init__(self, path: Path, holder: Holder) -> None:
        self.path = path
        self.holder = holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lock-lease", daemon=True)

    @classmethod
    def acquire(cls, path: Path, *, run_id: str, user: str, mode: str, lease: float = LEASE) -> RunLock:
        path.parent.mkdir(parents=True, exist_ok=True)
        now = time.time()
        holder = Holder(run_id, user, platform.node(), os.getpid(), mode, now, now + lease)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                current = read_holder(path)
                why = current.stale(time.time()) if current is not None else "it is unreadable"
                if why is None:
                    assert current is not None
                    raise Locked(
                        f"plan is being run by another drplan: {current.describe()}",
                        hint=f"wait for it to finish; if it is gone, `drplan unlock {path.stem.split('@')[0]}` "
                        f"(the lock expires by itself {int(current.expires - time.time())}s from now)",
                    ) from None
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # stale: take it over (the next O_EXCL decides between racers)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump(holder.__dict__, stream)
            lock = cls(path, holder)
            lock._thread.start()
            return lock
        raise Locked(f"could not take the lock {path}: other runs keep taking it")

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            try:
                current = read_holder(self.path)
                if current is None or current.run_id != self.holder.run_id:
                    return  # taken over or removed by `drplan unlock`: nothing to renew
                renewed = {**self.holder.__dict__, "expires": time.time() + LEASE}
                tmp = self.path.with_suffix(".renew")
                tmp.write_text(json.dumps(renewed), encoding="utf-8")
                os.replace(tmp, self.path)
            except OSError:
                continue  # a full disk must not kill the run; the lease may lapse

    def release(self) -> None:
        self._stop.set()
        current = read_holder(self.path)
        if current is not None and current.run_id == self.holder.run_id:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(path: Path) -> Holder | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return Holder(**data)
    except (OSError, ValueError, TypeError):
        return None
