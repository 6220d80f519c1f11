"""Alipay's clock: every timestamp it sends or expects is Beijing time (UTC+8) without an offset."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

# China has observed no daylight saving time since 1991, so a fixed offset is exact.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
_FORMAT = "%Y-%m-%d %H:%M:%S"
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)


def format_beijing(moment: datetime) -> str:
    """Format an aware datetime as Alipay's ``yyyy-MM-dd HH:mm:ss`` in Beijing time."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("an aware datetime is required; naive times are ambiguous")
    return moment.astimezone(BEIJING).strftime(_FORMAT)


def parse_beijing(text: str) -> datetime:
    """Parse Alipay's ``yyyy-MM-dd HH:mm:ss`` Beijing time into an aware datetime."""
    if not isinstance(text, str) or not _TIMESTAMP.fullmatch(text):
        raise ValueError("not an Alipay timestamp like 2024-01-31 08:00:00")
    # The pattern pins the shape; fromisoformat checks the ranges (and is 15x faster than
    # strptime, which matters on the notify path).
    moment = datetime.fromisoformat(text).replace(tzinfo=BEIJING)
    if moment.replace(tzinfo=None) - datetime.min < moment.utcoffset():
        # Before 08:00 on 1 January of year 1 the UTC instant is in year 0, which no datetime
        # holds and which PostgreSQL would store as 1 BC.
        raise ValueError("an Alipay timestamp before 0001-01-01 08:00:00 has no UTC instant")
    return moment
