"""Pacing every role call under Discord's buckets, so the bot never earns a 429 instead of recovering from one.

Why: Discord allows about 10 member-role edits (`PUT`/`DELETE /guilds/{g}/members/{u}/roles/{r}`, most likely one
shared bucket) per 10 s per server, in a fixed window (discord/discord-api-docs issue 7680), and 50 requests/s per
bot. discord.py learns a bucket only from the answers, so a drain that fans out at once overshoots; and it retries
a 429 itself, but every 429 counts toward Discord's invalid-request ban.

So each server gets `limit` call slots. A slot is taken before the call and freed `window + margin` seconds after
the call *ended*: Discord counted the call somewhere between the two, so any `limit + 1` calls that reach Discord
are more than a window apart, whatever the window's phase (fixed or sliding) and the network's delay. A server's
first call after a quiet spell goes alone, so discord.py sees the bucket's headers before more follow. Waiting
calls are served by priority (lowest first: an interactive link or admin command, then webhook jobs, which the
queue dates a day back, then refresh jobs in order), so a patron's change is never behind more than one window of
refresh calls in the same server. After its server's slot, every call also takes a token of the one global
bucket that keeps all servers together under Discord's 50/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

#: Role calls per second across all servers: under Discord's global 50/s, with room for commands and the log.
ROLE_CALLS_PER_SECOND = 40.0
#: Role calls that may go at once after a quiet spell. With the rate this makes at most 45 in any second, so the
#: other calls on the bot token (log lines, DMs, Linked Roles metadata, commands' follow-ups) keep 5 of the 50.
ROLE_CALLS_BURST = 5.0
#: Discord's member-role bucket: 10 calls per 10 s per server (issue 7680; the 10 s is what bots observe).
ROLE_CALLS_PER_GUILD = 10
ROLE_WINDOW_SECONDS = 10.0


def default_margin(window_seconds: float) -> float:
    """The slack added to each slot's window: 1% of it, between 5 ms and 0.1 s. A slot is already freed only after
    its call's answer, so this covers just clock steps and rounding; every bit of it costs bucket use."""
    return min(0.1, max(0.005, window_seconds * 0.01))


def describe_duration(seconds: float) -> str:
    """"about 17 min" for an estimate: whole minutes (hours past two), never falsely precise."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"about {minutes} min"
    return f"about {minutes / 60:.1f} hours"


class TokenBucket:
    """At most `capacity` requests at once and `rate` per second after that (so ≤ capacity + rate in any second)."""

    def __init__(
        self,
        rate: float = ROLE_CALLS_PER_SECOND,
        capacity: float = ROLE_CALLS_BURST,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._monotonic = monotonic
        self._sleep = sleep
        self._updated = monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1 - 1e-9:  # float rounding must not leave a waiter spinning
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.rate)


@dataclass
class _GuildSlots:
    """One server's slots: calls running, when recent calls ended, and who waits (a heap by priority)."""

    running: int = 0
    ended: deque[float] = field(default_factory=deque)
    waiting: list[tuple[float, int, asyncio.Future[None]]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    #: Calls made since start (figures for `check` and the benches).
    calls: int = 0


class RoleCallPacer:
    """`async with pacer.call(guild_id, priority):` around each single role call (see the module docstring)."""

    def __init__(
        self,
        *,
        per_guild: int = ROLE_CALLS_PER_GUILD,
        window_seconds: float = ROLE_WINDOW_SECONDS,
        margin_seconds: float | None = None,
        global_bucket: TokenBucket | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_guild < 1 or window_seconds <= 0:
            raise ValueError("a server needs at least one call per window of positive length")
        self.per_guild = per_guild
        self.window_seconds = window_seconds
        self.margin_seconds = default_margin(window_seconds) if margin_seconds is None else margin_seconds
        self.global_bucket = global_bucket if global_bucket is not None else TokenBucket()
        self._monotonic = monotonic
        self._guilds: dict[int, _GuildSlots] = {}
        self._order = itertools.count()

    @property
    def calls_per_second(self) -> float:
        """The steady rate one server gets (what `check` and the sync estimate quote)."""
        return self.per_guild / (self.window_seconds + self.margin_seconds)

    def estimate_seconds(self, calls: int) -> float:
        """How long `calls` role calls in one server take at the steady rate (the first window's burst aside)."""
        return max(0.0, calls - self.per_guild) / self.calls_per_second if calls > 0 else 0.0

    def waiting(self, guild_id: int) -> int:
        slots = self._guilds.get(guild_id)
        return sum(1 for *_rest, future in slots.waiting if not future.done()) if slots else 0

    @contextlib.asynccontextmanager
    async def call(self, guild_id: int, priority: float = 0.0) -> AsyncIterator[None]:
        """Hold one of the server's slots (and a global token) for the duration of one Discord call."""
        slots = self._guilds.setdefault(guild_id, _GuildSlots())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(slots.waiting, (priority, next(self._order), future))
        self._grant(guild_id, slots)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted as we were cancelled: give the slot back
                slots.running -= 1
                self._grant(guild_id, slots)
            raise
        try:
            await self.global_bucket.acquire()
            slots.calls += 1
            yield
        finally:
            slots.running -= 1
            slots.ended.append(self._monotonic())
            self._grant(guild_id, slots)

    def _grant(self, guild_id: int, slots: _GuildSlots) -> None:
        """Wake the best waiters there are free slots for; otherwise wake up when the next slot frees."""
        now = self._monotonic()
        hold = self.window_seconds + self.margin_seconds
        while slots.ended and slots.ended[0] + hold <= now:
            slots.ended.popleft()
        while slots.waiting and slots.waiting[0][2].done():  # a waiter that was cancelled
            heapq.heappop(slots.waiting)
        while slots.waiting and slots.running + len(slots.ended) < self.per_guild:
            if slots.running and not slots.ended:
                return  # the first call after a quiet spell goes alone: its answer teaches discord.py the bucket
            _priority, _order, future = heapq.heappop(slots.waiting)
            if future.done():
                continue
            slots.running += 1
            future.set_result(None)
        if slots.waiting and slots.ended and slots.timer is None:
            delay = max(0.0, slots.ended[0] + hold - now)
            slots.timer = asyncio.get_running_loop().call_later(delay, self._timer_fired, guild_id)

    def _timer_fired(self, guild_id: int) -> None:
        slots = self._guilds.get(guild_id)
        if slots is not None:
            slots.timer = None
            self._grant(guild_id, slots)
