"""Which servers act for the campaign: roles managed, admin changes accepted, webhooks and refreshes applied.

Anyone can add a public bot to their own server, and every server the bot is in shares the one campaign. So a
server takes part only when both hold:

- the bot can tell it belongs to the creator: it is listed in `ALLOWED_GUILD_IDS`, or, when that list is empty,
  the bot is in no other server (with two servers and no list, the bot can't tell whose each is, so neither acts);
- its admin turned the bot on there (`GuildSettings.enabled`, `/patreon-admin settings enabled:True`).

Anything else is refused with the sentence `refusal` returns, which `/patreon-admin check` shows too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from bot.store import Store

ENABLE_HINT = "an admin turns it on with `/patreon-admin settings enabled:True`"


def ownership_refusal(guild_id: int, allowed_guild_ids: Collection[int], bot_guild_ids: Collection[int]) -> str | None:
    """Why the bot can't tell that this server is the creator's, or None when it can (pure, for the tests)."""
    if allowed_guild_ids:
        if guild_id in allowed_guild_ids:
            return None
        return (
            "This server isn't one of the creator's servers (ALLOWED_GUILD_IDS), so the bot doesn't act for the "
            "campaign here."
        )
    others = set(bot_guild_ids) - {guild_id}
    if not others:
        return None
    return (
        f"The bot is in {len(others) + 1} servers and can't tell which are the creator's, so it acts in none; the "
        "bot's owner lists them in ALLOWED_GUILD_IDS."
    )


class Participation:
    def __init__(
        self, store: Store, bot_guild_ids: Callable[[], Collection[int]], allowed_guild_ids: Collection[int]
    ) -> None:
        """`bot_guild_ids`: the servers the bot is in now (the gateway's `guild_ids`)."""
        self.store = store
        self.bot_guild_ids = bot_guild_ids
        self.allowed_guild_ids = frozenset(allowed_guild_ids)

    def ownership_refusal(self, guild_id: int) -> str | None:
        """Why this server can't act for the campaign whatever its admin says, or None."""
        return ownership_refusal(guild_id, self.allowed_guild_ids, self.bot_guild_ids())

    async def refusal(self, guild_id: int) -> str | None:
        """Why this server doesn't take part right now, or None when it does."""
        problem = self.ownership_refusal(guild_id)
        if problem is not None:
            return problem
        if not (await self.store.get_settings(guild_id)).enabled:
            return f"The bot doesn't manage Patreon roles in this server yet; {ENABLE_HINT}."
        return None

    async def guild_ids(self) -> list[int]:
        """The servers the bot is in that take part."""
        return [guild_id for guild_id in self.bot_guild_ids() if await self.refusal(guild_id) is None]
