"""The web server's log discipline: repeats suppressed and counted, a client's fault one WARNING, our bugs ERRORs."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import LineTooLong

from bot.web.log_limits import ClientFaultFilter, LogRateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(message: str = "connection refused with 503: %s", *args: object, exc: BaseException | None = None,
           level: int = logging.WARNING) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("bot.web.limits", level, __file__, 1, message, args or ("2 open",), exc_info)


def test_repeats_within_the_interval_are_suppressed_and_the_next_line_reports_how_many() -> None:
    clock = Clock()
    limit = LogRateLimit(interval=10, clock=clock)
    assert limit.filter(record())
    passed = []
    for _ in range(500):
        clock.now += 0.01
        passed.append(limit.filter(record("connection refused with 503: %s", "3 open")))
    assert not any(passed), "the same kind, whatever its arguments, is held back"
    assert limit.suppressed() == 500
    clock.now += 10
    later = record()
    assert limit.filter(later)
    assert later.getMessage() == "connection refused with 503: 2 open [500 more like this in the last 15s]"
    assert limit.suppressed() == 0


def test_each_kind_has_its_own_allowance() -> None:
    limit = LogRateLimit(interval=10, clock=Clock())
    assert limit.filter(record("connection refused with 503: %s"))
    assert limit.filter(record("%s %s from %s: body not complete within %gs", "POST", "/x", "1.2.3.4", 15))
    assert limit.filter(record("connection refused with 503: %s", level=logging.ERROR))


def test_a_client_fault_becomes_one_warning_without_a_traceback() -> None:
    try:
        raise LineTooLong(b"a" * 50, "8190")
    except LineTooLong as error:
        fault = record("Error handling request from %s", "203.0.113.9", exc=error, level=logging.ERROR)
    assert ClientFaultFilter().filter(fault)
    assert fault.levelno == logging.WARNING and fault.levelname == "WARNING"
    assert fault.exc_info is None and fault.exc_text is None
    assert fault.getMessage().startswith("client error from 203.0.113.9: ") and "(LineTooLong)" in fault.getMessage()


def test_our_own_bug_keeps_its_error_and_traceback() -> None:
    try:
        raise KeyError("webhooks")
    except KeyError as error:
        bug = record("Error handling request from %s", "203.0.113.9", exc=error, level=logging.ERROR)
    assert ClientFaultFilter().filter(bug)
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
