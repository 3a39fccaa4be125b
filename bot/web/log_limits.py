"""Log lines a stranger can cause: one WARNING per client fault, and at most one line per kind per interval.

Why: every connection of a flood used to write a line (32 MB of "Too many open files" in one 20 s flood), and a
client that sent a 9 KB header or hung up mid-body got an ERROR with a traceback, as if the bot were broken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp.http import HttpProcessingError

#: The logger aiohttp's server writes to (given to it as `logger=`), so the filters below touch only our server.
SERVER_LOG = "bot.web.http"
#: Our own decisions about connections: refused over the cap, cut off for slowness.
LIMITS_LOG = "bot.web.limits"
#: What asyncio's loop logs when accept() fails for want of descriptors (with a traceback, once per try).
ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"


def is_client_fault(error: BaseException | None) -> bool:
    """The client broke HTTP (a line or header too long, a malformed message) or went away mid-request."""
    return isinstance(error, HttpProcessingError | ConnectionError)


class ClientFaultFilter(logging.Filter):
    """Turns aiohttp's "Error handling request" ERROR with a traceback into one WARNING line when the client is at
    fault; our own bugs (anything else) keep their ERROR and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.levelno >= logging.ERROR and is_client_fault(error):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            summary = getattr(error, "message", None) or str(error) or type(error).__name__
            record.msg = "client error from %s: %s (%s)"
            record.args = (peer, summary.splitlines()[0][:200], type(error).__name__)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


@dataclass
class _Kind:
    last: float
    suppressed: int = 0


class LogRateLimit(logging.Filter):
    """At most one record per `interval` seconds for each kind (logger, level, message template); the next one let
    through says how many were suppressed. Attach it to the logger that writes the lines."""

    def __init__(
        self,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        applies_to: Callable[[logging.LogRecord], bool] = lambda record: True,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self.applies_to = applies_to
        self._kinds: dict[tuple[str, int, str], _Kind] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.applies_to(record):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is not None and now - kind.last < self.interval:
                kind.suppressed += 1
                return False
            if kind is not None and kind.suppressed:
                record.msg = f"{record.msg} [{kind.suppressed} more like this in the last {now - kind.last:.0f}s]"
            self._kinds[key] = _Kind(now)
        return True

    def suppressed(self) -> int:
        """Lines held back so far and not yet reported by a later line of their kind."""
        with self._lock:
            return sum(kind.suppressed for kind in self._kinds.values())


def install_web_log_limits(interval: float = 10.0) -> LogRateLimit:
    """Once per process (the log is the process's): the client-fault rewrite and the rate limit on the server's
    loggers, and a rate limit on asyncio's accept-failure line. A second call only sets the interval."""
    server, limits, loop_log = (logging.getLogger(name) for name in (SERVER_LOG, LIMITS_LOG, "asyncio"))
    for existing in server.filters:
        if isinstance(existing, LogRateLimit):
            existing.interval = interval
            return existing
    limiter = LogRateLimit(interval)
    server.addFilter(ClientFaultFilter())
    server.addFilter(limiter)
    limits.addFilter(limiter)
    loop_log.addFilter(
        LogRateLimit(interval, applies_to=lambda record: str(record.msg).startswith(ACCEPT_OUT_OF_RESOURCES))
    )
    return limiter
