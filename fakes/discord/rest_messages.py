"""REST routes for channel messages: post, fetch, edit and delete, with Discord's channel permissions and body rules.

Why: the bot posts log lines and panels with buttons, and later edits its own panel. Discord checks the bot's
rights in that very channel (overwrites included), the components (components.py), and that only the author edits
a message. Sources: discord/discord-api-docs `docs/resources/message` (Create/Edit/Delete Message: Send Messages
and View Channel to post, only the author may edit, Manage Messages to delete others' messages) and
`docs/topics/opcodes-and-status-codes` (50001 Missing Access, 50005 Cannot edit a message authored by another
user, 50006 Cannot send an empty message, 50013 Missing Permissions, 10008 Unknown Message).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .components import validate_components
from .guild import FakeGuild
from .models import apply_message_edit, build_message
from .permissions import MANAGE_MESSAGES, READ_MESSAGE_HISTORY, SEND_MESSAGES, VIEW_CHANNEL
from .transport import REQUEST_BODY, json_response, no_content
from .uploads import attach, uploads_of

if TYPE_CHECKING:
    from .server import FakeDiscord

CONTENT_KEYS = ("content", "embeds", "components", "sticker_ids", "poll", "attachments")


def cannot_edit_others() -> errors.DiscordAPIError:
    """403 50005."""
    return errors.DiscordAPIError(403, 50005, "Cannot edit a message authored by another user")


def empty_message() -> errors.DiscordAPIError:
    """400 50006."""
    return errors.DiscordAPIError(400, 50006, "Cannot send an empty message")


def _id(request: web.Request, key: str) -> int:
    value = request.match_info[key]
    if not value.isdigit():
        raise web.HTTPNotFound()
    return int(value)


class MessageRoutes:
    """POST/GET/PATCH/DELETE /channels/{c}/messages[/{m}] backed by FakeDiscord.channel_messages."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def register(self, app: web.Application, prefix: str) -> None:
        """Add the routes under `prefix` (/api/v10)."""
        messages = prefix + "/channels/{channel_id}/messages"
        app.router.add_post(messages, self.send_message)
        app.router.add_get(messages + "/{message_id}", self.get_message)
        app.router.add_patch(messages + "/{message_id}", self.edit_message)
        app.router.add_delete(messages + "/{message_id}", self.delete_message)

    def _channel(self, request: web.Request) -> tuple[FakeGuild, int, int]:
        """(guild, channel id, the bot's permissions there); 50001 when the bot can't see the channel."""
        guild, channel_id = self.fake.find_channel(_id(request, "channel_id"))
        perms = guild.channel_permissions_of(guild.bot_user_id, channel_id)
        if not perms & VIEW_CHANNEL:
            raise errors.missing_access()
        return guild, channel_id, perms

    def _message(self, request: web.Request, channel_id: int) -> dict[str, Any]:
        wanted = str(_id(request, "message_id"))
        for message in self.fake.channel_messages.get(channel_id, []):
            if message["id"] == wanted:
                return message
        raise errors.unknown_message()

    async def send_message(self, request: web.Request) -> web.Response:
        """POST: View Channel (else 50001) and Send Messages (else 50013) in this channel; dispatches MESSAGE_CREATE."""
        guild, channel_id, perms = self._channel(request)
        if not perms & SEND_MESSAGES:
            raise errors.missing_permissions()
        body: dict[str, Any] = request[REQUEST_BODY] or {}
        validate_components(body.get("components"))
        if not any(body.get(key) for key in CONTENT_KEYS):
            raise empty_message()
        uploads = await uploads_of(request)
        message = build_message(self.fake.ids.next(), channel_id, guild.id, self.fake.bot_user_payload(), body)
        attach(self.fake, message, uploads)
        guild.channels[channel_id].last_message_id = int(message["id"])
        self.fake.channel_messages.setdefault(channel_id, []).append(message)
        self.fake.dispatch("MESSAGE_CREATE", {**message, "member": guild.bot_member.to_payload(with_user=False)})
        return json_response(message)

    async def get_message(self, request: web.Request) -> web.Response:
        """GET: needs Read Message History too (else 50013)."""
        _, channel_id, perms = self._channel(request)
        if not perms & READ_MESSAGE_HISTORY:
            raise errors.missing_permissions()
        return json_response(self._message(request, channel_id))

    async def edit_message(self, request: web.Request) -> web.Response:
        """PATCH: only the author may edit (50005); the edited message must not end up empty (50006)."""
        guild, channel_id, _ = self._channel(request)
        message = self._message(request, channel_id)
        if message["author"]["id"] != str(self.fake.bot_user_id):
            raise cannot_edit_others()
        body: dict[str, Any] = request[REQUEST_BODY] or {}
        validate_components(body.get("components"))
        merged = {**message, **{k: v for k, v in body.items() if v is not None}}
        if not any(merged.get(key) for key in CONTENT_KEYS):
            raise empty_message()
        apply_message_edit(message, body)
        self.fake.dispatch("MESSAGE_UPDATE", {**message, "member": guild.bot_member.to_payload(with_user=False)})
        return json_response(message)

    async def delete_message(self, request: web.Request) -> web.Response:
        """DELETE: the bot's own message always; someone else's needs Manage Messages (else 50013)."""
        _, channel_id, perms = self._channel(request)
        message = self._message(request, channel_id)
        if message["author"]["id"] != str(self.fake.bot_user_id) and not perms & MANAGE_MESSAGES:
            raise errors.missing_permissions()
        self.fake.remove_channel_message(channel_id, int(message["id"]))
        return no_content()
