"""FakeDiscord: a loopback Discord (REST + gateway) that the real, unpatched discord.py talks to.

Why: the bot's tests, benchmarks and demo need Discord's behaviour (permissions, hierarchy, rate
limits, interactions) without the network. Point discord.py at `base_url` by setting
`discord.http.Route.BASE` and `discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`, then log in.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from . import errors
from .clicks import click_payload
from .commands import CommandRegistry
from .dm_channels import DmAwareMessageRoutes, DmChannels
from .gateway import GatewayHub
from .gateway_controls import GatewayControls
from .guild import FakeGuild
from .interactions import InteractionRecord, OptionBuilder, build_interaction_payload
from .models import build_message
from .oauth import DiscordOAuth
from .rate_limits import RateLimiter, RateLimits
from .rest_app import AppRoutes
from .rest_controls import RestControls
from .rest_guilds import GuildRoutes
from .role_connections import RoleConnections
from .snowflake import SnowflakeFactory
from .transport import API_PREFIX, RestGate

DEFAULT_OWNER_ID = 800000000000000009


class FakeDiscord(GatewayControls, RestControls):
    """The whole fake platform: state, control API for tests, and the HTTP/websocket server.

    The control API's gateway half is `GatewayControls` (fakes/discord/gateway_controls.py), its REST half (recorded
    calls, rate limits, faults, holds) `RestControls` (fakes/discord/rest_controls.py).
    """

    def __init__(
        self,
        application_id: int = 900000000000000001,
        bot_user_id: int | None = None,
        bot_token: str = "fake-bot-token",
        *,
        bot_username: str = "FakeBot",
        interaction_ack_timeout: float = 3.0,
        rate_limits: RateLimits | None = None,
        rate_limit_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`rate_limits` defaults to Discord's real ones (`RateLimits.real()`); a test that needs speed passes
        `RateLimits.relaxed()` and says why. `rate_limit_clock` (monotonic seconds) lets a test move the
        limits' time without waiting."""
        self.application_id = application_id
        self.bot_user_id = bot_user_id if bot_user_id is not None else application_id
        self.bot_token = bot_token
        self.bot_username = bot_username
        self.interaction_ack_timeout = interaction_ack_timeout
        self.ids = SnowflakeFactory()
        self.guilds: dict[int, FakeGuild] = {}
        self.commands = CommandRegistry(application_id, self.ids)
        self.channel_messages: dict[int, list[dict[str, Any]]] = {}
        #: The bytes of every file the bot attached to a message, by attachment id (fakes/discord/uploads.py).
        self.uploads: dict[int, bytes] = {}
        self.interactions: list[InteractionRecord] = []
        self.interactions_by_token: dict[str, InteractionRecord] = {}
        self._gate = RestGate(bot_token, RateLimiter(rate_limits or RateLimits.real(), rate_limit_clock))
        #: The OAuth2 side (authorize, token, Bearer `/users/@me`): the bot's Discord sign-in step of linking.
        self.oauth = DiscordOAuth(self)
        #: Linked Roles: the app's metadata records, each user's role connection, roles' Links requirements.
        self.role_connections = RoleConnections(self)
        #: Direct messages: DM channels, their messages, members who block DMs (fakes/discord/dm_channels.py).
        self.dm_channels = DmChannels(self)
        self._gateway = GatewayHub(
            bot_token=bot_token,
            application_id=application_id,
            bot_user=self.bot_user_payload,
            guilds=lambda: list(self.guilds.values()),
            resume_url=lambda: self.gateway_url,
            monotonic=rate_limit_clock,
        )
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> None:
        """Serve on 127.0.0.1 (`port` 0 picks a free one)."""
        middlewares = [self.oauth.middleware, self.role_connections.middleware, self._gate.middleware]
        app = web.Application(middlewares=middlewares)
        self.oauth.add_routes(app)
        self.role_connections.add_routes(app)
        AppRoutes(self).register(app, API_PREFIX)
        GuildRoutes(self).register(app, API_PREFIX)
        DmAwareMessageRoutes(self).register(app, API_PREFIX)
        self.dm_channels.register(app, API_PREFIX)
        app.router.add_get("/gateway", self._gateway.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Close every gateway socket and stop serving (held calls are let through first)."""
        self._gate.release_holds()
        await self._gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT (REST lives under /api/v10)."""
        if self._port is None:
            raise RuntimeError("FakeDiscord.start() has not been awaited")
        return f"http://127.0.0.1:{self._port}"

    @property
    def gateway_url(self) -> str:
        """ws://127.0.0.1:PORT/gateway."""
        return self.base_url.replace("http://", "ws://", 1) + "/gateway"

    # ---- state set-up --------------------------------------------------------------------------

    def add_guild(self, guild_id: int, name: str = "Test Guild", owner_id: int = DEFAULT_OWNER_ID) -> FakeGuild:
        """Create a guild the bot is in (bot member + managed bot role at position 50 with Manage Roles)."""
        if guild_id in self.guilds:
            raise ValueError(f"guild {guild_id} already exists")
        guild = FakeGuild(
            guild_id,
            name=name,
            owner_id=owner_id,
            bot_user_id=self.bot_user_id,
            bot_username=self.bot_username,
            bot_role_id=self.ids.next(),
            emit=self.dispatch,
        )
        self.guilds[guild_id] = guild
        self._gateway.announce_guild(guild)
        return guild

    def guild(self, guild_id: int) -> FakeGuild:
        """The guild, or KeyError."""
        return self.guilds[guild_id]

    def bot_user_payload(self) -> dict[str, Any]:
        """The bot's user object (GET /users/@me, READY, message authors)."""
        return {
            "id": str(self.bot_user_id),
            "username": self.bot_username,
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "public_flags": 0,
            "email": None,
        }

    def find_channel(self, channel_id: int) -> tuple[FakeGuild, int]:
        """The guild owning a channel, or 404 Unknown Channel."""
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild, channel_id
        raise errors.unknown_channel()

    # ---- channel messages and commands ---------------------------------------------------------

    def messages(self, channel_id: int) -> list[dict[str, Any]]:
        """Messages the bot posted to a channel via POST /channels/{c}/messages."""
        return list(self.channel_messages.get(channel_id, []))

    def post_as_user(self, channel_id: int, user_id: int, content: str) -> dict[str, Any]:
        """A member writes in a channel (dispatches MESSAGE_CREATE); e.g. a message the bot may not edit."""
        guild, _ = self.find_channel(channel_id)
        member = guild.member(user_id)
        body = {"content": content}
        message = build_message(self.ids.next(), channel_id, guild.id, member.user_payload(), body)
        self.channel_messages.setdefault(channel_id, []).append(message)
        self.dispatch("MESSAGE_CREATE", {**message, "member": member.to_payload(with_user=False)})
        return message

    def remove_channel_message(self, channel_id: int, message_id: int) -> None:
        """Delete a channel message, as a moderator would (dispatches MESSAGE_DELETE); unknown ids are ignored."""
        guild, _ = self.find_channel(channel_id)
        kept = [m for m in self.channel_messages.get(channel_id, []) if m["id"] != str(message_id)]
        if len(kept) != len(self.channel_messages.get(channel_id, [])):
            self.channel_messages[channel_id] = kept
            deleted = {"id": str(message_id), "channel_id": str(channel_id), "guild_id": str(guild.id)}
            self.dispatch("MESSAGE_DELETE", deleted)

    def registered_commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """Commands synced globally (None) or to one guild."""
        return self.commands.list(guild_id)

    # ---- interactions --------------------------------------------------------------------------

    async def invoke_slash(
        self,
        guild_id: int,
        user_id: int,
        name: str,
        path: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
        *,
        channel_id: int | None = None,
        locale: str = "en-US",
        bypass_default_permissions: bool = False,
    ) -> InteractionRecord:
        """Send a slash command (type 2) as `user_id` would; options are typed from the synced schema."""
        return self._send_interaction(
            2, guild_id, user_id, name, path, options or {}, None, channel_id, locale, bypass_default_permissions
        )

    async def autocomplete(
        self,
        guild_id: int,
        user_id: int,
        name: str,
        path: Sequence[str] = (),
        *,
        focused: str,
        options: Mapping[str, Any] | None = None,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Send an autocomplete interaction (type 4) and return the bot's choices."""
        record = self._send_interaction(4, guild_id, user_id, name, path, options or {}, focused, None, "en-US", True)
        body = await record.wait_response(timeout)
        if body.get("type") != 8:
            raise AssertionError(f"autocomplete answered with callback type {body.get('type')}")
        return list((body.get("data") or {}).get("choices") or [])

    def _send_interaction(
        self,
        interaction_type: int,
        guild_id: int,
        user_id: int,
        name: str,
        path: Sequence[str],
        options: Mapping[str, Any],
        focused: str | None,
        channel_id: int | None,
        locale: str,
        bypass_default_permissions: bool,
    ) -> InteractionRecord:
        guild = self.guild(guild_id)
        member = guild.member(user_id)
        command = self.commands.find(name, guild_id)
        if command is None:
            raise LookupError(f"/{name} is not synced globally or to guild {guild_id}")
        required = command.get("default_member_permissions")
        hidden = required is not None and guild.permissions_of(user_id) & int(required) != int(required)
        if hidden and not bypass_default_permissions:
            raise PermissionError(f"user {user_id} cannot see /{name} (default_member_permissions={required})")
        builder = OptionBuilder(guild)
        built_options = builder.build(command, path, options, focused)
        interaction_id = self.ids.next()
        token = f"aW50ZXJhY3Rpb246{interaction_id}:{secrets.token_urlsafe(24)}"
        payload = build_interaction_payload(
            interaction_id=interaction_id,
            token=token,
            interaction_type=interaction_type,
            application_id=self.application_id,
            guild=guild,
            member=member,
            channel=self._interaction_channel(guild, channel_id),
            command=command,
            options=built_options,
            resolved=builder.resolved,
            locale=locale,
        )
        return self._deliver(InteractionRecord(interaction_id, token, payload))

    async def click_button(
        self,
        guild_id: int,
        user_id: int,
        channel_id: int,
        message_id: int,
        custom_id: str,
        *,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """`user_id` clicks the component `custom_id` on a message: INTERACTION_CREATE of type 3 with the message,
        the member (roles, channel permissions) and app_permissions. A click no Discord client can make (a button
        not on that message, another server's channel, someone else's ephemeral message, ...) raises instead: see
        fakes/discord/clicks.py.
        """
        interaction_id = self.ids.next()
        token = f"aW50ZXJhY3Rpb246{interaction_id}:{secrets.token_urlsafe(24)}"
        payload, clicked = click_payload(
            self,
            self.guild(guild_id),
            user_id,
            channel_id,
            message_id,
            custom_id,
            interaction_id=interaction_id,
            token=token,
            locale=locale,
        )
        return self._deliver(InteractionRecord(interaction_id, token, payload, clicked=clicked))

    def _deliver(self, record: InteractionRecord) -> InteractionRecord:
        self.interactions.append(record)
        self.interactions_by_token[record.token] = record
        self._gateway.dispatch_interaction(record.payload)
        return record

    def _interaction_channel(self, guild: FakeGuild, channel_id: int | None) -> dict[str, Any]:
        """The channel the command is typed in: given, else the guild's first, else a stand-in."""
        if channel_id is not None:
            return guild.channels[channel_id].to_payload()
        if guild.channels:
            return next(iter(guild.channels.values())).to_payload()
        return {"id": str(guild.id), "type": 0, "guild_id": str(guild.id), "name": "general", "position": 0}
