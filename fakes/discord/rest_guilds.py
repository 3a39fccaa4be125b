"""REST routes for guilds, roles, members and channels (channel messages: rest_messages.py).

Why: these are the calls the bot makes to read membership and to add or remove roles; each one
applies Discord's rules through FakeGuild and answers with Discord's payloads and error codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .guild import FakeGuild
from .kicks import kick_member
from .transport import REQUEST_BODY, json_response, no_content

if TYPE_CHECKING:
    from .server import FakeDiscord


def _snowflake(request: web.Request, key: str) -> int:
    """A numeric path part; non-numbers are unknown ids, as Discord treats them."""
    value = request.match_info[key]
    if not value.isdigit():
        raise web.HTTPNotFound()
    return int(value)


class GuildRoutes:
    """Guild, role, member and channel-message endpoints backed by the FakeDiscord's guilds."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def register(self, app: web.Application, prefix: str) -> None:
        """Add the routes under `prefix` (/api/v10)."""
        member = prefix + "/guilds/{guild_id}/members/{user_id}"
        app.router.add_get(prefix + "/guilds/{guild_id}", self.get_guild)
        app.router.add_get(prefix + "/guilds/{guild_id}/roles", self.get_roles)
        app.router.add_get(prefix + "/guilds/{guild_id}/channels", self.get_channels)
        app.router.add_get(prefix + "/guilds/{guild_id}/members", self.list_members)
        app.router.add_patch(prefix + "/guilds/{guild_id}/members/@me", self.edit_me)
        app.router.add_get(member, self.get_member)
        app.router.add_patch(member, self.edit_member)
        app.router.add_delete(member, self.kick_member)
        app.router.add_put(member + "/roles/{role_id}", self.add_role)
        app.router.add_delete(member + "/roles/{role_id}", self.remove_role)
        app.router.add_get(prefix + "/channels/{channel_id}", self.get_channel)

    def _guild(self, request: web.Request) -> FakeGuild:
        guild = self.fake.guilds.get(_snowflake(request, "guild_id"))
        if guild is None:
            raise errors.unknown_guild()
        return guild

    async def get_guild(self, request: web.Request) -> web.Response:
        """GET /guilds/{g}; with_counts adds approximate counts."""
        guild = self._guild(request)
        payload = guild.to_payload()
        if request.query.get("with_counts") in ("1", "true", "True"):
            payload["approximate_member_count"] = len(guild.members)
            payload["approximate_presence_count"] = 0
        return json_response(payload)

    async def get_roles(self, request: web.Request) -> web.Response:
        """GET /guilds/{g}/roles."""
        return json_response([role.to_payload() for role in self._guild(request).roles.values()])

    async def get_channels(self, request: web.Request) -> web.Response:
        """GET /guilds/{g}/channels."""
        return json_response([channel.to_payload() for channel in self._guild(request).channels.values()])

    async def list_members(self, request: web.Request) -> web.Response:
        """GET /guilds/{g}/members?limit=&after=: ordered by user id, limit 1..1000 (default 1)."""
        guild = self._guild(request)
        try:
            limit = int(request.query.get("limit", "1"))
            after = int(request.query.get("after", "0"))
        except ValueError:
            raise errors.DiscordAPIError(400, 50035, "Invalid Form Body") from None
        if not 1 <= limit <= 1000:
            raise errors.DiscordAPIError(400, 50035, "Invalid Form Body")
        members = sorted((m for m in guild.members.values() if m.user_id > after), key=lambda m: m.user_id)
        return json_response([m.to_payload() for m in members[:limit]])

    async def get_member(self, request: web.Request) -> web.Response:
        """GET /guilds/{g}/members/{u}."""
        guild = self._guild(request)
        member = guild.members.get(_snowflake(request, "user_id"))
        if member is None:
            raise errors.unknown_member()
        return json_response(member.to_payload())

    async def edit_member(self, request: web.Request) -> web.Response:
        """PATCH /guilds/{g}/members/{u}: full `roles` list and/or `nick`; all-or-nothing."""
        guild = self._guild(request)
        body: dict[str, Any] = request[REQUEST_BODY] or {}
        member = guild.edit_member(_snowflake(request, "user_id"), body)
        return json_response(member.to_payload())

    async def kick_member(self, request: web.Request) -> web.Response:
        """DELETE /guilds/{g}/members/{u}: a kick (rules: kicks.py)."""
        kick_member(self._guild(request), _snowflake(request, "user_id"))
        return no_content()

    async def edit_me(self, request: web.Request) -> web.Response:
        """PATCH /guilds/{g}/members/@me: the bot's own nickname."""
        guild = self._guild(request)
        body: dict[str, Any] = request[REQUEST_BODY] or {}
        member = guild.edit_member(guild.bot_user_id, {"nick": body.get("nick")} if "nick" in body else {})
        return json_response(member.to_payload())

    async def add_role(self, request: web.Request) -> web.Response:
        """PUT /guilds/{g}/members/{u}/roles/{r}."""
        guild = self._guild(request)
        guild.add_member_role(_snowflake(request, "user_id"), _snowflake(request, "role_id"))
        return no_content()

    async def remove_role(self, request: web.Request) -> web.Response:
        """DELETE /guilds/{g}/members/{u}/roles/{r}."""
        guild = self._guild(request)
        guild.remove_member_role(_snowflake(request, "user_id"), _snowflake(request, "role_id"))
        return no_content()

    async def get_channel(self, request: web.Request) -> web.Response:
        """GET /channels/{c}."""
        guild, channel_id = self.fake.find_channel(_snowflake(request, "channel_id"))
        return json_response(guild.channels[channel_id].to_payload())
