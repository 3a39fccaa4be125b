"""One request budget for the whole Patreon client, shared by every campaign, so the bot never earns a 429.

Why: Patreon documents 100 requests per 2 s per client (and 100 per minute per token; docs/patreon-api.md, "Rate
limits"); every connected campaign's refresh, every webhook's re-fetch and every link share the one client. So
each HTTP attempt takes a slot first. A slot is freed `window + margin` seconds after its request *ended*: Patreon
counted the request somewhere between the two, so any `limit + 1` requests that reach Patreon are more than a
window apart, whatever the window's shape (fixed or sliding: unconfirmed) and the network's delay.

Two lanes, because someone waits on a look-up and nobody waits on a listing page:
- `LOOKUP` (a webhook's member re-fetch, a link, a command, a token refresh a caller needs now) is served first,
  and may use every slot;
- `REFRESH` (listing pages, tier reads and patron-token refreshes of the periodic refresh) may hold at most
  `refresh_share` of the slots, so a look-up arriving during 50 campaigns' listings finds a free slot at once
  instead of waiting for a window to roll over. Refresh waiters are served round-robin by `key` (the campaign),
  so one campaign's long listing never starves the others of pages.

A 429 (with its Retry-After) pauses the whole budget, every lane and every campaign: the limit is the client's,
so one caller's 429 means everyone's next request would get one too.

Each token has its own window as well (Patreon: 100 requests per minute per token), budgeted by the bot
(bot/services.py): a request that names its token (`slot(..., token=...)`) also takes one of that token's
`token_limit` slots, freed like the client's. A waiter whose token is spent waits for it alone: other tokens'
waiters go past it. Refresh work may hold at most `refresh_share` of a token's window, so a webhook's look-up with
the creator token of a campaign being listed still finds a slot. Refreshing doesn't reset Patreon's limit, so
`carry_token_window(old, new)` makes the new token count in the old one's window. The windows (keyed by a hash of
each token, forgotten once idle) are bot/patreon/token_windows.py's. Read strictly (listing pages count), a
100,000-member campaign's 100 pages take at least 75 s, and one token's look-ups go at 100 a minute:
bot/sync/webhook_flood.py turns a flood of them into one listing, weighing `token_room`. `token_limit=None` (the
constructor's default) budgets the client only.

Urgent work (`async with budget.urgent():`, a webhook applier's pass) also holds refresh requests back while it
runs, for at most `refresh_hold_seconds` per waiting page: a listing page costs the bot far more than its request
(parsing, storing and planning 1,000 members), so a webhook applied while pages keep coming waits behind that
work in the event loop and the store, not behind Patreon (bench/campaigns_bench.py measured seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import IntEnum

from bot.patreon.token_windows import TokenWindows

log = logging.getLogger(__name__)

#: Patreon's documented client limit (November 2024): 100 requests per 2 seconds per client.
CLIENT_LIMIT = 100
CLIENT_WINDOW_SECONDS = 2.0
#: The share of the slots the periodic refresh may hold: the rest is always free for look-ups.
REFRESH_SHARE = 0.8
#: The longest urgent work holds back one refresh request (so a stream of webhooks never starves the refresh).
REFRESH_HOLD_SECONDS = 1.0
#: Patreon's documented per-token limit (November 2024): 100 requests per minute per token.
TOKEN_LIMIT = 100
TOKEN_WINDOW_SECONDS = 60.0


class Priority(IntEnum):
    """Who waits on a request: lower is served first."""

    LOOKUP = 0
    REFRESH = 1


@dataclass
class BudgetFigures:
    """What the budget did since start (benches, tests and /metrics read it)."""

    granted: dict[Priority, int] = field(default_factory=lambda: dict.fromkeys(Priority, 0))
    #: The longest any request of a lane waited for its slot, in seconds.
    longest_wait: dict[Priority, float] = field(default_factory=lambda: dict.fromkeys(Priority, 0.0))
    pauses: int = 0
    #: The most requests the budget ever counted in one window (running plus recently ended).
    peak_in_window: int = 0
    #: The most requests one token ever had in its window (running plus recently ended).
    peak_per_token: int = 0
    #: Grants that had to wait because their token's window was full (others went past them meanwhile).
    token_waits: int = 0


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[None]
    #: The request's token id (None: no token, so no window of its own).
    tid: str | None
    #: Passed over at least once because its token's window was full.
    token_held: bool = False


class RequestBudget:
    """`async with budget.slot(priority, key):` around each single HTTP attempt (see the module docstring)."""

    def __init__(
        self,
        limit: int = CLIENT_LIMIT,
        window_seconds: float = CLIENT_WINDOW_SECONDS,
        *,
        refresh_share: float = REFRESH_SHARE,
        margin_seconds: float = 0.02,
        refresh_hold_seconds: float = REFRESH_HOLD_SECONDS,
        token_limit: int | None = None,
        token_window_seconds: float = TOKEN_WINDOW_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 2 or window_seconds <= 0 or not 0 < refresh_share <= 1:
            raise ValueError("a budget needs at least two requests per window of positive length")
        if (token_limit is not None and token_limit < 1) or token_window_seconds <= 0:
            raise ValueError("a token's window needs at least one request and a positive length")
        self.limit = limit
        self.window_seconds = window_seconds
        self.margin_seconds = margin_seconds
        #: Slots the refresh lane may hold at once (at least one, and at least one left for look-ups).
        self.refresh_limit = max(1, min(limit - 1, int(limit * refresh_share)))
        #: Requests per token window; None: tokens aren't budgeted (only the client's limit is).
        self.token_limit = token_limit
        self.token_window_seconds = token_window_seconds
        #: Slots of one token's window the refresh lane may hold (the rest stay free for that token's look-ups).
        self.token_refresh_limit = (
            0 if token_limit is None else max(1, min(token_limit - 1, int(token_limit * refresh_share)))
        )
        self._monotonic = monotonic
        self._running: dict[Priority, int] = dict.fromkeys(Priority, 0)
        self._ended: deque[tuple[float, Priority]] = deque()
        #: Waiters hold (future, token id); a waiter without a token has no window of its own.
        self._lookups: deque[_Waiter] = deque()
        #: Refresh waiters by key, in the order keys last got a slot (round-robin: the front goes next).
        self._refresh: OrderedDict[str, deque[_Waiter]] = OrderedDict()
        #: Each token's window (bot/patreon/token_windows.py); None: tokens aren't budgeted.
        self._windows = (
            None
            if token_limit is None
            else TokenWindows(token_limit, self.token_refresh_limit, token_window_seconds, margin_seconds)
        )
        self._paused_until = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.refresh_hold_seconds = refresh_hold_seconds
        #: Urgent work running now, and since when refresh waiters have been held back by it.
        self._urgent = 0
        self._held_since: float | None = None
        self.figures = BudgetFigures()

    def __repr__(self) -> str:
        return (
            f"RequestBudget({self.limit} per {self.window_seconds:g}s, refresh {self.refresh_limit}, "
            f"{self.token_limit or 'no limit'} per {self.token_window_seconds:g}s per token)"
        )

    @property
    def paused_for(self) -> float:
        """Seconds left of the pause a 429 asked for (0: not paused)."""
        return max(0.0, self._paused_until - self._monotonic())

    def waiting(self, priority: Priority | None = None) -> int:
        lookups = sum(1 for w in self._lookups if not w.future.done())
        refresh = sum(1 for q in self._refresh.values() for w in q if not w.future.done())
        return {None: lookups + refresh, Priority.LOOKUP: lookups, Priority.REFRESH: refresh}[priority]

    def pause(self, seconds: float) -> None:
        """Patreon answered 429: nobody sends anything for `seconds` (a longer pause already set stays)."""
        until = self._monotonic() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self.figures.pauses += 1
            log.warning("patreon budget: 429, every caller waits %.2fs", seconds)
        self._schedule(self._monotonic())

    @contextlib.asynccontextmanager
    async def urgent(self) -> AsyncIterator[None]:
        """Hold refresh requests back while this runs (each at most `refresh_hold_seconds`); look-ups go on."""
        self._urgent += 1
        try:
            yield
        finally:
            self._urgent -= 1
            if not self._urgent:
                self._held_since = None
            self._grant()

    @contextlib.asynccontextmanager
    async def slot(
        self, priority: Priority = Priority.LOOKUP, key: str = "", token: str | None = None
    ) -> AsyncIterator[None]:
        """Hold one slot for the duration of one HTTP attempt; `token` (the request's bearer token, if any) also
        takes a slot of that token's own window."""
        asked = self._monotonic()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        tid = self._window_id(token)
        if priority is Priority.LOOKUP:
            self._lookups.append(_Waiter(future, tid))
        else:
            self._refresh.setdefault(key, deque()).append(_Waiter(future, tid))
        self._grant()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted as we were cancelled: give the slot back
                self._release(priority, tid, count=False)
            raise
        waited = self._monotonic() - asked
        figures = self.figures
        figures.granted[priority] += 1
        figures.longest_wait[priority] = max(figures.longest_wait[priority], waited)
        try:
            yield
        finally:
            self._release(priority, tid)

    def _window_id(self, token: str | None) -> str | None:
        """The id of the window a token counts in (None: no token, or tokens aren't budgeted, `token_limit` None
        even if set so after construction)."""
        if self._windows is None or self.token_limit is None or token is None:
            return None
        return self._windows.window_id(token, self._monotonic())

    def carry_token_window(self, old: str, new: str) -> None:
        """`new` replaces `old` (a refresh): Patreon doesn't reset the limit, so `new` counts in `old`'s window."""
        if self._windows is not None:
            now = self._monotonic()
            self._windows.carry(old, new, now)
            self._windows.forget_idle(now, self._waited_on)

    def tokens_kept(self) -> int:
        """Token ids the budget keeps (windows, refreshed tokens' carried ids): those of tokens used within about
        the last two windows, however many tokens were used or refreshed since start."""
        return 0 if self._windows is None else len(self._windows)

    def _waited_on(self) -> set[str]:
        lanes = (self._lookups, *self._refresh.values())
        return {w.tid for lane in lanes for w in lane if w.tid is not None and not w.future.done()}

    def token_room(self, token: str | None, priority: Priority = Priority.LOOKUP) -> int | None:
        """How many more requests of this lane the token's window takes now, counting those already waiting for it
        (None: tokens aren't budgeted, or no token)."""
        tid = self._window_id(token)
        if tid is None or self._windows is None:
            return None
        lanes = (self._lookups,) if priority is Priority.LOOKUP else (self._lookups, *self._refresh.values())
        queued = sum(1 for lane in lanes for w in lane if w.tid == tid and not w.future.done())
        return max(0, self._windows.room(tid, self._monotonic(), priority is Priority.REFRESH) - queued)

    def token_lookups(self, token: str | None) -> int | None:
        """The token's look-ups in its window now: running, recently ended and waiting (None: not budgeted)."""
        tid = self._window_id(token)
        if tid is None or self._windows is None:
            return None
        queued = sum(1 for w in self._lookups if w.tid == tid and not w.future.done())
        return self._windows.lookups(tid, self._monotonic()) + queued

    def token_frees_in(self, token: str | None) -> float:
        """Seconds until the token's window has room for one more look-up (0: it has now; while every slot is
        held by a running request, the window's length: a guess on the safe side)."""
        if self.token_room(token) != 0:
            return 0.0
        tid = self._window_id(token)
        frees = None if tid is None or self._windows is None else self._windows.frees_in(tid, self._monotonic())
        return self.token_window_seconds if frees is None else frees

    def _release(self, priority: Priority, tid: str | None, *, count: bool = True) -> None:
        now = self._monotonic()
        self._running[priority] -= 1
        if count:
            self._ended.append((now, priority))
        if tid is not None and self._windows is not None:
            self._windows.release(tid, now, priority is Priority.REFRESH, count=count)
            self._windows.forget_idle(now, self._waited_on)
        self._grant()

    def _token_room(self, tid: str | None, now: float, priority: Priority) -> bool:
        """Whether this token's window has a free slot for this lane (a request without a token always has)."""
        return tid is None or self._windows is None or self._windows.has_room(tid, now, priority is Priority.REFRESH)

    def _take(self, priority: Priority, waiter: _Waiter) -> None:
        self._running[priority] += 1
        if waiter.tid is not None and self._windows is not None:
            held = self._windows.take(waiter.tid, priority is Priority.REFRESH)
            self.figures.peak_per_token = max(self.figures.peak_per_token, held)
        self.figures.token_waits += waiter.token_held
        waiter.future.set_result(None)

    def _spent(self, waiter: _Waiter, spent: set[str], now: float, priority: Priority) -> bool:
        """Whether the waiter's token has no slot for its lane now (then it is remembered in `spent`, which the
        refresh lane reads only after every look-up was served, and the waiter is marked held)."""
        if waiter.tid is None or (waiter.tid not in spent and self._token_room(waiter.tid, now, priority)):
            return False
        spent.add(waiter.tid)
        waiter.token_held = True
        return True

    def _token_frees_at(self, tids: set[str]) -> float | None:
        """When the first of these spent tokens gets a slot back by time (a running request's end wakes us too)."""
        return None if self._windows is None else self._windows.frees_at(tids)

    def _in_window(self, now: float) -> tuple[int, int]:
        """(every slot taken, refresh slots taken): running, plus ended less than a window ago."""
        hold = self.window_seconds + self.margin_seconds
        while self._ended and self._ended[0][0] + hold <= now:
            self._ended.popleft()
        refresh_ended = sum(1 for _at, lane in self._ended if lane is Priority.REFRESH)
        total = sum(self._running.values()) + len(self._ended)
        return total, self._running[Priority.REFRESH] + refresh_ended

    def _grant(self) -> None:
        """Wake every waiter there is a slot for, look-ups first; otherwise wake up when the next slot frees."""
        now = self._monotonic()
        if now < self._paused_until:
            self._schedule(now)
            return
        total, refresh = self._in_window(now)
        spent: set[str] = set()  # tokens whose window is full: their waiters wait, the others go past them
        kept: deque[_Waiter] = deque()
        while self._lookups and total < self.limit:
            waiter = self._lookups.popleft()
            if waiter.future.done():
                continue
            if self._spent(waiter, spent, now, Priority.LOOKUP):
                kept.append(waiter)
                continue
            self._take(Priority.LOOKUP, waiter)
            total += 1
        self._lookups.extendleft(reversed(kept))
        # A look-up that could go now goes before any refresh request (it waits only when the client's window is full)
        lookups_held = any(not w.future.done() and w.tid not in spent for w in self._lookups)
        if self._urgent and self._refresh:
            self._held_since = now if self._held_since is None else self._held_since
            if now - self._held_since < self.refresh_hold_seconds:
                self.figures.peak_in_window = max(self.figures.peak_in_window, total)
                self._schedule(
                    now,
                    hold_ends=self._held_since + self.refresh_hold_seconds,
                    token_frees=self._token_frees_at(spent) if spent else None,
                )
                return
            self._held_since = now  # held long enough: one round goes, then the next hold starts
        waiting_keys: list[tuple[str, deque[_Waiter]]] = []  # keys whose next waiter's token is spent
        while self._refresh and total < self.limit and refresh < self.refresh_limit and not lookups_held:
            key, queue = next(iter(self._refresh.items()))
            if not queue[0].future.done() and self._spent(queue[0], spent, now, Priority.REFRESH):
                waiting_keys.append((key, self._refresh.pop(key)))  # keeps its turn for when its token frees
                continue
            waiter = queue.popleft()
            if queue:
                self._refresh.move_to_end(key)  # this campaign had its turn: the next campaign goes first
            else:
                del self._refresh[key]
            if waiter.future.done():
                continue
            self._take(Priority.REFRESH, waiter)
            total += 1
            refresh += 1
        for key, queue in reversed(waiting_keys):
            self._refresh[key] = queue
            self._refresh.move_to_end(key, last=False)
        self.figures.peak_in_window = max(self.figures.peak_in_window, total)
        self._schedule(now, token_frees=self._token_frees_at(spent) if spent else None)

    def _schedule(self, now: float, hold_ends: float | None = None, token_frees: float | None = None) -> None:
        """Wake when the pause or a hold ends, the oldest ended slot leaves the window or a spent token gets a
        slot back, if anyone still waits."""
        if self._timer is not None or not self.waiting():
            return
        if now < self._paused_until:
            delay = self._paused_until - now
        else:
            moments = [moment for moment in (hold_ends, token_frees) if moment is not None]
            if self._ended:
                moments.append(self._ended[0][0] + self.window_seconds + self.margin_seconds)
            if not moments:
                return  # everything held is running: its release wakes the waiters
            delay = max(0.0, min(moments) - now)
        self._timer = asyncio.get_running_loop().call_later(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._grant()
