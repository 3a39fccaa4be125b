"""The Link-account panel's pure parts: its fixed custom_ids and the text it shows.

The panel is one message an admin posts once (`/patreon-admin panel`); its buttons are persistent components, so
their `custom_id`s are constants that every start-up registers again and that messages posted months ago still
carry. Nothing here reads the message a click came from: the clicker and the server of the interaction decide
everything (cogs/panel.py). The explanation is made from the server's tier→role mapping, so `map` and `unmap`
re-render it.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.domain.models import Tier, TierRoleMap
from bot.domain.money import DEFAULT_CURRENCY, format_money

_PREFIX = "patreon-panel"
#: The panel's buttons. Short and versioned by name: Discord allows 100 characters, and an id once posted is kept.
LINK_ID = f"{_PREFIX}:link"
STATUS_ID = f"{_PREFIX}:status"
UNLINK_ID = f"{_PREFIX}:unlink"
#: The ephemeral confirm/cancel of Unlink: `patreon-panel:unlink-yes:<user id>`. The id names whom it is for, and
#: a click by anyone else is refused (Discord already shows an ephemeral message only to its recipient).
UNLINK_ANSWER_TEMPLATE = rf"{_PREFIX}:unlink-(?P<answer>yes|no):(?P<user_id>[0-9]{{1,20}})"

DEFAULT_TITLE = "Get your Patreon roles"
DEFAULT_TEXT = (
    "Support us on Patreon? Press **Link account**: Discord confirms it's you, then Patreon, and your roles "
    "arrive as soon as you're back."
)
MAX_TITLE = 100
MAX_TEXT = 1000
#: Discord's limit for a message's content.
MAX_CONTENT = 2000


def unlink_answer_id(answer: str, user_id: int) -> str:
    """The custom_id of the confirm ("yes") or cancel ("no") button shown to `user_id`."""
    return f"{_PREFIX}:unlink-{answer}:{user_id}"


def panel_content(
    title: str | None,
    text: str | None,
    tiers: Mapping[str, Tier],
    mapping: TierRoleMap,
    currency: str = DEFAULT_CURRENCY,
) -> str:
    """The panel's message: the title, the admin's text, and which tiers give which roles here (most expensive
    first). Roles are mentions, which the bot sends without pinging anyone."""
    lines = [f"## {(title or DEFAULT_TITLE)[:MAX_TITLE]}", (text or DEFAULT_TEXT)[:MAX_TEXT], ""]
    mapped = [
        (tiers.get(tier_id, Tier(id=tier_id, title=f"tier {tier_id}")), roles)
        for tier_id, roles in mapping.roles_by_tier.items()
        if roles
    ]
    if mapped:
        lines.append("**What each tier gives here**")
        for tier, roles in sorted(mapped, key=lambda item: (-item[0].amount_cents, item[0].title, item[0].id)):
            price = f" ({format_money(tier.amount_cents, currency)})" if tier.amount_cents else ""
            given = ", ".join(f"<@&{role_id}>" for role_id in sorted(roles))
            lines.append(f"• **{tier.title or tier.id}**{price} → {given}")
    else:
        lines.append("No tier gives a role here yet.")
    lines += ["", "**Check my roles** shows why you have each role; **Unlink** forgets your Patreon link."]
    content = "\n".join(lines)
    return content if len(content) <= MAX_CONTENT else content[: MAX_CONTENT - 1] + "…"


def invitation_content(user_id: int) -> str:
    """What a new member is told once, in the welcome channel, above the Link account button."""
    return (
        f"Welcome <@{user_id}>! If you support us on Patreon, press **Link account** to get your patron roles "
        "here; it only takes Discord's and Patreon's sign-in."
    )


def poster_refusal(channel: str, *, owner: bool, can_view: bool, can_send: bool, old: bool = False) -> str | None:
    """Why this admin may not have the bot post (or, `old`, delete) the panel in `channel`: the panel carries the
    admin's own title and text, so the bot posts only where the admin could post by hand (View Channel and Send
    Messages there, overwrites included); the server owner may anywhere. None when they may."""
    if owner or (can_view and can_send):
        return None
    where = f"the panel's current channel, {channel}," if old else channel
    return f"You can't post in {where} yourself, so the bot won't post the panel there for you; nothing was changed."
