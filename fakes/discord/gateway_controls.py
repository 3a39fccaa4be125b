"""What a test sees and steers of the fake's gateway: events sent, bots connected, reconnects, outages, lag.

A mixin of `FakeDiscord` (fakes/discord/server.py), split from it so the platform class reads as state and
lifecycle; every method here hands on to the `GatewayHub` (fakes/discord/gateway.py).
"""

from __future__ import annotations

from typing import Any

from .gateway import GatewayHub
from .member_requests import MemberRequest


class GatewayControls:
    """The gateway half of `FakeDiscord`'s control API."""

    _gateway: GatewayHub

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway event to every connected bot whose intents cover it."""
        self._gateway.dispatch(event, data)

    @property
    def connected(self) -> bool:
        """True once a bot has IDENTIFYed, got READY and still holds its socket."""
        return self._gateway.connected

    @property
    def identify_count(self) -> int:
        """How many IDENTIFYs were answered (a restarted bot identifies again)."""
        return self._gateway.identify_count

    @property
    def resume_count(self) -> int:
        """How many RESUMEs were accepted."""
        return self._gateway.resume_count

    async def wait_for_ready_bots(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `count` bots are connected and have been sent READY + GUILD_CREATEs."""
        await self._gateway.wait_for_ready(count, timeout)

    def request_reconnect(self) -> None:
        """Ask connected bots to reconnect (op 7); they RESUME and get the events they missed."""
        self._gateway.request_reconnect()

    @property
    def member_requests(self) -> list[MemberRequest]:
        """Every gateway op 8 REQUEST_GUILD_MEMBERS the bots sent (ids, query, nonce, and the fake's answer)."""
        return self._gateway.member_requests

    async def drop_gateway_connections(self, code: int = 4000) -> None:
        """Close the sockets but keep sessions: discord.py RESUMEs after its 0-2 s back-off."""
        await self._gateway.drop_connections(code)

    async def begin_gateway_outage(self) -> None:
        """Drop the bots' gateway sockets and leave new ones without HELLO until `end_gateway_outage`."""
        await self._gateway.begin_outage()

    def end_gateway_outage(self) -> None:
        self._gateway.end_outage()

    def hold_member_updates(self, guild_id: int, user_id: int) -> None:
        """Gateway lag: hold this member's GUILD_MEMBER_UPDATE events (REST answers still come at once) until
        `release_member_updates`; see `GatewayHub.hold_member_updates` for the source."""
        self._gateway.hold_member_updates(guild_id, user_id)

    def release_member_updates(self) -> int:
        """Send every held member update in the order the changes happened; returns how many."""
        return self._gateway.release_member_updates()

    @property
    def held_member_updates(self) -> int:
        """How many member updates are waiting (a test's signal that a change happened)."""
        return self._gateway.held_member_updates
