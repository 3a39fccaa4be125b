"""REST routes for the bot's identity, command sync, and interaction callbacks / webhooks.

Why: login, `tree.sync()` and every slash-command answer go through these; the interaction ones
follow Discord's rules (one initial callback, within 3 seconds; token valid for followups).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .components import validate_components
from .interactions import LOADING, InteractionRecord, check_callback
from .models import apply_message_edit, build_message
from .transport import REQUEST_BODY, json_response, no_content
from .uploads import attach, uploads_of

if TYPE_CHECKING:
    from .server import FakeDiscord

MESSAGE_CALLBACKS = {4, 5}
"""Callback types that create the original response message."""

TOKEN_LIFETIME = 15 * 60
#: Servers per shard behind GET /gateway/bot's recommendation.
GUILDS_PER_RECOMMENDED_SHARD = 1000


class AppRoutes:
    """Identity, gateway discovery, application commands, interaction callbacks and webhook messages."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def register(self, app: web.Application, prefix: str) -> None:
        """Add the routes under `prefix` (/api/v10)."""
        commands = prefix + "/applications/{app_id}/commands"
        guild_commands = prefix + "/applications/{app_id}/guilds/{guild_id}/commands"
        hook = prefix + "/webhooks/{app_id}/{token}"
        app.router.add_get(prefix + "/users/@me", self.get_me)
        app.router.add_get(prefix + "/oauth2/applications/@me", self.get_application)
        app.router.add_get(prefix + "/applications/@me", self.get_application)
        app.router.add_get(prefix + "/gateway", self.get_gateway)
        app.router.add_get(prefix + "/gateway/bot", self.get_gateway_bot)
        app.router.add_get(commands, self.list_commands)
        app.router.add_put(commands, self.overwrite_commands)
        app.router.add_post(commands, self.upsert_command)
        app.router.add_get(guild_commands, self.list_commands)
        app.router.add_put(guild_commands, self.overwrite_commands)
        app.router.add_post(guild_commands, self.upsert_command)
        app.router.add_post(prefix + "/interactions/{interaction_id}/{token}/callback", self.callback)
        app.router.add_post(hook, self.followup)
        app.router.add_get(hook + "/messages/{message_id}", self.get_message)
        app.router.add_patch(hook + "/messages/{message_id}", self.edit_message)
        app.router.add_delete(hook + "/messages/{message_id}", self.delete_message)

    # ---- identity ------------------------------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.Response:
        """GET /users/@me: the bot user (discord.py's login)."""
        return json_response(self.fake.bot_user_payload())

    async def get_application(self, request: web.Request) -> web.Response:
        """GET /oauth2/applications/@me: fields discord.py's AppInfo indexes directly."""
        owner = {"id": "800000000000000009", "username": "owner", "discriminator": "0", "avatar": None}
        return json_response(
            {
                "id": str(self.fake.application_id),
                "name": self.fake.bot_username,
                "icon": None,
                "description": "",
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": owner,
                "verify_key": "0" * 64,
                "team": None,
                "flags": 0,
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "bot": self.fake.bot_user_payload(),
            }
        )

    async def get_gateway(self, request: web.Request) -> web.Response:
        """GET /gateway."""
        return json_response({"url": self.fake.gateway_url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        """GET /gateway/bot (AutoShardedBot without a shard count uses it): `shards` is "the recommended number of
        shards to use when connecting" (Discord's "Get Gateway Bot"). Discord doesn't publish how it picks it; its
        sharding guide speaks of about 1,000 servers per shard and requires a shard per 2,500, so the fake
        recommends one shard per 1,000 servers, at least one."""
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        shards = max(1, math.ceil(len(self.fake.guilds) / GUILDS_PER_RECOMMENDED_SHARD))
        return json_response({"url": self.fake.gateway_url, "shards": shards, "session_start_limit": limit})

    # ---- commands ------------------------------------------------------------------------------

    def _scope(self, request: web.Request) -> int | None:
        if request.match_info["app_id"] != str(self.fake.application_id):
            raise errors.DiscordAPIError(403, 20012, "You are not authorized to perform this action on this app")
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return None
        if not guild_id.isdigit() or int(guild_id) not in self.fake.guilds:
            raise errors.missing_access()
        return int(guild_id)

    async def list_commands(self, request: web.Request) -> web.Response:
        """GET commands of a scope."""
        return json_response(self.fake.commands.list(self._scope(request)))

    async def overwrite_commands(self, request: web.Request) -> web.Response:
        """PUT (bulk overwrite, what tree.sync() sends)."""
        scope = self._scope(request)
        body = request[REQUEST_BODY] or []
        if not isinstance(body, list) or any(not isinstance(c, dict) or "name" not in c for c in body):
            raise errors.DiscordAPIError(400, 50035, "Invalid Form Body")
        return json_response(self.fake.commands.overwrite(scope, body))

    async def upsert_command(self, request: web.Request) -> web.Response:
        """POST one command."""
        scope = self._scope(request)
        body = request[REQUEST_BODY]
        if not isinstance(body, dict) or "name" not in body:
            raise errors.DiscordAPIError(400, 50035, "Invalid Form Body")
        return json_response(self.fake.commands.upsert(scope, body), status=201)

    # ---- interactions --------------------------------------------------------------------------

    def _record(self, request: web.Request, *, by_id: bool) -> InteractionRecord:
        token = request.match_info["token"]
        record = self.fake.interactions_by_token.get(token)
        if record is None:
            raise errors.unknown_interaction()
        if by_id and request.match_info["interaction_id"] != str(record.id):
            raise errors.unknown_interaction()
        if not by_id and request.match_info["app_id"] != str(self.fake.application_id):
            raise errors.unknown_interaction()
        if time.monotonic() - record.created_at > TOKEN_LIFETIME:
            raise errors.DiscordAPIError(401, 50027, "Invalid Webhook Token")
        return record

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """POST /interactions/{id}/{token}/callback: exactly one, within the acknowledge window."""
        record = self._record(request, by_id=True)
        if record.callback_type is not None:
            raise errors.already_acknowledged()
        if time.monotonic() - record.created_at > self.fake.interaction_ack_timeout:
            raise errors.unknown_interaction()
        body: dict[str, Any] = request[REQUEST_BODY] or {}
        callback_type = int(body.get("type", 0))
        data: dict[str, Any] = body.get("data") or {}
        check_callback(record, callback_type, data)
        if callback_type in (4, 7):
            validate_components(data.get("components"), ("data",))
        message: dict[str, Any] | None = None
        uploads = await uploads_of(request)
        if callback_type in MESSAGE_CALLBACKS:
            message = self._new_message(record, data if callback_type == 4 else {"flags": data.get("flags", 0)})
            attach(self.fake, message, uploads if callback_type == 4 else [])
            if callback_type == 5:
                message["flags"] |= LOADING
            record.original = message
        elif callback_type in (6, 7) and record.clicked_message is not None:
            # A component's answer "updates" the message it is on: @original is that message from now on.
            record.original = message = record.clicked_message
            if callback_type == 7:
                self._apply_edit(record.original, data)
        elif callback_type == 9:
            record.modal = data
        record.callback_type = callback_type
        record.record("callback", body, message)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return no_content()
        return json_response(self._callback_response(record, callback_type, None if callback_type == 6 else message))

    def _apply_edit(self, message: dict[str, Any], body: dict[str, Any]) -> None:
        """Edit a stored message; a channel message's edit reaches the bot as MESSAGE_UPDATE, as on Discord."""
        apply_message_edit(message, body)
        channel_id = int(message["channel_id"])
        if any(m is message for m in self.fake.channel_messages.get(channel_id, [])):
            self.fake.dispatch("MESSAGE_UPDATE", dict(message))

    def _callback_response(
        self, record: InteractionRecord, callback_type: int, message: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The interaction-callback-response body discord.py 2.7 parses when with_response=1."""
        interaction: dict[str, Any] = {"id": str(record.id), "type": record.type}
        resource: dict[str, Any] = {"type": callback_type}
        if message is not None:
            interaction["response_message_id"] = message["id"]
            interaction["response_message_loading"] = bool(message["flags"] & LOADING)
            interaction["response_message_ephemeral"] = bool(message["flags"] & 64)
            resource["message"] = message
        return {"interaction": interaction, "resource": resource}

    def _new_message(self, record: InteractionRecord, body: dict[str, Any]) -> dict[str, Any]:
        payload = record.payload
        return build_message(
            self.fake.ids.next(),
            int(payload["channel_id"]),
            int(payload["guild_id"]),
            self.fake.bot_user_payload(),
            body,
            message_type=20,
            application_id=self.fake.application_id,
        )

    async def followup(self, request: web.Request) -> web.StreamResponse:
        """POST /webhooks/{app}/{token}: a followup message (needs an acknowledged interaction)."""
        record = self._record(request, by_id=False)
        if record.callback_type is None:
            raise errors.unknown_webhook()
        body: dict[str, Any] = request[REQUEST_BODY] or {}
        validate_components(body.get("components"))
        uploads = await uploads_of(request)
        message = self._new_message(record, body)
        attach(self.fake, message, uploads)
        record.followups[int(message["id"])] = message
        record.record("followup", body, message)
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(message)
        return no_content()

    def _stored_message(self, record: InteractionRecord, message_id: str) -> dict[str, Any]:
        if message_id == "@original":
            message = record.original
        else:
            message = record.followups.get(int(message_id)) if message_id.isdigit() else None
        if message is None:
            raise errors.unknown_message()
        return message

    async def get_message(self, request: web.Request) -> web.Response:
        """GET /webhooks/{app}/{token}/messages/{id|@original}."""
        record = self._record(request, by_id=False)
        return json_response(self._stored_message(record, request.match_info["message_id"]))

    async def edit_message(self, request: web.Request) -> web.Response:
        """PATCH /webhooks/{app}/{token}/messages/{id|@original}: e.g. the answer after a defer."""
        record = self._record(request, by_id=False)
        message_id = request.match_info["message_id"]
        message = self._stored_message(record, message_id)
        body: dict[str, Any] = request[REQUEST_BODY] or {}
        validate_components(body.get("components"))
        self._apply_edit(message, body)
        record.record("edit_original" if message_id == "@original" else "edit_followup", body, message)
        return json_response(message)

    async def delete_message(self, request: web.Request) -> web.Response:
        """DELETE /webhooks/{app}/{token}/messages/{id|@original}."""
        record = self._record(request, by_id=False)
        message_id = request.match_info["message_id"]
        message = self._stored_message(record, message_id)
        if message_id == "@original":
            record.original = None
        else:
            record.followups.pop(int(message_id), None)
        record.record("delete", {"deleted": message["id"]}, None)
        record.forget(message)
        return no_content()
