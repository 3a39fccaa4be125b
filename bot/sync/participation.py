"""Which servers act, and for which campaign: roles managed, admin changes accepted, webhooks and refreshes applied.

Anyone can add a public bot to their own server, so a server acts only when both hold:

- it follows a campaign (bot/sync/campaign_registry.py): it is bound to a campaign connected through the creator's
  own OAuth, or, for the `.env` campaign, the bot can tell it belongs to the creator: it is listed in
  `ALLOWED_GUILD_IDS`, or, when that list is empty, the bot is in no other server that isn't bound to a connected
  campaign (with two such servers and no list, the bot can't tell whose each is, so neither acts) and the `.env`
  campaign was never connected through OAuth. Once its creator connected it to a server, that is how the creator
  says which servers are theirs: a server left unbound (a stranger's, which a binding elsewhere made "the only
  one") never inherits it, even after that server disconnects;
- its admin turned the bot on there (`GuildSettings.enabled`, `/patreon-admin settings enabled:True`).

Anything else is refused with the sentence `refusal` returns, which `/patreon-admin check` shows too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from bot.store import Store
from bot.sync.campaign import CampaignService
from bot.sync.campaign_registry import CampaignRegistry

ENABLE_HINT = "an admin turns it on with `/patreon-admin settings enabled:True`"
NO_CAMPAIGN = (
    "This server doesn't follow a Patreon campaign yet; the server owner or an admin with Manage Server connects "
    "one with `/patreon-admin connect`."
)


def ownership_refusal(guild_id: int, allowed_guild_ids: Collection[int], bot_guild_ids: Collection[int]) -> str | None:
    """Why the bot can't tell that this server is the `.env` creator's, or None when it can (pure, for the tests).
    `bot_guild_ids`: the servers that could be the creator's (those bound to a connected campaign are not)."""
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
        self,
        store: Store,
        bot_guild_ids: Callable[[], Collection[int]],
        allowed_guild_ids: Collection[int],
        campaigns: CampaignRegistry,
    ) -> None:
        """`bot_guild_ids`: the servers the bot is in now (the gateway's `guild_ids`)."""
        self.store = store
        self.bot_guild_ids = bot_guild_ids
        self.allowed_guild_ids = frozenset(allowed_guild_ids)
        self.campaigns = campaigns

    async def campaign_for(self, guild_id: int) -> CampaignService | None:
        """The campaign this server follows, whether or not its admin turned the bot on (None: none)."""
        return (await self._follows(guild_id))[0]

    async def ownership_refusal(self, guild_id: int) -> str | None:
        """Why this server can't act for any campaign whatever its admin says, or None."""
        return (await self._follows(guild_id))[1]

    async def _follows(self, guild_id: int) -> tuple[CampaignService | None, str | None]:
        """(the campaign the server follows, None) or (None, why it follows none), from one look at the bindings."""
        bound = await self.store.guild_bindings()
        campaign_id = bound.get(guild_id)
        if campaign_id is not None:  # bound: that campaign or, when it is gone or revoked, none (not the .env one)
            service = self.campaigns.connected_service(campaign_id)
            return (service, None) if service is not None else (None, NO_CAMPAIGN)
        if self.campaigns.env is None or (self.campaigns.env_connected and not self.allowed_guild_ids):
            return None, NO_CAMPAIGN
        candidates = [g for g in self.bot_guild_ids() if g not in bound]
        problem = ownership_refusal(guild_id, self.allowed_guild_ids, candidates)
        return (None, problem) if problem is not None else (self.campaigns.env, None)

    async def refusal(self, guild_id: int) -> str | None:
        """Why this server doesn't take part right now, or None when it does."""
        problem = await self.ownership_refusal(guild_id)
        if problem is not None:
            return problem
        if not (await self.store.get_settings(guild_id)).enabled:
            return f"The bot doesn't manage Patreon roles in this server yet; {ENABLE_HINT}."
        return None

    async def acting_campaign(self, guild_id: int) -> CampaignService | None:
        """The campaign this server acts for now (followed and turned on), or None."""
        if await self.refusal(guild_id) is not None:
            return None
        return await self.campaign_for(guild_id)

    async def guild_ids(self) -> list[int]:
        """The servers the bot is in that take part."""
        return [guild_id for guild_id in self.bot_guild_ids() if await self.refusal(guild_id) is None]

    async def guild_ids_following(self, campaign: CampaignService) -> list[int]:
        """The servers the bot is in that act for this campaign."""
        return [g for g in self.bot_guild_ids() if await self.acting_campaign(g) is campaign]
