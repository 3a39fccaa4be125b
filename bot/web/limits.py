"""What a slow or greedy client may cost the web server: bounded time per request, bounded connections.

Why: 1,100 connections trickling a body (open-files limit 1024) used to hold every descriptor, so `/healthz` and
Patreon's webhooks went unanswered for the whole flood. Now
- request line and headers must arrive within `header_timeout` (aiohttp's `keepalive_timeout`, which also closes a
  connection that sends nothing, or idles that long between requests);
- a body must arrive within `body_timeout` (the `body_deadline` middleware cuts the connection off);
- at most `max_connections` are open at once, below the descriptor limit so accept() never runs out, and at most
  `max_per_address` from one address, so one flooding host can't take every slot; when full, the oldest slow
  connection makes room for a new one, and a newcomer that can't get in gets a 503 at once.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from bot.web.log_limits import LIMITS_LOG, is_client_fault

log = logging.getLogger(LIMITS_LOG)

#: Descriptors kept free for everything else: connections accepted but not yet admitted or closed (a few accept
#: bursts of `backlog`), those closing to make room, SQLite, the HTTP pools to Discord and Patreon.
RESERVED_DESCRIPTORS = 256
#: Connections being closed to make room hold a descriptor until the loop's next turn: at most one accept burst
#: (asyncio accepts up to `backlog` per turn) of them.
EVICTION_SLACK = 64
#: The cap when the open-files limit is unlimited.
UNLIMITED_CAP = 10_000
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\ntoo many connections"
)


@dataclass(frozen=True)
class WebLimits:
    header_timeout: float = 15.0
    body_timeout: float = 15.0
    #: None: the open-files limit less RESERVED_DESCRIPTORS.
    max_connections: int | None = None
    #: 0: no per-address cap (behind a proxy every connection comes from the proxy).
    max_per_address: int = 64
    #: aiohttp's limits for a request line and one header (413/431 beyond, before any handler runs).
    max_line_size: int = 8190
    max_field_size: int = 8190
    #: How long an unread body is drained after the answer, so the client can read it (aiohttp's lingering close).
    lingering_time: float = 2.0
    backlog: int = EVICTION_SLACK
    #: At most one log line per kind (a refusal, a cut-off, a client error) this often; the next says how many.
    log_interval: float = 10.0
    #: When full, the oldest slow connection is closed to admit a new one if it is at least this old (0: any).
    evict_after: float = 0.0

    def connection_cap(self) -> int:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            ceiling = UNLIMITED_CAP
        else:
            ceiling = soft - RESERVED_DESCRIPTORS if soft > 2 * RESERVED_DESCRIPTORS else soft // 2
        return max(1, min(ceiling, self.max_connections or ceiling))


class ConnectionGate:
    """The protocol factory for `loop.create_server`: each admitted connection gets aiohttp's own handler
    (`make_handler`, the runner's `web.Server`).

    When every slot is taken, the oldest connection that is still slow (no request yet, or its body still
    arriving) and older than `evict_after` is closed to make room: a flood can't keep a webhook or a health check
    out, because a real request finishes long before a thousand newer connections make it the oldest. When none
    qualifies (every connection is busy in a handler, or all are young), and always beyond `per_address`, the
    newcomer gets a 503 and is closed at once."""

    def __init__(
        self,
        make_handler: Callable[[], asyncio.Protocol],
        cap: int,
        per_address: int,
        evict_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.make_handler = make_handler
        self.cap = cap
        self.per_address = per_address
        self.evict_after = evict_after
        self.clock = clock
        self.refused = 0
        self.evicted = 0
        #: Admitted connections, oldest first.
        self._open: dict[_GatedConnection, None] = {}
        self._evicting: set[_GatedConnection] = set()
        self._by_transport: dict[asyncio.BaseTransport, _GatedConnection] = {}
        self._by_address: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return len(self._open)

    def __call__(self) -> asyncio.Protocol:
        return _GatedConnection(self)

    def admit(self, connection: _GatedConnection) -> bool:
        address = connection.address
        if self.per_address and self._by_address[address] >= self.per_address:
            return self._refuse(f"{self.per_address} open from {address}")
        if len(self._open) >= self.cap + EVICTION_SLACK:
            return self._refuse(f"{self.cap} open and {len(self._evicting)} still closing")
        if len(self._open) - len(self._evicting) >= self.cap and not self._evict_one():
            return self._refuse(f"{self.cap} open, none slow enough to close")
        self._open[connection] = None
        self._by_address[address] += 1
        self._by_transport[connection.transport] = connection
        return True

    def _refuse(self, why: str) -> bool:
        self.refused += 1
        log.warning("connection refused with 503: %s (%d refused so far)", why, self.refused)
        return False

    def _evict_one(self) -> bool:
        deadline = self.clock() - self.evict_after
        for candidate in self._open:
            if candidate.opened_at > deadline:
                return False  # the rest are younger still
            if candidate not in self._evicting and candidate.is_slow():
                self._evicting.add(candidate)
                self.evicted += 1
                log.warning(
                    "closed the oldest slow connection (from %s, %.0fs old) to admit a new one (%d closed so far)",
                    candidate.address, self.clock() - candidate.opened_at, self.evicted,
                )
                candidate.transport.close()
                return True
        return False

    def release(self, connection: _GatedConnection) -> None:
        self._open.pop(connection, None)
        self._evicting.discard(connection)
        self._by_transport.pop(connection.transport, None)
        self._by_address[connection.address] -= 1
        if self._by_address[connection.address] <= 0:
            del self._by_address[connection.address]

    def track(self, transport: asyncio.BaseTransport | None, request: web.BaseRequest | None) -> None:
        """The request a connection is serving now (None when done), told by the middleware."""
        connection = self._by_transport.get(transport) if transport is not None else None
        if connection is not None:
            connection.request = request


class _GatedConnection(asyncio.Protocol):
    """Admits or refuses when the connection is made (the peer's address is known only then), then forwards
    every protocol call to aiohttp's handler."""

    def __init__(self, gate: ConnectionGate) -> None:
        self.gate = gate
        self.inner: asyncio.Protocol | None = None
        self.address = ""
        self.opened_at = gate.clock()
        self.request: web.BaseRequest | None = None
        self.transport: asyncio.BaseTransport

    def is_slow(self) -> bool:
        """No request being handled yet (headers not complete, or idle), or a body still arriving."""
        return self.request is None or not self.request.content.is_eof()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.gate.admit(self):
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(REFUSAL)
            transport.close()
            return
        self.inner = self.gate.make_handler()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self.gate.release(self)
            inner, self.inner = self.inner, None
            inner.connection_lost(exc)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def body_deadline(timeout: float, gate: ConnectionGate | None = None) -> Middleware:
    """Middleware: a body not complete `timeout` seconds after its headers is cut off (the connection closed,
    one WARNING); a client that hangs up mid-body is one WARNING, not an ERROR with a traceback."""

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        cut_off: list[bool] = []

        def cut() -> None:
            if not request.content.is_eof() and request.transport is not None:
                cut_off.append(True)
                log.warning("%s %s from %s: body not complete within %gs, connection closed",
                            request.method, request.path, request.remote, timeout)
                request.transport.close()

        timer = None
        if request.body_exists and not request.content.is_eof():
            timer = asyncio.get_running_loop().call_later(timeout, cut)
        if gate is not None:
            gate.track(request.transport, request)
        try:
            return await handler(request)
        except (ConnectionError, web.RequestPayloadError) as error:
            if not cut_off:
                why = "the client disconnected" if is_client_fault(error) else f"a malformed body ({error})"
                log.warning("%s %s from %s: %s before the body was complete",
                            request.method, request.path, request.remote, why)
            return web.Response(status=400, text="incomplete request body")  # nobody may be there to read it
        finally:
            if timer is not None:
                timer.cancel()
            if gate is not None:
                gate.track(request.transport, None)

    return deadline
