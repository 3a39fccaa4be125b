"""Readiness: whether this process is doing its job, checked when /readyz is asked.

Three checks, each named in the answer: the store answers a query (within `store_timeout`), the Discord gateway is
connected (asked of the Discord adapter, handed in), and the refresh loop is alive: the last refresh (successful
or not) finished no longer ago than twice the refresh interval. A bot that has not finished its first refresh is
ready during a start-up grace of one interval (a big campaign's first refresh waits for Discord's member lookups,
which can take minutes, and the webhooks and link pages work meanwhile); after that it needs a finished refresh.
Whether Patreon answered that refresh is `/patreon-admin check`'s and the `last_refresh_ok` metric's business:
restarting or unrouting the bot fixes nothing while Patreon is down.

The answer names checks and durations only: no error text (which could hold a path or a URL), no id, no secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

log = logging.getLogger(__name__)

OK = "ok"


@dataclass(frozen=True)
class ReadinessReport:
    #: check name → "ok" or why it fails
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(value == OK for value in self.checks.values())

    def body(self) -> dict[str, object]:
        failing = sorted(name for name, value in self.checks.items() if value != OK)
        return {"status": "ready" if self.ready else "not ready", "failing": failing, "checks": self.checks}


class Readiness:
    def __init__(
        self,
        *,
        store_ping: Callable[[], Awaitable[object]],
        gateway_connected: Callable[[], bool] | None,
        last_refresh_finished: Callable[[], datetime | None],
        refresh_interval: timedelta,
        clock: Callable[[], datetime],
        store_timeout: float = 2.0,
    ) -> None:
        """`gateway_connected` None: this process has no Discord connection to check (the sync harness)."""
        self._store_ping = store_ping
        self._gateway_connected = gateway_connected
        self._last_refresh_finished = last_refresh_finished
        self.refresh_interval = refresh_interval
        self._clock = clock
        self.store_timeout = store_timeout
        self.started_at = clock()
        self._failing: tuple[str, ...] = ()

    async def check(self) -> ReadinessReport:
        checks = {"store": await self._store(), "gateway": self._gateway(), "refresh": self._refresh()}
        report = ReadinessReport(checks)
        failing = tuple(name for name, value in checks.items() if value != OK)
        if failing != self._failing:  # one line per change, not per probe
            self._failing = failing
            if failing:
                log.warning("not ready: %s", "; ".join(f"{name}: {checks[name]}" for name in failing))
            else:
                log.info("ready")
        return report

    async def _store(self) -> str:
        try:
            await asyncio.wait_for(self._store_ping(), timeout=self.store_timeout)
        except TimeoutError:
            return f"the database did not answer within {self.store_timeout:g} s"
        except Exception as error:  # a closed or broken database: the type says enough, the message may hold a path
            return f"the database did not answer ({type(error).__name__})"
        return OK

    def _gateway(self) -> str:
        if self._gateway_connected is None or self._gateway_connected():
            return OK
        return "not connected to Discord's gateway"

    def _refresh(self) -> str:
        now, limit = self._clock(), 2 * self.refresh_interval
        finished = self._last_refresh_finished()
        if finished is None:
            waited = now - self.started_at
            if waited <= self.refresh_interval:
                return OK
            return f"no refresh has finished in the {_minutes(waited)} since start-up (grace: one interval)"
        age = now - finished
        if age <= limit:
            return OK
        return f"the last refresh finished {_minutes(age)} ago, more than twice the interval ({_minutes(limit)})"


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.1f} min"
