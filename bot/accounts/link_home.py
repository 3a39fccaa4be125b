"""Which server a link made without a button lands in: the Linked Roles verification (review 5, R5-6).

`/patreon link` is pressed in a server, so its link belongs there. Discord opens the verification URL from a role's
Links requirement instead, with no server; the link's server still matters: its log channel is told "<@bob> linked
Patreon account Bob", its admins may `unlink-user` him, and its campaign's membership is the one checked and shown
on the result page. What the patron and the admins expect:

- the patron: the link behaves as if he had pressed `/patreon link` in the server of the creator he pays, and no
  other creator's server hears his Patreon name from it;
- the admins of that server: his link line in their log, and the link theirs to manage, as for any patron of theirs;
- the admins of a server he is merely a member of (another creator's campaign): nothing, neither his name in their
  log nor a link they could remove.

So the server is chosen after Patreon's answer, among the servers acting for a campaign that have him: the first
whose campaign holds his membership (Patreon's `identity.memberships`, or the membership the creator's side stored),
an active pledge before a declined one before any other membership, then the lowest id. When none does but all of
them follow one campaign (every single-campaign install), the first of them: they are all that creator's, the
verification was for that creator's role, and his roles follow once he pledges, as with `/patreon link`. Otherwise
nothing is linked (the rule auto-match follows): another creator's server has no claim on his Patreon name, and a
link owned by no server could be removed by any server's admin.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.models import Identity, PatronStatus
from bot.store import Store
from bot.sync.campaign import CampaignService
from bot.sync.reconcile import ReconcileService

#: An active pledge first, then a declined one (still paying, Patreon retries), then any other membership.
_RANK: dict[PatronStatus | None, int] = {PatronStatus.ACTIVE: 0, PatronStatus.DECLINED: 1}


@dataclass(frozen=True)
class LinkHome:
    guild_id: int
    campaign: CampaignService


async def servers_with(reconcile: ReconcileService, user_id: int) -> list[int]:
    """The servers acting for a campaign that have the user, by id: where a link without a button may land."""
    return [
        guild_id
        for guild_id in sorted(await reconcile.member_guilds(user_id))
        if await reconcile.plan_member(guild_id, user_id, explain=False) is not None
    ]


async def home_of(
    reconcile: ReconcileService,
    store: Store,
    servers: list[int],
    identity: Identity,
    fallback: CampaignService,
) -> LinkHome | None:
    """The first of `servers` whose campaign holds this Patreon identity's membership (the ranking above); else,
    when they all follow one campaign, the first of them; else None.

    `fallback` is the campaign of a server without participation (the engine alone, in tests)."""
    best: tuple[tuple[int, int], LinkHome] | None = None
    followed: dict[str, LinkHome] = {}
    for guild_id in servers:
        campaign = await reconcile.campaign_for(guild_id, fallback=fallback)
        if campaign is None:
            continue
        followed.setdefault(await campaign.storage_key(), LinkHome(guild_id, campaign))
        membership = identity.membership_for(await campaign.campaign_id())
        if membership is None:
            membership = await store.get_membership(identity.user.id, await campaign.storage_key())
        if membership is None:
            continue
        rank = (_RANK.get(membership.patron_status, 2), guild_id)
        if best is None or rank < best[0]:
            best = (rank, LinkHome(guild_id, campaign))
    if best is not None:
        return best[1]
    return next(iter(followed.values())) if len(followed) == 1 else None
