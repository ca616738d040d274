"""ISO 8601 durations, the subset a recovery plan needs.

Plans say ``PT30M`` or ``P1DT2H``. Years and months are refused on purpose: their length
depends on the calendar, and an RTO must mean the same number of seconds every day. The schema
uses the same pattern (``$defs/duration``), so a value the schema accepts always parses here.
"""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_PATTERN = r"^P(?!$)(?:([0-9]+)W)?(?:([0-9]+)D)?(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?$"
_DURATION = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> timedelta:
    """Parse ``PnWnDTnHnMnS`` into a timedelta; raise ValueError with a readable message."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT30M or P1DT2H")
    weeks, days, hours, minutes, seconds = match.groups()
    return timedelta(
        weeks=int(weeks or 0),
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=float(seconds or 0),
    )


def format_duration(value: timedelta | float) -> str:
    """The shortest ISO 8601 form of a duration: 5400 s -> ``PT1H30M``."""
    total = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if total <= 0:
        return "PT0S"
    whole = int(total)
    frac = round(total - whole, 3)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or frac:
        time += f"{seconds + frac:g}S"
    if not days and not time:
        return "PT0S"
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


def humanize(value: timedelta | float) -> str:
    """A duration for people: ``1h 30m``, ``45s``, ``2d 3h``."""
    total = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if total < 60:
        return f"{total:.1f}s" if 0 < total < 10 else f"{total:.0f}s"
    whole = round(total)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if seconds and not days and not hours:
        parts.append(f"{seconds}s")
    return " ".join(parts)
