"""common/cron.py as tables: next fire times for a clock given as an argument, and the errors naming the field."""
from __future__ import annotations

import pytest

from common.cron import CronError, next_fire, parse_cron
from common.timefmt import parse_rfc3339, rfc3339_ms


def _next(expr: str, after: str, anchor: str | None = None) -> str | None:
    at = next_fire(parse_cron(expr), parse_rfc3339(after), parse_rfc3339(anchor) if anchor else 0)
    return None if at is None else rfc3339_ms(at)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # 6 fields (seconds first, as Function Compute timers and the terraform example `30 9 * * * *`)
        ("30 9 * * * *", "2024-01-01T00:00:00Z", "2024-01-01T00:09:30.000Z"),
        ("30 9 * * * *", "2024-01-01T00:09:30Z", "2024-01-01T01:09:30.000Z"),  # strictly after
        ("* * * * * *", "2024-01-01T00:00:00.400Z", "2024-01-01T00:00:01.000Z"),
        ("*/10 * * * * *", "2024-01-01T00:00:25Z", "2024-01-01T00:00:30.000Z"),
        ("0 0 10 1 * ?", "2024-01-01T00:00:00Z", "2024-01-01T10:00:00.000Z"),  # ROS example: `?` day-of-week
        ("0 0 10 1 * ?", "2024-01-01T10:00:00Z", "2024-02-01T10:00:00.000Z"),
        # 5 fields (classic cron: second 0)
        ("*/15 * * * *", "2024-01-01T00:07:00Z", "2024-01-01T00:15:00.000Z"),
        ("0 9 * * 1-5", "2024-01-05T09:00:00Z", "2024-01-08T09:00:00.000Z"),  # Friday -> Monday
        ("0 0 1,15 * *", "2024-01-02T00:00:00Z", "2024-01-15T00:00:00.000Z"),
        ("5-10/5 3 * * *", "2024-01-01T03:06:00Z", "2024-01-01T03:10:00.000Z"),
        ("0 0 * JAN,JUL *", "2024-02-01T00:00:00Z", "2024-07-01T00:00:00.000Z"),
        ("0 0 * * SUN", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00.000Z"),  # 2024-01-07 is a Sunday
        ("0 0 * * 7", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00.000Z"),  # 7 is Sunday too
        ("0 0 13 * FRI", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00.000Z"),  # both day fields: either matches
        ("0 0 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T00:00:00.000Z"),
        ("59 23 31 12 *", "2024-12-31T23:59:00Z", "2025-12-31T23:59:00.000Z"),
        # macros
        ("@hourly", "2024-01-01T00:30:00Z", "2024-01-01T01:00:00.000Z"),
        ("@daily", "2024-01-01T00:30:00Z", "2024-01-02T00:00:00.000Z"),
        ("@weekly", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00.000Z"),
        ("@monthly", "2024-01-31T00:00:00Z", "2024-02-01T00:00:00.000Z"),
        ("@yearly", "2024-06-01T00:00:00Z", "2025-01-01T00:00:00.000Z"),
        # time zones: UTC unless CRON_TZ/TZ says otherwise
        ("CRON_TZ=Asia/Shanghai 0 0 9 * * *", "2024-01-01T00:00:00Z", "2024-01-01T01:00:00.000Z"),
        ("TZ=Asia/Shanghai 0 9 * * *", "2024-01-01T01:00:00Z", "2024-01-02T01:00:00.000Z"),
        # New York: 02:30 does not exist on 2024-03-10 (runs just after the gap, 03:30 EDT)...
        ("CRON_TZ=America/New_York 0 30 2 * * *", "2024-03-10T00:00:00Z", "2024-03-10T07:30:00.000Z"),
        # ...and 01:30 happens twice on 2024-11-03: it fires once, at the first.
        ("CRON_TZ=America/New_York 0 30 1 * * *", "2024-11-03T00:00:00Z", "2024-11-03T05:30:00.000Z"),
        ("CRON_TZ=America/New_York 0 30 1 * * *", "2024-11-03T05:30:00Z", "2024-11-04T06:30:00.000Z"),
    ],
)
def test_next_fire(expr: str, after: str, expected: str) -> None:
    assert _next(expr, after) == expected


@pytest.mark.parametrize(
    ("expr", "after", "anchor", "expected"),
    [
        ("@every 1s", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-01T00:00:01.000Z"),
        ("@every 1s", "2024-01-01T00:00:00.999Z", "2024-01-01T00:00:00Z", "2024-01-01T00:00:01.000Z"),
        ("@every 5m", "2024-01-01T00:12:00Z", "2024-01-01T00:01:00Z", "2024-01-01T00:16:00.000Z"),  # keeps its phase
        ("@every 1h30m", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-01T01:30:00.000Z"),
        ("@every 2h", "2024-01-01T05:00:00Z", "2024-01-01T00:00:00Z", "2024-01-01T06:00:00.000Z"),
        ("@every 10s", "2023-12-31T23:59:00Z", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000Z"),  # before the anchor
    ],
)
def test_every(expr: str, after: str, anchor: str, expected: str) -> None:
    assert _next(expr, after, anchor) == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 25 * * *", "CronExpression field 'hour' value 25 is out of range 0-23"),
        ("60 * * * * *", "CronExpression field 'second' value 60 is out of range 0-59"),
        ("* 60 * * * *", "CronExpression field 'minute' value 60 is out of range 0-59"),
        ("0 0 32 * *", "CronExpression field 'day-of-month' value 32 is out of range 1-31"),
        ("0 0 0 * *", "CronExpression field 'day-of-month' value 0 is out of range 1-31"),
        ("0 0 * 13 *", "CronExpression field 'month' value 13 is out of range 1-12"),
        ("0 0 * * 8", "CronExpression field 'day-of-week' value 8 is out of range 0-7"),
        ("0 0 * FOO *", "CronExpression field 'month' value 'FOO' is not a number or a name such as JAN"),
        ("0 0 * * MON#2", "CronExpression field 'day-of-week' value 'MON#2' is not a number"),
        ("0 0 L * *", "CronExpression field 'day-of-month' value 'L' is not a number"),
        ("*/0 * * * *", "CronExpression field 'minute' step '0' must be a positive number"),
        ("5-1 * * * *", "CronExpression field 'minute' range 5-1 runs backwards"),
        ("1,,2 * * * *", "CronExpression field 'minute' has an empty list item"),
        ("? * * * *", "CronExpression field 'minute' cannot be '?'"),
        ("* * *", "CronExpression must have 6 fields"),
        ("* * * * * * *", "not 7"),
        ("", "CronExpression is empty"),
        ("0 0 31 2 *", "never fires"),
        ("@every", "needs a duration"),
        ("@every 0s", "must be at least 1 second"),
        ("@every 500ms", "the unit 'ms' is not supported"),
        ("@every 5 m", "is not a duration"),
        ("@every 1d", "is not a duration"),
        ("@fortnightly", "is not one of @every <duration>"),
        ("CRON_TZ=Mars/Olympus 0 0 * * *", "time zone 'Mars/Olympus' is not a known IANA time zone"),
    ],
)
def test_invalid_expressions_name_the_field(expr: str, message: str) -> None:
    with pytest.raises(CronError) as info:
        parse_cron(expr)
    assert message in str(info.value)


def test_the_zone_and_interval_are_kept() -> None:
    cron = parse_cron("CRON_TZ=Asia/Shanghai @every 90s")
    assert (cron.zone, cron.every_ms) == ("Asia/Shanghai", 90_000)
    assert parse_cron("0 0 * * *").zone == "UTC"
