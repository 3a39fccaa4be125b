"""The listening server: aiohttp's request handling behind the connection gate, with the read timeouts set.

Why not `web.TCPSite`: it hands aiohttp's protocol factory straight to `loop.create_server`, with no place to count
or refuse connections. Here the runner's public `server` (the factory) is wrapped by `ConnectionGate`, and the
asyncio server is ours to close.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot.web.limits import ConnectionGate, WebLimits, body_deadline
from bot.web.log_limits import SERVER_LOG, install_web_log_limits

log = logging.getLogger(__name__)


class LimitedWebServer:
    def __init__(self, app: web.Application, host: str, port: int, limits: WebLimits | None = None) -> None:
        self.limits = limits or WebLimits()
        self.host = host
        self.requested_port = port
        self.gate = ConnectionGate(
            self._make_handler, self.limits.connection_cap(), self.limits.max_per_address, self.limits.evict_after
        )
        app.middlewares.append(body_deadline(self.limits.body_timeout, self.gate))
        self.runner = web.AppRunner(
            app,
            access_log=None,
            logger=logging.getLogger(SERVER_LOG),
            keepalive_timeout=self.limits.header_timeout,
            lingering_time=self.limits.lingering_time,
            max_line_size=self.limits.max_line_size,
            max_field_size=self.limits.max_field_size,
        )
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    def _make_handler(self) -> asyncio.Protocol:
        assert self.runner.server is not None, "start() first"
        return self.runner.server()

    async def start(self) -> LimitedWebServer:
        install_web_log_limits(self.limits.log_interval)
        await self.runner.setup()
        self._server = await asyncio.get_running_loop().create_server(
            self.gate, self.host, self.requested_port, backlog=self.limits.backlog, reuse_address=True
        )
        log.info(
            "web server listening on http://%s:%s (at most %d connections, %d per address; %gs for headers, %gs for "
            "a body)", self.host, self.port, self.gate.cap, self.limits.max_per_address, self.limits.header_timeout,
            self.limits.body_timeout,
        )
        return self

    async def close(self) -> None:
        """Stop listening, let requests in flight finish (aiohttp's shutdown), close the rest."""
        if self._server is not None:
            self._server.close()
        await self.runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
