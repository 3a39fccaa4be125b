"""Discord permission bits and intent bits the fake needs to apply the platform's rules."""

from __future__ import annotations

CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
CHANGE_NICKNAME = 1 << 26
MANAGE_NICKNAMES = 1 << 27
MANAGE_ROLES = 1 << 28
USE_APPLICATION_COMMANDS = 1 << 31

ALL_PERMISSIONS = (1 << 53) - 1

EVERYONE_DEFAULT = (
    CREATE_INSTANT_INVITE
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
)
"""What a fresh guild's @everyone role allows."""

BOT_ROLE_DEFAULT = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | READ_MESSAGE_HISTORY | MANAGE_ROLES
"""What the bot's managed role allows unless a test changes it."""

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9

EVENT_INTENTS: dict[str, int] = {
    "GUILD_CREATE": INTENT_GUILDS,
    "GUILD_UPDATE": INTENT_GUILDS,
    "GUILD_DELETE": INTENT_GUILDS,
    "GUILD_ROLE_CREATE": INTENT_GUILDS,
    "GUILD_ROLE_UPDATE": INTENT_GUILDS,
    "GUILD_ROLE_DELETE": INTENT_GUILDS,
    "CHANNEL_CREATE": INTENT_GUILDS,
    "CHANNEL_UPDATE": INTENT_GUILDS,
    "CHANNEL_DELETE": INTENT_GUILDS,
    "GUILD_MEMBER_ADD": INTENT_GUILD_MEMBERS,
    "GUILD_MEMBER_UPDATE": INTENT_GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": INTENT_GUILD_MEMBERS,
    "MESSAGE_CREATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_UPDATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_DELETE": INTENT_GUILD_MESSAGES,
}
"""Which intent a dispatch needs; events not listed (READY, INTERACTION_CREATE, ...) always go out."""

MANAGE_MESSAGES = 1 << 13
ATTACH_FILES = 1 << 15
MENTION_EVERYONE = 1 << 17
SEND_TTS_MESSAGES = 1 << 12

_NEEDS_SEND = MENTION_EVERYONE | SEND_TTS_MESSAGES | ATTACH_FILES | EMBED_LINKS
"""Bits Discord treats as denied in a channel where Send Messages is denied (its "implicit permissions")."""


def apply_overwrites(
    base: int,
    *,
    everyone: tuple[int, int] | None,
    roles: list[tuple[int, int]],
    member: tuple[int, int] | None,
) -> int:
    """A member's permissions in one channel from their guild-level `base` and the channel's (allow, deny) pairs.

    Discord's order (docs/topics/Permissions.md in discord/discord-api-docs, "Permission Overwrites"): Administrator
    short-circuits to everything; then the @everyone overwrite (deny, then allow); then every role overwrite of the
    member at once (all denies, then all allows); then the member's own overwrite. Last, the implicit rules: without
    View Channel nothing else applies, and without Send Messages the bits that ride on sending go too.
    """
    if base & ADMINISTRATOR:
        return ALL_PERMISSIONS
    bits = base
    if everyone is not None:
        bits = (bits & ~everyone[1]) | everyone[0]
    role_allow = role_deny = 0
    for allow, deny in roles:
        role_allow |= allow
        role_deny |= deny
    bits = (bits & ~role_deny) | role_allow
    if member is not None:
        bits = (bits & ~member[1]) | member[0]
    if not bits & VIEW_CHANNEL:
        return 0
    if not bits & SEND_MESSAGES:
        bits &= ~_NEEDS_SEND
    return bits
