"""The log format: the standard line, then the record's ``extra=`` context as key=value."""
import logging
import time

from app.logs import ContextFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def record(created: float, **extra) -> logging.LogRecord:
    entry = logging.LogRecord("app.services.topups", logging.INFO, __file__, 1, "notify handled", (), None)
    entry.created, entry.msecs = created, (created - int(created)) * 1000
    entry.__dict__.update(extra)
    return entry


def test_lines_are_the_standard_line_with_the_context_appended_sorted():
    entry = record(time.time(), outcome="credited", out_trade_no="T1", notify_id=None)
    standard = logging.Formatter(FORMAT).format(record(entry.created))
    assert ContextFormatter(FORMAT).format(entry) == standard + " notify_id=None out_trade_no='T1' outcome='credited'"


def test_a_record_without_context_is_the_standard_line():
    entry = record(time.time())
    assert ContextFormatter(FORMAT).format(entry) == logging.Formatter(FORMAT).format(record(entry.created))


def test_asctime_is_right_across_seconds_and_milliseconds():
    formatter, standard = ContextFormatter(FORMAT), logging.Formatter(FORMAT)
    start = 1_795_000_000.0
    # Within one second, into the next one and back: the cached date part must follow.
    for created in (start + 0.001, start + 0.999, start + 1.0, start + 1.5, start + 0.25, start + 86_400.123):
        assert formatter.formatTime(record(created)) == standard.formatTime(record(created))
    assert formatter.formatTime(record(start), "%H") == standard.formatTime(record(start), "%H")
