"""ISO 8601 durations and RFC 3339 timestamps, the subset a recovery plan needs.

Plans say ``PT30M`` or ``P1DT2H``. Years and months are refused on purpose: their length
depends on the calendar, and an RTO must mean the same number of seconds every day. The schema
uses the same pattern (``$defs/duration``), so a value the schema accepts always has the form
parsed here; only its length can still be wrong: every duration in a plan is at most
:data:`MAX_DURATION` (10 years), far beyond any recovery, and far below what ``timedelta`` and
the clock arithmetic of a run can hold.

Timestamps (``restore_time``, ``at``) have the form of the schema's pattern, ``2026-11-20T08:00:00Z``;
:func:`timestamp_problem` says why one that has the form is still not a real moment (month 13,
30 February, hour 25), so ``validate`` refuses what a run could not read.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

DURATION_PATTERN = r"^P(?!$)(?:([0-9]+)W)?(?:([0-9]+)D)?(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?$"
_DURATION = re.compile(DURATION_PATTERN)

#: The longest duration a plan may use, anywhere (objectives, estimates, timeouts, parameters).
MAX_DURATION = timedelta(days=3650)
MAX_DURATION_WORDS = "10 years (P3650D)"
_MAX_SECONDS = int(MAX_DURATION.total_seconds())
#: What the model holds for a duration over the limit (reported by ``validate``, never run).
OVER_LIMIT = MAX_DURATION + timedelta(days=1)


def is_duration(text: str) -> bool:
    return _DURATION.match(text) is not None


def duration_seconds(text: str) -> float:
    """The length of a duration in seconds, for any number of digits: a value over
    :data:`MAX_DURATION` comes back as ``inf`` instead of overflowing. ValueError when ``text`` is
    not a duration."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT30M or P1DT2H")
    weeks, days, hours, minutes, seconds = match.groups()
    whole = (
        int(weeks or 0) * 604800 + int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60
    )
    if whole > _MAX_SECONDS:
        return float("inf")
    return whole + float(seconds or 0)  # float("1" * 400) is inf, not an error


def parse_duration(text: str, *, cap: bool = False) -> timedelta:
    """Parse ``PnWnDTnHnMnS`` into a timedelta; raise ValueError with a readable message.

    A duration over :data:`MAX_DURATION` is an error, or, with ``cap``, :data:`OVER_LIMIT` (the
    plan model holds it so that ``validate`` can report it where it is written).
    """
    total = duration_seconds(text)
    if total > _MAX_SECONDS:
        if cap:
            return OVER_LIMIT
        raise ValueError(f"{text!r} is longer than {MAX_DURATION_WORDS}, the most a plan may say")
    return timedelta(seconds=total)


_UNITS = {
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800,
    "d": 86400, "day": 86400, "days": 86400,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
}  # fmt: skip
_FREE_FORM = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]+)\s*", re.IGNORECASE)
_CLOCK = re.compile(r"^([0-9]{1,3}):([0-5][0-9])(?::([0-5][0-9]))?$")
_CALENDAR = re.compile(r"^P(?:([0-9]+)Y)?(?:([0-9]+)M)?(?:[0-9]+[WD])*(?:T.*)?$", re.IGNORECASE)


def duration_hint(text: str) -> str:
    """What to write instead of ``text``, which is not a duration drplan reads: ``"1h"`` ->
    ``(did you mean `PT1H`?)``; months and years are explained. Empty when there is no good guess."""
    value = text.strip()
    upper = value.upper()
    if upper != value and _DURATION.match(upper):
        return f" (did you mean `{upper}`? write it in capitals)"
    calendar_units = _CALENDAR.match(value)
    if calendar_units and (calendar_units.group(1) or calendar_units.group(2)):
        years, months = calendar_units.group(1), calendar_units.group(2)
        if months and not years and upper == f"P{months}M":
            count = int(months)
            return (
                f": months and years are not allowed, because their length varies (for {count} "
                f"minute{'s' if count != 1 else ''} write `PT{count}M`, for {count * 30} days `P{count * 30}D`)"
            )
        return (
            ": months and years are not allowed, because their length varies; count in days instead (`P365D`)"
        )
    clock = _CLOCK.match(value)
    if clock:
        total = int(clock.group(1)) * 3600 + int(clock.group(2)) * 60 + int(clock.group(3) or 0)
        return f" (did you mean `{format_duration(total)}`?)" if total else ""
    if re.fullmatch(r"[0-9]+", value):
        return (
            f" (did you mean `{format_duration(int(value))}`? a bare number is not a duration)"
            if int(value)
            else ""
        )
    total_seconds = 0.0
    position = 0
    for part in _FREE_FORM.finditer(value):
        if part.start() != position or part.group(2).lower() not in _UNITS:
            return ""
        total_seconds += float(part.group(1)) * _UNITS[part.group(2).lower()]
        position = part.end()
    if position != len(value) or not value or not total_seconds:
        return ""
    return f" (did you mean `{format_duration(total_seconds)}`?)"


# --- timestamps -----------------------------------------------------------------------------------

TIMESTAMP = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(Z|[+-]([0-9]{2}):([0-9]{2}))$"
)


def timestamp_problem(text: str) -> str | None:
    """Why a value of the timestamp form is not a moment a run can use, or None when it is one."""
    match = TIMESTAMP.match(text)
    if not match:
        return "is not an RFC 3339 timestamp such as 2026-11-20T08:00:00Z"
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    offset_hours, offset_minutes = match.group(9), match.group(10)
    if year == 0:
        return "is not a real moment: there is no year 0000"
    if not 1 <= month <= 12:
        return f"is not a real moment: there is no month {match.group(2)} (months are 01 to 12)"
    days = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days:
        name = calendar.month_name[month]
        return f"is not a real moment: {name} {year} has {days} days"
    if hour > 23:
        return f"is not a real moment: there is no hour {match.group(4)} (hours are 00 to 23)"
    if minute > 59:
        return f"is not a real moment: there is no minute {match.group(5)} (minutes are 00 to 59)"
    if second > 59:
        return f"is not a real moment: there is no second {match.group(6)} (seconds are 00 to 59)"
    if offset_hours is not None and (int(offset_hours) > 23 or int(offset_minutes) > 59):
        return f"has no real UTC offset: `{match.group(8)}` (offsets are -23:59 to +23:59)"
    try:
        parse_timestamp(text)
    except OverflowError:
        return "is outside the range of dates a run can compute with"
    except ValueError:  # Python 3.10 reads fractions of a second of 3 or 6 digits only
        return "has a fraction of a second this Python cannot read: write 3 or 6 digits, or none"
    return None


def parse_timestamp(text: str) -> datetime:
    """The moment in UTC, read the way the actions read it (``datetime.fromisoformat``)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


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


def seconds_param(params: Mapping[str, Any], name: str, default: float) -> float:
    """A step parameter that is a duration (``interval``, ``request_timeout``...), in seconds;
    ``default`` when it is not given."""
    value = params.get(name)
    return parse_duration(value).total_seconds() if isinstance(value, str) else default


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
