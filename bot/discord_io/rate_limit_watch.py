"""Counting the 429s Discord still sends despite the pacing (bot/sync/role_pacing.py), for `check` and the log.

discord.py retries a 429 by itself and says so only in its log ("We are being rate limited. ... responded with
429", "Global rate limit has been hit"), so the count comes from those records: a logging filter on discord.py's
HTTP logger, the public way to see them without touching its private bucket state. The record itself passes on.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

#: discord.py's logger for REST calls (discord/http.py).
DISCORD_HTTP_LOGGER = "discord.http"


class RateLimitWatch(logging.Filter):
    """Counts discord.py's "rate limited" records; the first one is also reported once at WARNING by us."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.role_calls = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if "responded with 429" in message or "Global rate limit has been hit" in message:
            self.count += 1
            route = " ".join(str(arg) for arg in (record.args or ())[:2]) if isinstance(record.args, tuple) else ""
            if "/roles/" in route:
                self.role_calls += 1
            if self.count == 1:
                log.warning(
                    "Discord rate-limited a call despite the pacing (discord.py retries it); `/patreon-admin check` "
                    "counts them. If this repeats, Discord's buckets are smaller than ROLE_CALLS_PER_GUILD per "
                    "ROLE_WINDOW_SECONDS"
                )
        return True

    @classmethod
    def attach(cls) -> RateLimitWatch:
        watch = cls()
        logging.getLogger(DISCORD_HTTP_LOGGER).addFilter(watch)
        return watch

    def detach(self) -> None:
        logging.getLogger(DISCORD_HTTP_LOGGER).removeFilter(self)
