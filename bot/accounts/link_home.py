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

So the server is chosen after Patreon's answer, among the servers that take part and have him: the first whose
campaign holds his membership (Patreon's `identity.memberships`, or the membership the creator's side stored), an
active pledge before a declined one before any other membership, then the lowest id. When none does but the whole
install serves one campaign, the first of them: they are all that creator's, the verification was for that
creator's role, and his roles follow once he pledges, as with `/patreon link`. Otherwise nothing is linked (the
rule auto-match follows): another creator's server has no claim on his Patreon name, and a link owned by no server
could be removed by any server's admin.

Any process takes the callback (README, shards), and a process holds only its shards' servers (review 6, R6-4): so
the servers that take part are those the store knows (bindings, `ALLOWED_GUILD_IDS`) as well as this process's, and
whether he is in one this process doesn't hold is asked of Discord (`GET /guilds/{g}/members/{u}`) when it is the
one chosen, at most `MAX_REMOTE_CHECKS` of them per verification.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from bot.domain.models import Identity, MembershipSnapshot, PatronStatus
from bot.store import Store
from bot.sync.campaign import CampaignService
from bot.sync.participation import Participation
from bot.sync.reconcile import ReconcileService

log = logging.getLogger(__name__)

#: An active pledge first, then a declined one (still paying, Patreon retries), then any other membership.
_RANK: dict[PatronStatus | None, int] = {PatronStatus.ACTIVE: 0, PatronStatus.DECLINED: 1}
#: Servers of other processes asked about per verification, at most (each is a REST call or two).
MAX_REMOTE_CHECKS = 20


class ServerMembers(Protocol):
    """Discord asked whether a user is in a server (bot/discord_io/admin_lookup.py is the real one)."""

    async def is_member(self, guild_id: int, user_id: int) -> bool | None:
        """None: Discord didn't answer."""
        ...


@dataclass(frozen=True)
class LinkHome:
    guild_id: int
    campaign: CampaignService


class LinkHomes:
    def __init__(
        self,
        reconcile: ReconcileService,
        store: Store,
        participation: Participation | None = None,
        members: ServerMembers | None = None,
        listed_guild_ids: Collection[int] = (),
    ) -> None:
        """`participation` None: the engine alone (tests), only this process's servers. `members` None: no Discord
        in this process, so servers it doesn't hold can't be confirmed and are left out. `listed_guild_ids`: the
        `.env` campaign's ALLOWED_GUILD_IDS (with shards, every server of the `.env` creator is listed there)."""
        self._reconcile = reconcile
        self._store = store
        self._participation = participation
        self._members = members
        self._listed = frozenset(listed_guild_ids)

    async def servers_with(self, user_id: int) -> list[int]:
        """The servers that take part and may have the user, by id: this process's that have him, and every one
        this process doesn't hold (confirmed over REST only when chosen). Empty: he can't be in any."""
        held = set(await self._reconcile.acting_guild_ids())
        here = set(await self._reconcile.member_guilds(user_id))
        found: list[int] = []
        for guild_id in await self._taking_part(held):
            if guild_id not in held:
                if self._members is not None:
                    found.append(guild_id)
            elif guild_id in here and await self._reconcile.plan_member(guild_id, user_id, explain=False) is not None:
                found.append(guild_id)
        return found

    async def home_of(
        self, user_id: int, servers: list[int], identity: Identity, fallback: CampaignService
    ) -> LinkHome | None:
        """The first of `servers` whose campaign holds this Patreon identity's membership (the ranking above) and
        that has him; else, when the whole install serves one campaign, the first of them that has him; else None.

        `fallback` is the campaign of a server without participation (the engine alone, in tests)."""
        held = set(await self._reconcile.acting_guild_ids())
        memberships: dict[str, MembershipSnapshot | None] = {}
        ranked: list[tuple[tuple[int, int], LinkHome]] = []
        others: list[LinkHome] = []
        for guild_id in servers:
            campaign = await self._reconcile.campaign_for(guild_id, fallback=fallback)
            if campaign is None:
                continue
            key = await campaign.storage_key()
            if key not in memberships:
                found = identity.membership_for(await campaign.campaign_id())
                memberships[key] = found or await self._store.get_membership(identity.user.id, key)
            membership = memberships[key]
            if membership is None:
                others.append(LinkHome(guild_id, campaign))
            else:
                ranked.append(((_RANK.get(membership.patron_status, 2), guild_id), LinkHome(guild_id, campaign)))
        candidates = [home for _, home in sorted(ranked, key=lambda pair: pair[0])]
        if not candidates and await self._one_campaign(held, fallback):
            candidates = others
        budget = MAX_REMOTE_CHECKS
        for home in candidates:
            if home.guild_id in held:
                return home  # servers_with saw him there
            if self._members is None or budget == 0:
                break
            budget -= 1
            present = await self._members.is_member(home.guild_id, user_id)
            if present:
                return home
            if present is None:
                log.warning("link home: guild=%s user=%s, Discord didn't say whether a member", home.guild_id, user_id)
        return None

    async def _taking_part(self, held: set[int]) -> list[int]:
        """Every server that takes part: this process's, and those the store knows that take part, by id."""
        if self._participation is None:
            return sorted(held)
        known = (set(await self._store.guild_bindings()) | self._listed) - held
        return sorted({*held, *[guild_id for guild_id in known if await self._participation.refusal(guild_id) is None]})

    async def _one_campaign(self, held: set[int], fallback: CampaignService) -> bool:
        """Whether every server that takes part, in the whole install, follows one campaign."""
        keys: set[str] = set()
        for guild_id in await self._taking_part(held):
            campaign = await self._reconcile.campaign_for(guild_id, fallback=fallback)
            if campaign is not None:
                keys.add(await campaign.storage_key())
        return len(keys) == 1
