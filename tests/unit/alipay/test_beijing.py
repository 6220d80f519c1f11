from datetime import datetime, timezone

import pytest

from app.adapters.alipay.beijing import format_beijing, parse_beijing


def test_parses_alipays_beijing_time_into_an_aware_datetime():
    parsed = parse_beijing("2026-11-26 08:04:59")
    assert parsed.astimezone(timezone.utc) == datetime(2026, 11, 26, 0, 4, 59, tzinfo=timezone.utc)
    assert format_beijing(parsed) == "2026-11-26 08:04:59"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T08:04:59",  # ISO 8601 with T: not Alipay's shape
        "2026-11-26 08:04:5",
        "2026-11-26 08:04:59.5",
        "2026-11-26 08:04:59+08:00",
        "２026-11-26 08:04:59",  # a full-width digit
        "2026-13-26 08:04:59",
        "2026-02-30 08:04:59",
        "2026-11-26 24:00:00",
        " 2026-11-26 08:04:59",
        "",
        None,
    ],
)
def test_refuses_anything_else(text):
    with pytest.raises(ValueError):
        parse_beijing(text)


@pytest.mark.parametrize("text", ["0001-01-01 00:00:00", "0001-01-01 07:59:59"])
def test_refuses_a_beijing_time_whose_utc_instant_is_before_year_one(text):
    # Stored in UTC, such an instant is year 0: PostgreSQL keeps it as 1 BC and cannot hand it
    # back; SQLite's driver cannot take it at all.
    with pytest.raises(ValueError):
        parse_beijing(text)


def test_the_earliest_beijing_time_with_a_utc_instant_is_read():
    assert parse_beijing("0001-01-01 08:00:00").astimezone(timezone.utc) == datetime(1, 1, 1, tzinfo=timezone.utc)
