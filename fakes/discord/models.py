"""Plain records for roles, members and channels, and the exact JSON shapes Discord sends for them.

Why here: discord.py indexes many payload keys directly (member `flags`, role `name`, channel
`position`), so every shape is built in one place and checked by the integration tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .components import stored_components


def now_iso() -> str:
    """An ISO-8601 timestamp like the ones Discord puts in `joined_at` and `timestamp`."""
    return datetime.now(UTC).isoformat()


@dataclass
class FakeRole:
    """A guild role; `managed` roles (bot or integration roles) can never be assigned by anyone."""

    id: int
    guild_id: int
    name: str
    position: int = 1
    permissions: int = 0
    managed: bool = False
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    bot_id: int | None = None

    @property
    def is_default(self) -> bool:
        """True for @everyone, whose id is the guild id."""
        return self.id == self.guild_id

    def rank(self) -> tuple[int, int]:
        """Sort key of the role hierarchy: higher position wins, on a tie the older (smaller) id wins."""
        return (self.position, -self.id)

    def to_payload(self) -> dict[str, Any]:
        """The role object as in GUILD_CREATE, GET /roles and resolved interaction data."""
        payload: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": self.hoist,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.bot_id is not None:
            payload["tags"] = {"bot_id": str(self.bot_id)}
        return payload


class ObservedRoleSet(set[int]):
    """A member's role ids; any in-place change is reported so the fake can dispatch GUILD_MEMBER_UPDATE.

    Why: tests often write `member.role_ids.add(role)` to play a moderator. On Discord that change
    reaches the bot as an event, so here it does too, instead of leaving the bot's cache stale.
    """

    def __init__(self, role_ids: Iterable[int] = (), on_change: Callable[[], None] | None = None) -> None:
        super().__init__(role_ids)
        self.on_change = on_change

    def replace(self, role_ids: Iterable[int], *, notify: bool = True) -> bool:
        """Set the contents in one step; returns whether anything changed."""
        new = set(role_ids)
        if new == self:
            return False
        set.clear(self)
        set.update(self, new)
        if notify and self.on_change is not None:
            self.on_change()
        return True


def _observed(name: str) -> Callable[..., Any]:
    base = getattr(set, name)

    def method(self: ObservedRoleSet, *args: Any) -> Any:
        before = frozenset(self)
        result = base(self, *args)
        if self.on_change is not None and frozenset(self) != before:
            self.on_change()
        return result

    method.__name__ = name
    return method


for _name in (
    "add",
    "discard",
    "remove",
    "pop",
    "clear",
    "update",
    "difference_update",
    "intersection_update",
    "symmetric_difference_update",
    "__ior__",
    "__iand__",
    "__isub__",
    "__ixor__",
):
    setattr(ObservedRoleSet, _name, _observed(_name))


class FakeMember:
    """A guild member; `role_ids` never contains @everyone, as in Discord's payloads."""

    def __init__(
        self,
        user_id: int,
        guild_id: int,
        username: str,
        role_ids: Iterable[int] = (),
        *,
        global_name: str | None = None,
        nick: str | None = None,
        bot: bool = False,
    ) -> None:
        self.user_id = user_id
        self.guild_id = guild_id
        self.username = username
        self.global_name = global_name
        self.nick = nick
        self.bot = bot
        self.avatar: str | None = None
        self.joined_at = now_iso()
        self.deaf = False
        self.mute = False
        self.flags = 0
        self._role_ids = ObservedRoleSet(role_ids)

    @property
    def role_ids(self) -> ObservedRoleSet:
        """Current role ids; mutating them (or assigning) notifies connected bots like a moderator's edit."""
        return self._role_ids

    @role_ids.setter
    def role_ids(self, role_ids: Iterable[int]) -> None:
        self._role_ids.replace(role_ids)

    @property
    def id(self) -> int:
        """Alias so members can be passed where ids are expected."""
        return self.user_id

    def __repr__(self) -> str:
        return f"<FakeMember id={self.user_id} username={self.username!r} roles={sorted(self._role_ids)}>"

    def user_payload(self) -> dict[str, Any]:
        """The user object (id, username, discriminator, global_name, avatar, ...)."""
        payload: dict[str, Any] = {
            "id": str(self.user_id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": self.avatar,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }
        if self.bot:
            payload["bot"] = True
        return payload

    def to_payload(self, *, with_user: bool = True) -> dict[str, Any]:
        """The guild member object; resolved interaction data leaves `user` out."""
        payload: dict[str, Any] = {
            "roles": [str(role_id) for role_id in sorted(self.role_ids)],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": self.deaf,
            "mute": self.mute,
            "pending": False,
            "flags": self.flags,
            "communication_disabled_until": None,
            "avatar_decoration_data": None,
        }
        if with_user:
            payload["user"] = self.user_payload()
        return payload


@dataclass
class PermissionOverwrite:
    """One channel permission overwrite: `type` 0 is a role (or @everyone, whose id is the guild's), 1 a member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    def to_payload(self) -> dict[str, Any]:
        """The overwrite object as in a channel's `permission_overwrites` (bit sets as strings)."""
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass
class FakeChannel:
    """A guild text channel (type 0); the bot posts logs and notices into these."""

    id: int
    guild_id: int
    name: str
    position: int = 0
    topic: str | None = None
    type: int = 0
    last_message_id: int | None = None
    overwrites: dict[int, PermissionOverwrite] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """The channel object as in GUILD_CREATE and interaction `channel`."""
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.to_payload() for o in self.overwrites.values()],
            "topic": self.topic,
            "nsfw": False,
            "last_message_id": None if self.last_message_id is None else str(self.last_message_id),
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


MESSAGE_KEYS = ("content", "embeds", "components", "attachments", "poll")
"""Message fields a send or edit body may set."""


def build_message(
    message_id: int,
    channel_id: int,
    guild_id: int | None,
    author: dict[str, Any],
    body: dict[str, Any],
    *,
    message_type: int = 0,
    application_id: int | None = None,
) -> dict[str, Any]:
    """The message object Discord returns for a send, filled from the request body."""
    message: dict[str, Any] = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "content": body.get("content") or "",
        "timestamp": now_iso(),
        "edited_timestamp": None,
        "tts": bool(body.get("tts", False)),
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": body.get("embeds") or [],
        "components": stored_components(body.get("components")),
        "pinned": False,
        "type": message_type,
        "flags": int(body.get("flags") or 0),
    }
    if guild_id is not None:
        message["guild_id"] = str(guild_id)
    if application_id is not None:
        message["application_id"] = str(application_id)
        message["webhook_id"] = str(application_id)
    return message


def apply_message_edit(message: dict[str, Any], body: dict[str, Any]) -> None:
    """Merge an edit body into a stored message; the ephemeral bit (64) survives, loading (128) ends."""
    for key in MESSAGE_KEYS:
        if key in body and body[key] is not None:
            message[key] = stored_components(body[key]) if key == "components" else body[key]
    if "flags" in body and body["flags"] is not None:
        message["flags"] = (message["flags"] & 64) | (int(body["flags"]) & ~(64 | 128))
    else:
        message["flags"] &= ~128
    message["edited_timestamp"] = now_iso()
