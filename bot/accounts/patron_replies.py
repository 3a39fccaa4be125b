"""What a patron is answered by `/patreon link`, `/patreon unlink` and the panel's buttons alike.

Both faces (cogs/patron.py, cogs/panel.py) call these with the interaction's own user and server, so a click
and a command can't drift apart, and neither takes anything else from the message or the options.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.accounts.link_flow import LinkFlow
from bot.accounts.linking import LinkingService
from bot.store import Store

NOT_LINKED = "Your Discord account isn't linked to Patreon."


@dataclass(frozen=True)
class LinkOffer:
    """The ephemeral answer: `text` above a link button to `url`."""

    url: str
    text: str


async def offer_link(link_flow: LinkFlow, store: Store, guild_id: int, user_id: int) -> LinkOffer:
    """The link button for this user in this server; raises LinkRefused (a sentence to answer) where linking
    can't start."""
    url = await link_flow.button_url(guild_id, user_id)
    existing = await store.get_link_by_discord(user_id)
    already = (
        f"You're already linked (Patreon user `{existing.patreon_user_id}`); signing in again refreshes it, "
        "or switches to another Patreon account. "
        if existing
        else ""
    )
    return LinkOffer(
        url=url,
        text=f"{already}Press the button to sign in with Discord, then Patreon. It works only for you, in one "
        "browser, once, for 15 minutes. Your roles arrive as soon as you're back.",
    )


async def unlink_reply(linking: LinkingService, user_id: int) -> str:
    """Unlink this user (everywhere, as `/patreon unlink` does) and say what happened."""
    result = await linking.unlink(user_id)
    if not result.was_linked:
        return NOT_LINKED
    return f"Unlinked. {result.describe()} Roles you got any other way were left alone."
