"""Slow and greedy clients against the real web app over loopback: read timeouts, the connection caps, and log lines
that say a client's fault in one WARNING."""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from bot.web.app import create_web_app
from bot.web.limits import RESERVED_DESCRIPTORS, WebLimits
from bot.web.log_limits import LIMITS_LOG, SERVER_LOG, install_web_log_limits
from bot.web.server import LimitedWebServer
from bot.web.webhook_receiver import sign
from fakes.sync_harness import SECRET, SyncHarness
from tests.e2e.polling import wait_for

SLOW_BODY = (
    b"POST /patreon/webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"
)


class Bot:
    """The real web app (webhook receiver over the real store) served by LimitedWebServer on 127.0.0.1."""

    def __init__(self, harness: SyncHarness, server: LimitedWebServer, client: aiohttp.ClientSession) -> None:
        self.harness, self.server, self.client = harness, server, client
        self.base = f"http://127.0.0.1:{server.port}"

    async def healthz(self) -> int:
        async with self.client.get(self.base + "/healthz") as response:
            return response.status

    async def webhook(self) -> int:
        body = self.harness.patreon.render_member_webhook_body("members:pledge:update", "p-ann")
        headers = {"X-Patreon-Event": "members:pledge:update", "X-Patreon-Signature": sign(body, SECRET)}
        async with self.client.post(self.base + "/patreon/webhook", data=body, headers=headers) as response:
            return response.status

    async def open(self, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.server.port, local_addr=(source, 0))


@pytest.fixture
async def serve(tmp_path) -> AsyncIterator[Callable[[WebLimits], Awaitable[Bot]]]:
    """Start the web app with the given limits (as many times as a test needs); everything closes afterwards."""
    started: list[tuple[SyncHarness, LimitedWebServer, aiohttp.ClientSession]] = []

    async def start(limits: WebLimits) -> Bot:
        harness = await SyncHarness(tmp_path / f"bot{len(started)}.sqlite3", "7654321").start()
        harness.patreon.add_user("p-ann", "Ann")
        harness.patreon.set_membership("p-ann", "active_patron", tier_ids=[])
        app = create_web_app(harness.services.linking, harness.services.webhooks)
        server = await LimitedWebServer(app, "127.0.0.1", 0, limits).start()
        client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        started.append((harness, server, client))
        return Bot(harness, server, client)

    yield start
    for harness, server, client in started:
        await client.close()
        await server.close()
        await harness.close()


def lines(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == name]


def no_errors_or_tracebacks(caplog: pytest.LogCaptureFixture) -> bool:
    web = [r for r in caplog.records if r.name.startswith(("bot.web", "aiohttp", "asyncio"))]
    return all(r.levelno < logging.ERROR and r.exc_info is None for r in web)


# ------------------------------------------------------------------ read timeouts


async def test_a_trickling_body_is_cut_off_and_the_next_request_is_answered(serve, caplog):
    bot = await serve(WebLimits(body_timeout=0.3, log_interval=0))
    reader, writer = await bot.open()
    writer.write(SLOW_BODY)  # headers promise 5000 bytes; one arrives, then a byte now and then
    await writer.drain()
    trickle = asyncio.create_task(_trickle(writer))
    try:
        assert await asyncio.wait_for(reader.read(), timeout=5) == b"", "closed without an answer"
    finally:
        trickle.cancel()
        writer.close()
    await wait_for(lambda: bot.server.gate.open == 0)
    (cut,) = lines(caplog, LIMITS_LOG)
    assert cut.levelno == logging.WARNING and "body not complete within 0.3s" in cut.getMessage()
    assert await bot.webhook() == 202
    assert await bot.healthz() == 200
    assert no_errors_or_tracebacks(caplog)


async def _trickle(writer: asyncio.StreamWriter) -> None:
    while True:
        await asyncio.sleep(0.05)
        writer.write(b" ")


async def test_headers_sent_too_slowly_are_cut_off(serve):
    bot = await serve(WebLimits(header_timeout=0.3))
    reader, writer = await bot.open()
    writer.write(b"GET /heal")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()
    assert await bot.healthz() == 200


# ------------------------------------------------------------------ connection caps


