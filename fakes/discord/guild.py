"""One guild of the fake Discord and the platform rules for changing members' roles and nicknames.

Why: the bot's correctness hinges on what Discord refuses. A refusal here raises DiscordAPIError before
anything changes, so a refused call leaves the guild exactly as it was, as on the real platform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import errors
from .models import FakeChannel, FakeMember, FakeRole, PermissionOverwrite, now_iso
from .permissions import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    BOT_ROLE_DEFAULT,
    CHANGE_NICKNAME,
    EVERYONE_DEFAULT,
    MANAGE_NICKNAMES,
    MANAGE_ROLES,
    apply_overwrites,
)

EventSink = Callable[[str, dict[str, Any]], None]
"""Receives (event name, payload) for every gateway dispatch the guild's changes cause."""

DEFAULT_BOT_ROLE_POSITION = 50

RoleRef = int | FakeRole


def _role_id(role: RoleRef) -> int:
    return role.id if isinstance(role, FakeRole) else int(role)


class FakeGuild:
    """A guild: roles (with @everyone), members (with the bot), text channels and the owner."""

    def __init__(
        self,
        guild_id: int,
        *,
        name: str,
        owner_id: int,
        bot_user_id: int,
        bot_username: str,
        bot_role_id: int,
        emit: EventSink,
    ) -> None:
        self.id = guild_id
        self.name = name
        self.owner_id = owner_id
        self.bot_user_id = bot_user_id
        self.created_at = now_iso()
        self._emit = emit
        self.roles: dict[int, FakeRole] = {
            guild_id: FakeRole(guild_id, guild_id, "@everyone", position=0, permissions=EVERYONE_DEFAULT)
        }
        self.members: dict[int, FakeMember] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.bot_role_id = bot_role_id
        self.roles[bot_role_id] = FakeRole(
            bot_role_id,
            guild_id,
            bot_username,
            position=DEFAULT_BOT_ROLE_POSITION,
            permissions=BOT_ROLE_DEFAULT,
            managed=True,
            bot_id=bot_user_id,
        )
        self.members[bot_user_id] = self._watch(
            FakeMember(bot_user_id, guild_id, bot_username, {bot_role_id}, bot=True)
        )

    # ---- test set-up -------------------------------------------------------------------------

    def add_role(
        self,
        role_id: int,
        name: str,
        *,
        position: int = 1,
        permissions: int = 0,
        managed: bool = False,
        color: int = 0,
    ) -> FakeRole:
        """Create a role (dispatches GUILD_ROLE_CREATE to connected bots)."""
        if role_id in self.roles:
            raise ValueError(f"role {role_id} already exists in guild {self.id}")
        role = FakeRole(role_id, self.id, name, position, permissions, managed, color)
        self.roles[role_id] = role
        self._emit("GUILD_ROLE_CREATE", {"guild_id": str(self.id), "role": role.to_payload()})
        return role

    def update_role(self, role_id: int, *, position: int | None = None, permissions: int | None = None) -> FakeRole:
        """Change a role's position or permissions out of band, as a server admin would."""
        role = self.role(role_id)
        if position is not None:
            role.position = position
        if permissions is not None:
            role.permissions = permissions
        self._emit("GUILD_ROLE_UPDATE", {"guild_id": str(self.id), "role": role.to_payload()})
        return role

    def delete_role(self, role_id: int) -> None:
        """Delete a role, as a server admin would in the role settings (DELETE /guilds/{g}/roles/{r}): it goes from
        the guild and from every member who held it, and bots get GUILD_ROLE_DELETE (guild_id, role_id) and no
        member update (Discord staff, discord/discord-api-docs#1815: "we iterate over the entire member list to
        remove the role"). @everyone and managed roles can't be deleted."""
        role = self.role(role_id)
        if role.is_default or role.managed:
            raise ValueError(f"role {role_id} can't be deleted")
        del self.roles[role_id]
        for member in self.members.values():
            if role_id in member.role_ids:
                member.role_ids.replace(member.role_ids - {role_id}, notify=False)
        self._emit("GUILD_ROLE_DELETE", {"guild_id": str(self.id), "role_id": str(role_id)})

    def set_bot_permissions(
        self,
        manage_roles: bool | None = None,
        *,
        administrator: bool | None = None,
        permissions: int | None = None,
        position: int | None = None,
    ) -> FakeRole:
        """Toggle Manage Roles / Administrator on the bot's managed role, or set its bits or position."""
        role = self.bot_role
        bits = role.permissions if permissions is None else permissions
        for flag, wanted in ((MANAGE_ROLES, manage_roles), (ADMINISTRATOR, administrator)):
            if wanted is True:
                bits |= flag
            elif wanted is False:
                bits &= ~flag
        return self.update_role(role.id, position=position, permissions=bits)

    def add_member(
        self,
        user_id: int,
        username: str | None = None,
        *,
        roles: Iterable[RoleRef] = (),
        nick: str | None = None,
        global_name: str | None = None,
        bot: bool = False,
    ) -> FakeMember:
        """Add a member (dispatches GUILD_MEMBER_ADD, i.e. on_member_join, to connected bots)."""
        if user_id in self.members:
            raise ValueError(f"user {user_id} is already a member of guild {self.id}")
        role_ids = {_role_id(role) for role in roles}
        unknown = role_ids - self.roles.keys()
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)} for guild {self.id}")
        role_ids.discard(self.id)
        member = FakeMember(
            user_id, self.id, username or f"user{user_id}", role_ids, global_name=global_name, nick=nick, bot=bot
        )
        self.members[user_id] = self._watch(member)
        self._emit("GUILD_MEMBER_ADD", {**member.to_payload(), "guild_id": str(self.id)})
        return member

    def remove_member(self, user_id: int) -> None:
        """Remove a member, as if they left (dispatches GUILD_MEMBER_REMOVE)."""
        member = self.member(user_id)
        del self.members[user_id]
        self._emit("GUILD_MEMBER_REMOVE", {"guild_id": str(self.id), "user": member.user_payload()})

    def set_member_roles(self, user_id: int, roles: Iterable[RoleRef]) -> FakeMember:
        """Replace a member's roles out of band, as a human moderator would (no permission checks)."""
        member = self.member(user_id)
        role_ids = {_role_id(role) for role in roles} - {self.id}
        unknown = role_ids - self.roles.keys()
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)} for guild {self.id}")
        member.role_ids.replace(role_ids, notify=False)
        self._emit_member_update(member)
        return member

    def add_text_channel(self, channel_id: int, name: str = "general", *, topic: str | None = None) -> FakeChannel:
        """Create a text channel (dispatches CHANNEL_CREATE)."""
        if channel_id in self.channels:
            raise ValueError(f"channel {channel_id} already exists")
        channel = FakeChannel(channel_id, self.id, name, position=len(self.channels), topic=topic)
        self.channels[channel_id] = channel
        self._emit("CHANNEL_CREATE", channel.to_payload())
        return channel

    def set_channel_overwrite(self, channel_id: int, target_id: int, *, allow: int = 0, deny: int = 0) -> FakeChannel:
        """Set (or, with both 0, remove) a channel's overwrite for a role or member, as an admin would; the target's
        kind follows from the id (a role id, else a member). Dispatches CHANNEL_UPDATE, so the bot's cache follows.
        """
        channel = self.channels[channel_id]
        if target_id not in self.roles and target_id not in self.members:
            raise ValueError(f"{target_id} is neither a role nor a member of guild {self.id}")
        if allow or deny:
            kind = 0 if target_id in self.roles else 1
            channel.overwrites[target_id] = PermissionOverwrite(target_id, kind, allow, deny)
        else:
            channel.overwrites.pop(target_id, None)
        self._emit("CHANNEL_UPDATE", channel.to_payload())
        return channel

    # ---- lookups -------------------------------------------------------------------------------

    def member(self, user_id: int) -> FakeMember:
        """The member, or KeyError."""
        return self.members[user_id]

    def role(self, role_id: int) -> FakeRole:
        """The role, or KeyError."""
        return self.roles[role_id]

    @property
    def everyone(self) -> FakeRole:
        """The @everyone role."""
        return self.roles[self.id]

    @property
    def bot_role(self) -> FakeRole:
        """The bot's managed integration role."""
        return self.roles[self.bot_role_id]

    @property
    def bot_member(self) -> FakeMember:
        """The bot's own member."""
        return self.members[self.bot_user_id]

    def permissions_of(self, user_id: int) -> int:
        """Guild-level permissions: owner and Administrator get everything (channel overwrites not modelled)."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.member(user_id)
        bits = self.everyone.permissions
        for role_id in member.role_ids & self.roles.keys():
            bits |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if bits & ADMINISTRATOR else bits

    def channel_permissions_of(self, user_id: int, channel_id: int) -> int:
        """Permissions in one channel: the guild-level ones with the channel's overwrites applied (permissions.py)."""
        base = self.permissions_of(user_id)
        if user_id == self.owner_id:
            return base
        channel = self.channels[channel_id]
        member = self.member(user_id)
        pairs = {o.id: (o.allow, o.deny) for o in channel.overwrites.values()}
        roles = [pairs[r] for r in sorted(member.role_ids) if r in pairs and r != self.id]
        return apply_overwrites(base, everyone=pairs.get(self.id), roles=roles, member=pairs.get(user_id))

    def top_rank(self, user_id: int) -> tuple[int, int]:
        """Rank of the member's highest role (@everyone if none)."""
        member = self.member(user_id)
        ranks = [self.roles[r].rank() for r in member.role_ids & self.roles.keys()]
        return max(ranks, default=self.everyone.rank())

    # ---- REST-side mutations (the bot acting) ----------------------------------------------------

    def check_role_change(self, user_id: int, changed: set[int]) -> FakeMember:
        """Apply Discord's rules to the bot adding/removing `changed` roles; raise on any refusal."""
        member = self.members.get(user_id)
        if member is None:
            raise errors.unknown_member()
        if any(role_id not in self.roles for role_id in changed):
            raise errors.unknown_role()
        if not changed:
            return member
        bot_is_owner = self.bot_user_id == self.owner_id
        if not bot_is_owner and not self.permissions_of(self.bot_user_id) & MANAGE_ROLES:
            raise errors.missing_permissions()
        bot_top = self.top_rank(self.bot_user_id)
        for role_id in changed:
            role = self.roles[role_id]
            if role.managed or role.is_default:
                raise errors.missing_permissions()
            if not bot_is_owner and role.rank() >= bot_top:
                raise errors.missing_permissions()
        return member

    def add_member_role(self, user_id: int, role_id: int) -> None:
        """PUT /members/{u}/roles/{r}: idempotent; dispatches GUILD_MEMBER_UPDATE when something changed."""
        member = self.check_role_change(user_id, {role_id})
        member.role_ids.add(role_id)

    def remove_member_role(self, user_id: int, role_id: int) -> None:
        """DELETE /members/{u}/roles/{r}: idempotent; dispatches GUILD_MEMBER_UPDATE when something changed."""
        member = self.check_role_change(user_id, {role_id})
        member.role_ids.discard(role_id)

    def edit_member(self, user_id: int, body: dict[str, Any]) -> FakeMember:
        """PATCH /members/{u}: `roles` is the full new list (@everyone in it is ignored, as Discord does)."""
        member = self.members.get(user_id)
        if member is None:
            raise errors.unknown_member()
        new_roles: set[int] | None = None
        if body.get("roles") is not None:
            new_roles = {int(role_id) for role_id in body["roles"]} - {self.id}
            self.check_role_change(user_id, new_roles ^ member.role_ids)
        if "nick" in body:
            self._check_nick_change(user_id)
        changed = False
        if new_roles is not None:
            changed = member.role_ids.replace(new_roles, notify=False)
        if "nick" in body and body["nick"] != member.nick:
            member.nick = body["nick"] or None
            changed = True
        if changed:
            self._emit_member_update(member)
        return member

    def _check_nick_change(self, user_id: int) -> None:
        """Own nick needs Change Nickname; others' need Manage Nicknames and a higher top role; owner is untouchable."""
        bot = self.bot_user_id
        if bot == self.owner_id:
            return
        perms = self.permissions_of(bot)
        if user_id == bot:
            if not perms & (CHANGE_NICKNAME | MANAGE_NICKNAMES):
                raise errors.missing_permissions()
            return
        if user_id == self.owner_id or not perms & MANAGE_NICKNAMES or self.top_rank(user_id) >= self.top_rank(bot):
            raise errors.missing_permissions()

    def _watch(self, member: FakeMember) -> FakeMember:
        """Route in-place role edits made by tests to GUILD_MEMBER_UPDATE."""
        member.role_ids.on_change = lambda: self._emit_member_update(member)
        return member

    def _emit_member_update(self, member: FakeMember) -> None:
        self._emit("GUILD_MEMBER_UPDATE", {**member.to_payload(), "guild_id": str(self.id)})

    # ---- payloads ------------------------------------------------------------------------------

    def to_payload(self, *, with_state: bool = False) -> dict[str, Any]:
        """The guild object; `with_state` adds the GUILD_CREATE extras (members, channels, ...)."""
        payload: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [role.to_payload() for role in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
            "max_video_channel_users": 25,
        }
        if with_state:
            payload.update(
                {
                    "joined_at": self.created_at,
                    "large": len(self.members) > 250,
                    "unavailable": False,
                    "member_count": len(self.members),
                    "members": [member.to_payload() for member in self.members.values()],
                    "channels": [channel.to_payload() for channel in self.channels.values()],
                    "threads": [],
                    "presences": [],
                    "voice_states": [],
                    "stage_instances": [],
                    "guild_scheduled_events": [],
                    "soundboard_sounds": [],
                    "embedded_activities": [],
                    "lazy": True,
                }
            )
        return payload
