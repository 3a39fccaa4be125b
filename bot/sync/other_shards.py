"""Work for the servers other bot processes own, handed to them through the shared database.

With shards (bot/domain/shards.py) each process changes roles only in its own shards' servers: discord.py holds
nothing of the others. But a patron's link, unlink or own refresh, and a webhook event, can reach any process (the
web endpoints sit behind one load balancer; an event is applied by whichever process claims it), and the patron may
be in servers of every shard. So whoever does that work reconciles the servers it owns and queues a role job for
each server of another shard where the member has something at stake there: roles the bot gave them, or a link
that counts there to a patron of the campaign it follows. The owning process claims and runs the job, and its
reconcile reads everything afresh: the job only says "look at this member here".
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from bot.domain.models import MembershipSnapshot
from bot.domain.shards import ShardSpec
from bot.store import Link, Store
from bot.sync.participation import Participation

log = logging.getLogger(__name__)

#: Persists role jobs (the queue's `enqueue_many`): keys, cause, urgent (a person waits for them).
Enqueue = Callable[[Sequence[tuple[int, int]], str, bool], Awaitable[object]]


class OtherShards:
    def __init__(self, store: Store, shards: ShardSpec, participation: Participation, enqueue: Enqueue) -> None:
        self.store = store
        self.shards = shards
        self.participation = participation
        self.enqueue = enqueue

    async def acting_guild_ids(self) -> list[int]:
        """The servers of other shards that take part, as the database knows them (settings saved, a campaign
        followed). None when this process runs every shard."""
        if self.shards.every_shard:
            return []
        known = set(await self.store.configured_guild_ids()) | set(await self.store.guild_bindings())
        return [
            guild_id
            for guild_id in sorted(known)
            if not self.shards.owns(guild_id) and await self.participation.refusal(guild_id) is None
        ]

    async def hand_off(self, user_id: int, cause: str, *, urgent: bool = True) -> int:
        """Queue this member's role job in each server of another shard where something may change for them;
        return how many were queued."""
        return await self.hand_off_many([user_id], cause, urgent=urgent)

    async def hand_off_many(self, user_ids: Sequence[int], cause: str, *, urgent: bool) -> int:
        if self.shards.every_shard or not user_ids:
            return 0
        guilds = await self.acting_guild_ids()
        keys: list[tuple[int, int]] = []
        for user_id in user_ids if guilds else ():
            link = await self.store.get_link_by_discord(user_id)
            keys += [
                (guild_id, user_id)
                for guild_id in guilds
                if await self.store.granted_roles(guild_id, user_id) or await self._patron_there(link, guild_id)
            ]
        if keys:
            await self.enqueue(keys, cause, urgent)
            log.info("%d role job(s) queued for other shards' servers (%s)", len(keys), cause)
        return len(keys)

    async def memberships_changed(self, snapshots: Sequence[MembershipSnapshot], _campaign_id: str) -> None:
        """A refresh stored these changed memberships: the other shards' processes would see them unchanged when
        their own refresh lists the campaign (the snapshot is stored already), so their members' jobs go to them
        now, at the refresh's priority."""
        if self.shards.every_shard:
            return
        users = await self._linked_users(s.patreon_user_id for s in snapshots if s.patreon_user_id)
        await self.hand_off_many(users, "refresh", urgent=False)

    async def memberships_forgotten(self, patreon_ids: Sequence[str], _campaign_id: str) -> None:
        """A complete listing forgot these members (gone from the campaign): their stored membership is deleted
        already, so the other shards' processes would never see them go. Each linked one's job goes to the servers
        where the bot gave them roles (the reconcile there takes them back), at the refresh's priority."""
        if self.shards.every_shard or not patreon_ids:
            return
        await self.hand_off_many(await self._linked_users(patreon_ids), "refresh", urgent=False)

    async def _linked_users(self, patreon_ids: Iterable[str]) -> list[int]:
        """The Discord users linked to these Patreon users, in Patreon id order."""
        users = []
        for patreon_id in sorted(await self.store.linked_patreon_ids(patreon_ids)):
            link = await self.store.get_link_by_patreon(patreon_id)
            if link is not None:
                users.append(link.discord_user_id)
        return users

    async def _patron_there(self, link: Link | None, guild_id: int) -> bool:
        if link is None or not link.counts_in(guild_id):
            return False
        campaign = await self.participation.campaign_for(guild_id)
        if campaign is None:
            return False
        return await self.store.get_membership(link.patreon_user_id, await campaign.storage_key()) is not None
