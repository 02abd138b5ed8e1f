"""Schedule expressions: parse a CronExpression and find its next fire time (pure; the clock is an argument).

Accepted (docs/compatibility.md, Schedules):
  - 6 fields `second minute hour day-of-month month day-of-week` (Function Compute's timer form),
  - 5 fields `minute hour day-of-month month day-of-week` (classic cron; fires at second 0),
  - `@every <duration>` with whole seconds, Go style (`@every 1s`, `@every 5m`, `@every 1h30m`),
  - `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`,
  - an optional `CRON_TZ=<IANA zone> ` (or `TZ=<zone> `) prefix; without it the fields are read in UTC.
Fields take `*`, `?` (day fields), numbers, `a-b` ranges, `,` lists and `/n` steps; months and days
of the week also take names (JAN-DEC, SUN-SAT); day-of-week 0 and 7 are both Sunday. When both day
fields are restricted, a day matching either fires (classic cron).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
RANGES = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "day-of-month": (1, 31), "month": (1, 12), "day-of-week": (0, 7)}
MONTHS = {m: i + 1 for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}
WEEKDAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
MACROS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
SEARCH_YEARS = 8  # a day-of-month/month pair that matches nothing within this (Feb 30) never fires
_DURATION_PART = re.compile(r"(\d+)(h|ms|m|s|us|µs|ns)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000}


class CronError(ValueError):
    """A CronExpression that cannot be used; the message names the field and why."""


@dataclass(frozen=True)
class Cron:
    """A parsed schedule: either a fixed interval (`every_ms`) or cron fields matched in `zone`."""

    text: str
    zone: str = "UTC"
    every_ms: int | None = None
    seconds: frozenset[int] = frozenset()
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()  # 0 = Sunday .. 6 = Saturday
    any_day: bool = True  # day-of-month is `*` or `?`
    any_weekday: bool = True  # day-of-week is `*` or `?`


def parse_cron(text: str) -> Cron:
    """Parse a CronExpression; CronError names the field and the problem."""
    raw = text.strip()
    zone = "UTC"
    match = re.match(r"^(CRON_TZ|TZ)=(\S+)\s+(.*)$", raw, re.DOTALL)
    if match:
        zone = match.group(2)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CronError(f"CronExpression time zone '{zone[:64]}' is not a known IANA time zone (e.g. Asia/Shanghai).") from None
        raw = match.group(3).strip()
    if not raw:
        raise CronError("CronExpression is empty.")
    if raw.startswith("@"):
        word, _, rest = raw.partition(" ")
        if word == "@every":
            return Cron(text=text, zone=zone, every_ms=parse_every(rest.strip()))
        if word.lower() in MACROS and not rest.strip():
            raw = MACROS[word.lower()]
        else:
            known = ", ".join(("@every <duration>", *MACROS))
            raise CronError(f"CronExpression '{raw[:64]}' is not one of {known}.")
    parts = raw.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    elif len(parts) != 6:
        raise CronError(
            f"CronExpression must have 6 fields (second minute hour day-of-month month day-of-week) or 5 (without seconds), not {len(parts)}."
        )
    values = {name: _field(name, part) for name, part in zip(FIELDS, parts, strict=True)}
    weekdays = frozenset(d % 7 for d in values["day-of-week"])
    cron = Cron(
        text=text,
        zone=zone,
        seconds=values["second"],
        minutes=values["minute"],
        hours=values["hour"],
        days=values["day-of-month"],
        months=values["month"],
        weekdays=weekdays,
        any_day=parts[3] in ("*", "?"),
        any_weekday=parts[5] in ("*", "?"),
    )
    if not _some_day_exists(cron):
        raise CronError(f"CronExpression '{raw[:64]}' never fires: no month has such a day-of-month.")
    return cron


def parse_every(text: str) -> int:
    """The interval of `@every <duration>` in milliseconds: whole seconds, at least one."""
    if not text:
        raise CronError("CronExpression '@every' needs a duration such as 1s, 5m or 1h30m.")
    pos, total = 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        unit = match.group(2)
        if unit not in _UNIT_MS:
            raise CronError(f"CronExpression '@every {text[:32]}': the unit '{unit}' is not supported; use s, m or h (whole seconds).")
        total += int(match.group(1)) * _UNIT_MS[unit]
        pos = match.end()
    if pos != len(text):
        raise CronError(f"CronExpression '@every {text[:32]}' is not a duration such as 1s, 5m or 1h30m.")
    if total < 1000:
        raise CronError(f"CronExpression '@every {text[:32]}' must be at least 1 second.")
    return total


def _field(name: str, text: str) -> frozenset[int]:
    lo, hi = RANGES[name]
    names = MONTHS if name == "month" else WEEKDAYS if name == "day-of-week" else {}
    out: set[int] = set()
    for item in text.split(","):
        if item == "":
            raise CronError(f"CronExpression field '{name}' has an empty list item in '{text[:32]}'.")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"CronExpression field '{name}' step '{step_text[:16]}' must be a positive number.")
            step = int(step_text)
        if base in ("*", "?"):
            if base == "?" and name not in ("day-of-month", "day-of-week"):
                raise CronError(f"CronExpression field '{name}' cannot be '?' (only the day fields can).")
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(name, a, names, lo, hi), _value(name, b, names, lo, hi)
            if start > end:
                raise CronError(f"CronExpression field '{name}' range {base} runs backwards.")
        else:
            start = _value(name, base, names, lo, hi)
            end = hi if slash else start  # `a/n`: from a to the end of the range, every n
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _value(name: str, text: str, names: dict[str, int], lo: int, hi: int) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        extra = " or a name such as JAN" if name == "month" else " or a name such as MON" if name == "day-of-week" else ""
        raise CronError(f"CronExpression field '{name}' value '{text[:16]}' is not a number{extra}.")
    value = int(text)
    if not lo <= value <= hi:
        raise CronError(f"CronExpression field '{name}' value {value} is out of range {lo}-{hi}.")
    return value


_MONTH_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


def _some_day_exists(cron: Cron) -> bool:
    if not cron.any_weekday:
        return True  # with a restricted day-of-week, some day always matches (either/or, or weekday alone)
    return any(d <= _MONTH_DAYS[m] for m in cron.months for d in cron.days)


def _day_matches(cron: Cron, day: datetime) -> bool:
    weekday = (day.weekday() + 1) % 7  # Python: Monday 0; cron: Sunday 0
    if cron.any_day and cron.any_weekday:
        return True
    if cron.any_weekday:
        return day.day in cron.days
    if cron.any_day:
        return weekday in cron.weekdays
    return day.day in cron.days or weekday in cron.weekdays


def next_fire(cron: Cron, after_ms: int, anchor_ms: int = 0) -> int | None:
    """The first fire time strictly after `after_ms` (epoch ms), or None if there is none within SEARCH_YEARS.

    `@every d` fires at anchor_ms + k*d; cron fields fire on whole seconds of the wall clock in `cron.zone`.
    """
    if cron.every_ms is not None:
        if after_ms < anchor_ms:
            return anchor_ms
        return anchor_ms + ((after_ms - anchor_ms) // cron.every_ms + 1) * cron.every_ms
    zone = ZoneInfo(cron.zone)
    after = datetime.fromtimestamp(after_ms // 1000, tz=UTC).astimezone(zone)
    wall = after.replace(tzinfo=None) + timedelta(seconds=1)  # whole seconds strictly after `after`
    limit = wall + timedelta(days=366 * SEARCH_YEARS)
    while wall < limit:
        if wall.month not in cron.months:
            year, month = (wall.year + 1, 1) if wall.month == 12 else (wall.year, wall.month + 1)
            wall = datetime(year, month, 1)
            continue
        if not _day_matches(cron, wall):
            wall = datetime(wall.year, wall.month, wall.day) + timedelta(days=1)
            continue
        if wall.hour not in cron.hours:
            wall = datetime(wall.year, wall.month, wall.day, wall.hour) + timedelta(hours=1)
            continue
        if wall.minute not in cron.minutes:
            wall = datetime(wall.year, wall.month, wall.day, wall.hour, wall.minute) + timedelta(minutes=1)
            continue
        if wall.second not in cron.seconds:
            wall += timedelta(seconds=1)
            continue
        # A wall time may occur twice (clocks turned back) or not at all (turned forward: then it
        # reads as the same offset as before the change, i.e. just after the gap, as cron runs it).
        for fold in (0, 1):
            at = int(wall.replace(tzinfo=zone, fold=fold).timestamp()) * 1000
            if at > after_ms:
                return at
        wall += timedelta(seconds=1)
    return None
