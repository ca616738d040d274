"""Stopping a run: signals, and the two stages of a stop.

``soft`` (the first SIGINT, SIGTERM or SIGHUP, or a failure that makes going on pointless, such as
a journal that can no longer be written): start nothing new, and every running step stops at once:
every wait and poll of the engine is a wait on this event, so a step polling a check with a
15-minute timeout notices within its current AWS call (bounded by botocore's timeouts), not at the
end of the timeout. Undo and drill cleanup still run: CI systems send SIGTERM and kill the job a few
seconds later, so cleanup must start at once, not after the steps finish.

``hard`` (a second signal): also stop waiting for deletions to be verified; what remains is listed
and ``drplan cleanup RUN_ID`` finishes it.

Signal handlers only set these events and note which signal arrived; whoever waits (the main loop)
reports it. A handler that wrote to the event bus could deadlock on a lock the interrupted code
holds, or raise a BrokenPipeError in the middle of unrelated code.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

#: SIGHUP: the terminal or SSH session went away; treated like SIGTERM so the drill cleans up.
SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


@dataclass
class Stop:
    soft: threading.Event = field(default_factory=threading.Event)
    hard: threading.Event = field(default_factory=threading.Event)
    #: Why the run stopped, in order: ("SIGTERM", time), ("journal: ...", time).
    reasons: list[tuple[str, float]] = field(default_factory=list)
    _reported: int = 0

    def request(self, reason: str) -> None:
        """First call: soft stop; any later call: hard stop."""
        self.reasons.append((reason, time.time()))
        if self.soft.is_set():
            self.hard.set()
        else:
            self.soft.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True at once if the run is stopping."""
        return self.soft.wait(max(0.0, seconds))

    def wait_hard(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` (used while undoing: only a second signal cuts it short)."""
        return self.hard.wait(max(0.0, seconds))

    def unreported(self) -> list[tuple[str, str]]:
        """Stop requests not yet reported: (reason, "soft" or "hard")."""
        out = []
        for index in range(self._reported, len(self.reasons)):
            out.append((self.reasons[index][0], "soft" if index == 0 else "hard"))
        self._reported = len(self.reasons)
        return out

    @property
    def reason(self) -> str | None:
        return self.reasons[0][0] if self.reasons else None


@contextmanager
def stop_on_signals(stop: Stop) -> Iterator[None]:
    """While inside: SIGINT, SIGTERM and SIGHUP request a stop instead of raising or killing the
    process. Only the main thread can install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.request(signal.Signals(signum).name)

    previous = {}
    for sig in SIGNALS:
        try:
            previous[sig] = signal.signal(sig, handler)
        except (OSError, ValueError):  # not allowed here (embedded interpreter)
            continue
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
