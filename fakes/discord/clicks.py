"""A person clicking a button: which clicks Discord could ever send, and the INTERACTION_CREATE it sends for one.

Why: the bot must trust only what Discord vouches for (the clicker, their server, the message). So the test API
refuses clicks a Discord client can't make, instead of sending the bot an interaction Discord never would: a
button that isn't on that message, a link button (it opens a URL and sends nothing), a disabled button, a message
in a channel the person can't see or in another server, or someone else's ephemeral message.
Sources: discord/discord-api-docs `docs/components/reference` (link buttons send no interaction; disabled
components can't be used) and `docs/interactions/receiving-and-responding.mdx` (the component interaction).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .components import BUTTON, LINK_STYLE, find_interactive
from .interactions import EPHEMERAL, build_component_payload
from .permissions import VIEW_CHANNEL

if TYPE_CHECKING:
    from .guild import FakeGuild
    from .server import FakeDiscord


def find_message(fake: FakeDiscord, channel_id: int, message_id: int) -> dict[str, Any] | None:
    """A message in a channel: one the bot posted, or an interaction response (ephemeral ones included)."""
    wanted = str(message_id)
    for message in fake.channel_messages.get(channel_id, []):
        if message["id"] == wanted:
            return message
    for record in reversed(fake.interactions):
        for answer in (record.original, *record.followups.values()):
            if answer is not None and answer["id"] == wanted and answer["channel_id"] == str(channel_id):
                return answer
    return None


def _ephemeral_recipient(fake: FakeDiscord, message: dict[str, Any]) -> str | None:
    """The only user who sees an ephemeral message: the one whose interaction it answered."""
    for record in fake.interactions:
        if any(message is answer for answer in (record.original, *record.followups.values())):
            return str(record.payload.get("member", {}).get("user", {}).get("id"))
    return None


def click_payload(
    fake: FakeDiscord,
    guild: FakeGuild,
    user_id: int,
    channel_id: int,
    message_id: int,
    custom_id: str,
    *,
    interaction_id: int,
    token: str,
    locale: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(INTERACTION_CREATE payload, the stored message clicked); raises LookupError/PermissionError/ValueError for a
    click no Discord client can make."""
    member = guild.members.get(user_id)
    if member is None:
        raise LookupError(f"user {user_id} is not a member of guild {guild.id}")
    channel = guild.channels.get(channel_id)
    if channel is None:
        raise LookupError(f"channel {channel_id} is not in guild {guild.id}; a click happens where the message is")
    if not guild.channel_permissions_of(user_id, channel_id) & VIEW_CHANNEL:
        raise PermissionError(f"user {user_id} cannot see channel {channel_id}")
    message = find_message(fake, channel_id, message_id)
    if message is None:
        raise LookupError(f"no message {message_id} in channel {channel_id}")
    if message.get("flags", 0) & EPHEMERAL and _ephemeral_recipient(fake, message) != str(user_id):
        raise PermissionError(f"message {message_id} is ephemeral and only its recipient sees it")
    component = find_interactive(message, custom_id)
    if component is None:
        raise LookupError(f"message {message_id} has no component with custom_id {custom_id!r}; Discord never sends it")
    if component.get("type") == BUTTON and component.get("style") == LINK_STYLE:
        raise ValueError("a link button opens its URL and sends no interaction")
    if component.get("disabled"):
        raise PermissionError(f"the component {custom_id!r} is disabled")
    payload = build_component_payload(
        interaction_id=interaction_id,
        token=token,
        application_id=fake.application_id,
        guild=guild,
        member=member,
        channel=channel.to_payload(),
        message=message,
        component=component,
        locale=locale,
    )
    return payload, message
