"""Direct messages: `POST /users/@me/channels` opens a DM channel, `POST /channels/{dm}/messages` sends into it.

Why: the bot's opt-in DMs (bot/sync/patron_dms.py) must meet Discord's refusals, not a fake that takes everything.
What is modelled, with sources (discord/discord-api-docs):
- `docs/resources/user.md` "Create DM": body `{"recipient_id": snowflake}`, answers a DM channel object (type 1, the
  recipient in `recipients`); asking again answers the same channel. A recipient that doesn't exist: 400 50033
  "Invalid Recipient(s)" (`docs/topics/opcodes-and-status-codes.md`, JSON error codes).
- Sending needs the recipient to take DMs from the bot: a member who turned off DMs from server members
  (`block_dms`), or who shares no server with the bot, gets 403 50007 "Cannot send messages to this user" (same
  table). Opening the channel still works: only the send is refused, as on Discord.
- `docs/resources/message.md` "Create Message": an empty message is 400 50006; with `nonce` and `enforce_nonce`
  true, a nonce the same author used "in the past few minutes" returns that message and creates none. The window
  isn't given; the fake keeps nonces `NONCE_SECONDS` (120 s), less than "a few minutes", which is the unkinder side
  for a bot counting on it.
- Rate limits are the gate's (fakes/discord/rate_limits.py): the message route's bucket is per channel, so per DM
  channel, under the global 50 per second; `POST /users/@me/channels` takes the default route's window.
- `docs/resources/message.md` "Get Channel Messages": `limit` 1-100 (default 50; else 400 50035), at most one of
  `around`/`before`/`after`; the array is newest first, and with `after` it holds the messages immediately after
  that id (discord.py's `history(after=...)` pages on with `data[0]`, the newest). A message read back carries no
  `nonce` (it is only echoed by Create Message and the gateway), so a bot can't find its message by nonce. Only DM
  channels are listed here; a guild channel's listing is not modelled (404).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .models import build_message
from .rest_messages import CONTENT_KEYS, MessageRoutes, empty_message
from .transport import REQUEST_BODY, json_response
from .uploads import attach, uploads_of

if TYPE_CHECKING:
    from .server import FakeDiscord

NONCE_SECONDS = 120.0
#: Discord's DM channel type.
DM = 1


def cannot_send_to_user() -> errors.DiscordAPIError:
    """403 50007."""
    return errors.DiscordAPIError(403, 50007, "Cannot send messages to this user")


def invalid_recipients() -> errors.DiscordAPIError:
    """400 50033."""
    return errors.DiscordAPIError(400, 50033, "Invalid Recipient(s)")


@dataclass
class DmChannel:
    id: int
    user: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: nonce → (monotonic time it was used, the message it made).
    nonces: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    @property
    def user_id(self) -> int:
        return int(self.user["id"])

    def to_payload(self) -> dict[str, Any]:
        last = self.messages[-1]["id"] if self.messages else None
        return {"id": str(self.id), "type": DM, "last_message_id": last, "flags": 0, "recipients": [self.user]}


class DmChannels:
    """The fake's DM state and its two routes; tests read `messages_to(user)` and call `block_dms(user)`."""

    def __init__(self, fake: FakeDiscord, clock: Callable[[], float] = time.monotonic) -> None:
        self.fake = fake
        self.clock = clock
        self.channels: dict[int, DmChannel] = {}
        self._by_user: dict[int, int] = {}
        self.blocked: set[int] = set()

    # ---- test controls -------------------------------------------------------------------------

    def block_dms(self, user_id: int) -> None:
        """The member turns off "Allow direct messages from server members": every send to them is 50007."""
        self.blocked.add(user_id)

    def messages_to(self, user_id: int) -> list[dict[str, Any]]:
        """Every message the bot sent this user by DM, oldest first."""
        channel_id = self._by_user.get(user_id)
        return list(self.channels[channel_id].messages) if channel_id is not None else []

    def is_dm(self, channel_id: int) -> bool:
        return channel_id in self.channels

    # ---- routes --------------------------------------------------------------------------------

    def register(self, app: web.Application, prefix: str) -> None:
        app.router.add_post(prefix + "/users/@me/channels", self.open_channel)

    async def open_channel(self, request: web.Request) -> web.Response:
        body = request[REQUEST_BODY] or {}
        recipient = body.get("recipient_id") if isinstance(body, dict) else None
        if not isinstance(recipient, str | int) or not str(recipient).isdigit():
            raise errors.DiscordAPIError(400, 50035, "Invalid Form Body")
        user_id = int(recipient)
        channel_id = self._by_user.get(user_id)
        if channel_id is None:
            user = self._user(user_id)
            if user is None:
                raise invalid_recipients()
            channel_id = self.fake.ids.next()
            self.channels[channel_id] = DmChannel(channel_id, user)
            self._by_user[user_id] = channel_id
        return json_response(self.channels[channel_id].to_payload())

    async def send(self, request: web.Request, channel_id: int) -> web.Response:
        """POST /channels/{dm}/messages: 50007 unless the recipient takes DMs from the bot; nonces enforced."""
        channel = self.channels[channel_id]
        if channel.user_id in self.blocked or not self._shares_a_guild(channel.user_id):
            raise cannot_send_to_user()
        body: dict[str, Any] = request[REQUEST_BODY] or {}
        if not any(body.get(key) for key in CONTENT_KEYS):
            raise empty_message()
        now = self.clock()
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            seen = channel.nonces.get(str(nonce))
            if seen is not None and now - seen[0] < NONCE_SECONDS:
                return json_response(seen[1])
        uploads = await uploads_of(request)
        message = build_message(self.fake.ids.next(), channel_id, None, self.fake.bot_user_payload(), body)
        if nonce is not None:
            message["nonce"] = str(nonce)
            channel.nonces[str(nonce)] = (now, message)
        attach(self.fake, message, uploads)
        channel.messages.append(message)
        return json_response(message)

    def list_messages(self, request: web.Request, channel_id: int) -> web.Response:
        """GET /channels/{dm}/messages: newest first; with `after`, the `limit` messages right after that id."""
        query = request.query
        anchors = [key for key in ("around", "before", "after") if key in query]
        limit_text = query.get("limit", "50")
        if len(anchors) > 1 or not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            raise errors.DiscordAPIError(400, 50035, "Invalid Form Body")
        if any(not query[key].isdigit() for key in anchors):
            raise errors.DiscordAPIError(400, 50035, "Invalid Form Body")
        limit = int(limit_text)
        ordered = sorted(self.channels[channel_id].messages, key=lambda message: int(message["id"]))
        if "after" in query:
            page = [m for m in ordered if int(m["id"]) > int(query["after"])][:limit]
        elif "before" in query:
            page = [m for m in ordered if int(m["id"]) < int(query["before"])][-limit:]
        elif "around" in query:
            pivot = int(query["around"])
            page = [m for m in ordered if int(m["id"]) < pivot][-(limit // 2) :] if limit > 1 else []
            page += [m for m in ordered if int(m["id"]) >= pivot][: limit - len(page)]
        else:
            page = ordered[-limit:]
        shown = [{key: value for key, value in message.items() if key != "nonce"} for message in reversed(page)]
        return json_response(shown)

    # ---- helpers -------------------------------------------------------------------------------

    def _user(self, user_id: int) -> dict[str, Any] | None:
        for guild in self.fake.guilds.values():
            member = guild.members.get(user_id)
            if member is not None:
                return member.user_payload()
        return None

    def _shares_a_guild(self, user_id: int) -> bool:
        return any(user_id in guild.members for guild in self.fake.guilds.values())


class DmAwareMessageRoutes(MessageRoutes):
    """The channel message routes, with a DM channel's sends answered by `DmChannels` (guild rules don't apply)."""

    def register(self, app: web.Application, prefix: str) -> None:
        super().register(app, prefix)
        app.router.add_get(prefix + "/channels/{channel_id}/messages", self.list_messages)

    async def list_messages(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel_id"]
        if not channel_id.isdigit() or not self.fake.dm_channels.is_dm(int(channel_id)):
            raise errors.DiscordAPIError(404, 0, "404: Not Found (the fake lists DM channels only)")
        return self.fake.dm_channels.list_messages(request, int(channel_id))

    async def send_message(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel_id"]
        if channel_id.isdigit() and self.fake.dm_channels.is_dm(int(channel_id)):
            return await self.fake.dm_channels.send(request, int(channel_id))
        return await super().send_message(request)