async def test_the_cap_refuses_beyond_the_limit_while_a_connection_within_it_is_answered(serve, caplog):
    bot = await serve(WebLimits(max_connections=2, max_per_address=0, log_interval=0, evict_after=60))
    held = [await bot.open() for _ in range(2)]
    await wait_for(lambda: bot.server.gate.open == 2)
    reader, writer = await bot.open()
    refusal = await asyncio.wait_for(reader.read(), timeout=5)
    assert refusal.startswith(b"HTTP/1.1 503 ") and b"Connection: close" in refusal, "refused at once, then closed"
    writer.close()
    within_reader, within_writer = held[0]
    within_writer.write(b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n")
    answer = await asyncio.wait_for(within_reader.readuntil(b'"ok"}'), timeout=5)
    assert answer.startswith(b"HTTP/1.1 200 ")
    for _reader, held_writer in held:
        held_writer.close()
    await wait_for(lambda: bot.server.gate.open == 0)
    assert await bot.healthz() == 200, "a slot freed is a slot reused"
    (refused,) = lines(caplog, LIMITS_LOG)
    assert refused.levelno == logging.WARNING and "2 open" in refused.getMessage()


async def test_when_full_the_oldest_slow_connection_makes_room_for_a_webhook(serve, caplog):
    bot = await serve(WebLimits(max_connections=2, max_per_address=0, log_interval=0, evict_after=0))
    oldest = await bot.open()
    oldest[1].write(SLOW_BODY)  # a body still arriving: slow
    await wait_for(lambda: bot.server.gate.open == 1)
    newer = await bot.open()  # no request yet: slow too, but younger
    await wait_for(lambda: bot.server.gate.open == 2)
    assert await bot.webhook() == 202, "a new delivery gets in though every slot was taken"
    assert await asyncio.wait_for(oldest[0].read(), timeout=5) == b"", "the oldest slow one made room"
    assert bot.server.gate.evicted >= 1 and bot.server.gate.refused == 0
    newer[1].close()
    oldest[1].close()
    evictions = [r for r in lines(caplog, LIMITS_LOG) if "oldest slow connection" in r.getMessage()]
    assert evictions and all(r.levelno == logging.WARNING for r in evictions)


async def test_one_address_cannot_take_every_slot(serve):
    bot = await serve(WebLimits(max_connections=10, max_per_address=2))
    held = [await bot.open("127.0.0.1") for _ in range(2)]
    await wait_for(lambda: bot.server.gate.open == 2)
    reader, writer = await bot.open("127.0.0.1")
    assert (await asyncio.wait_for(reader.read(), timeout=5)).startswith(b"HTTP/1.1 503 ")
    writer.close()
    reader, writer = await bot.open("127.0.0.2")  # another host: still served
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bot\r\nConnection: close\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), timeout=5)).startswith(b"HTTP/1.1 200 ")
    writer.close()
    for _reader, held_writer in held:
        held_writer.close()


@pytest.fixture
def open_files_limit_1024():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_cap_stays_below_the_open_files_limit(open_files_limit_1024):
    assert WebLimits().connection_cap() == 1024 - RESERVED_DESCRIPTORS
    assert WebLimits(max_connections=100).connection_cap() == 100
    assert WebLimits(max_connections=5000).connection_cap() == 1024 - RESERVED_DESCRIPTORS, "never above the limit"


# ------------------------------------------------------------------ a client's fault is one WARNING


async def test_an_oversized_header_is_one_warning_without_a_traceback(serve, caplog):
    bot = await serve(WebLimits(log_interval=0))
    reader, writer = await bot.open()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bot\r\nX-Padding: " + b"a" * 9000 + b"\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), timeout=5)).startswith(b"HTTP/1.")
    writer.close()
    await wait_for(lambda: lines(caplog, SERVER_LOG))
    (warning,) = lines(caplog, SERVER_LOG)
    assert warning.levelno == logging.WARNING and warning.exc_info is None
    assert "client error from 127.0.0.1" in warning.getMessage() and "LineTooLong" in warning.getMessage()
    assert "Traceback" not in caplog.text
    assert no_errors_or_tracebacks(caplog)


async def test_a_client_that_hangs_up_mid_body_is_one_warning_and_nothing_recorded(serve, caplog):
    bot = await serve(WebLimits(log_interval=0))
    _reader, writer = await bot.open()
    writer.write(SLOW_BODY)
    await writer.drain()
    await wait_for(lambda: bot.server.gate.open == 1)
    writer.close()
    await wait_for(lambda: lines(caplog, LIMITS_LOG))
    await wait_for(lambda: bot.server.gate.open == 0)
    (warning,) = lines(caplog, LIMITS_LOG)
    assert warning.levelno == logging.WARNING and warning.exc_info is None
    assert "POST /patreon/webhook from 127.0.0.1: the client disconnected" in warning.getMessage()
    assert no_errors_or_tracebacks(caplog) and "Traceback" not in caplog.text
    assert await bot.harness.store.webhook_event_counts() == {}


# ------------------------------------------------------------------ a flood writes a few lines, not megabytes


async def test_a_flood_of_refusals_is_a_few_lines_with_the_count(serve, caplog):
    bot = await serve(WebLimits(max_connections=1, max_per_address=0, log_interval=60, evict_after=60))
    held = await bot.open()
    await wait_for(lambda: bot.server.gate.open == 1)
    for _ in range(30):
        reader, writer = await bot.open()
        assert (await asyncio.wait_for(reader.read(), timeout=5)).startswith(b"HTTP/1.1 503 ")
        writer.close()
    assert bot.server.gate.refused == 30
    refusals = [r for r in lines(caplog, LIMITS_LOG) if "refused" in r.getMessage()]
    assert len(refusals) <= 1, "one line per kind per interval"
    assert install_web_log_limits(60).suppressed() >= 29, "the rest are counted, for the next line to report"
    held[1].close()
