"""The one reconcile engine: policy decision → minimal role plan → one Discord call per changed role → ledger.

Webhooks, the periodic refresh, linking, unlinking and admin syncs all come through here, so the
rules for what may be changed live in one place. What a member's plan and outcome are, and the one planning rule,
live in bot/sync/member_plan.py; what the engine needs of Discord in bot/sync/role_gateway.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

from bot.domain.dm_templates import plain
from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, Tier
from bot.domain.policy import managed_role_ids, still_pays
from bot.domain.role_plan import RolePlan, grants_to_forget
from bot.store import Link, Store
from bot.sync.campaign import CampaignService
from bot.sync.channel_log import ChannelLog
from bot.sync.member_plan import MemberPlan, ReconcileOutcome, plan_member_roles
from bot.sync.participation import Participation
from bot.sync.role_gateway import RateLimiter, RoleChangeError, RoleGateway

#: The campaign key of a guild that follows no campaign: no membership or tier is ever stored under it.
FOLLOWS_NOTHING = "(no campaign)"

log = logging.getLogger(__name__)

#: How long a fresh grant may be missing from discord.py's cache before we believe someone removed it.
GRANT_SETTLE_TIME = timedelta(seconds=60)


def utc_now() -> datetime:
    return datetime.now(UTC)


def not_own_lapse(
    link: Link | None,
    membership: MembershipSnapshot | None,
    settings: GuildSettings,
    tiers: Mapping[str, Tier],
    now: datetime,
) -> str | None:
    """Why losing the tier roles is not the member's own paid entitlement ending per Patreon, so that kick on lapse
    must not count it (None: it is). The same rule records a lapse here and spares one at the sweep
    (bot/guild_admin/lapse_kicks.py): an admin's word (a link by hand, re-pointed at will by a moderator without Kick
    Members) or an admin's mapping or policy change (an `unmap`, `trial_gets_tier_roles:False`) taking a paying
    patron's role is never a lapse (review 5, R5-1 and R5-2). "Paying" is the policy's own verdict, not the raw
    status: an active patron whose own charge was Fraud/Refunded, or declined past the grace, lapses (R6-1)."""
    if link is None or membership is None or membership.patron_status is None:
        return "never pledged to the campaign here"
    if link.by_hand:
        return "linked by hand: only an admin's word ties them to that pledge"
    if still_pays(membership, settings, tiers, now):
        return "still an active, paying patron at Patreon"
    return None


class ReconcileService:
    def __init__(
        self,
        store: Store,
        gateway: RoleGateway,
        clock: Callable[[], datetime],
        *,
        limiter: RateLimiter | None,
        channel_log: ChannelLog | None,
        participation: Participation | None = None,
        on_outcome: Callable[[ReconcileOutcome, str], Awaitable[None]] | None = None,
        hand_off: Callable[[int, str], Awaitable[object]] | None = None,
    ) -> None:
        """`limiter` paces every role call, whoever asks, under the server's bucket and the global one: discord.py
        learns a bucket only by exceeding it (None: no pacing, one gateway call per member). `channel_log`
        buffers the log-channel lines of queued (background) reconciles (None: post at once). `participation`
        says which servers act for the campaign; the engine changes no role anywhere else (None: every server
        the bot is in, for tests of the engine alone; `build_services` always passes one). `on_outcome(outcome,
        cause)` hears every reconcile of a member of a server that takes part, after its roles changed (the opt-in
        DMs, bot/sync/patron_dms.py, which never raises). `hand_off(user_id, cause)` queues the member's role jobs
        in the servers other processes own (bot/sync/other_shards.py; None: this process owns every server)."""
        self.store = store
        self.gateway = gateway
        self.clock = clock
        self.limiter = limiter
        self.channel_log = channel_log
        self.participation = participation
        self.on_outcome = on_outcome
        self._hand_off = hand_off
        self._locks: dict[tuple[int, int], tuple[asyncio.Lock, int]] = {}

    async def plan_member(self, guild_id: int, user_id: int, *, explain: bool = True) -> MemberPlan | None:
        """What would change for this member now; None when they are not in the guild. `explain=False` when no one
        will read the per-role reasons (the summary is kept).

        Only a link that counts in this guild (`Link.counts_in`) brings a membership: a link made by hand in
        another server gives nothing here.
        """
        actual = await self.gateway.member_roles(guild_id, user_id)
        if actual is None:
            return None
        settings = await self.store.get_settings(guild_id)
        tier_roles = await self.store.get_tier_roles(guild_id)
        link = await self.store.get_link_by_discord(user_id)
        counts = link is not None and link.counts_in(guild_id)
        campaign = await self.campaign_key(guild_id)
        membership = (
            await self.store.get_membership(link.patreon_user_id, campaign) if link is not None and counts else None
        )
        granted = await self.store.granted_roles(guild_id, user_id)
        now = self.clock()
        decision, plan = plan_member_roles(
            membership,
            settings,
            tier_roles,
            await self.store.get_tiers(campaign),
            now,
            actual,
            granted,
            lambda roles: self.gateway.unassignable_roles(guild_id, roles),
            explain=explain,
            comps=await self.store.active_comps(guild_id, user_id, now),
        )
        return MemberPlan(guild_id, user_id, membership, decision, actual, granted, plan)

    async def reconcile_member(
        self, guild_id: int, user_id: int, cause: str, *, queued: bool = False, priority: float = 0.0
    ) -> ReconcileOutcome:
        """Bring one member's managed roles in line with the policy: no Discord call when they are right, one per
        changed role otherwise.

        One member is reconciled by one caller at a time (a webhook job and a link can't race into two calls).
        Grants are recorded before the call, so a crash between call and ledger can never leave a role this bot
        gave that it does not know to take back. `queued` (the background queue): failures are left to the
        queue to report, and log lines go through the buffered channel log. `priority` orders this member's
        calls among those waiting for the server's bucket, lowest first (0: someone is waiting for the answer).
        """
        async with self._member_lock(guild_id, user_id):
            return await self._reconcile(guild_id, user_id, cause, queued, priority)

    async def _reconcile(
        self, guild_id: int, user_id: int, cause: str, queued: bool, priority: float = 0.0
    ) -> ReconcileOutcome:
        refusal = await self.participation_refusal(guild_id)
        if refusal is not None:  # like a server the member isn't in: nothing to change, nothing to retry
            log.info("guild=%s user=%s left alone (%s): %s", guild_id, user_id, cause, refusal)
            return ReconcileOutcome(guild_id, user_id, in_guild=False, summary=refusal)
        member_plan = await self.plan_member(guild_id, user_id, explain=False)  # a change shows only the summary
        if member_plan is None:
            return ReconcileOutcome(guild_id, user_id, in_guild=False, summary="not in this server")
        plan = member_plan.plan
        outcome = ReconcileOutcome(guild_id, user_id, blocked=plan.blocked, summary=member_plan.decision.summary)
        if not plan.is_empty:
            if plan.add:
                await self.store.record_grants(guild_id, user_id, plan.add, cause, at=self.clock())
            reason = f"Patreon sync ({cause}): {member_plan.decision.summary}"[:500]
            try:
                await self._apply(guild_id, user_id, plan, reason, priority)
            except RoleChangeError as error:
                # Forget only grants made for this attempt: an older grant may be held already (the cache lags).
                unheld = plan.add - member_plan.actual - error.added - member_plan.granted
                if unheld:
                    await self.store.forget_grants(guild_id, user_id, unheld)
                outcome.error, outcome.permanent = str(error), error.permanent
                if not queued:
                    await self._log(guild_id, f"Could not update roles for <@{user_id}>: {error}")
                return outcome
            outcome.added, outcome.removed = plan.add, plan.remove
        forget = grants_to_forget(plan, member_plan.actual, member_plan.granted)
        forget = await self._settled_forgets(guild_id, user_id, forget - plan.remove) | (forget & plan.remove)
        if forget:
            await self.store.forget_grants(guild_id, user_id, forget)
        await self._note_lapse(member_plan, outcome, forget)
        await self._report(outcome, cause, queued)
        if self.on_outcome is not None:
            await self.on_outcome(outcome, cause)
        return outcome

    async def _note_lapse(self, member_plan: MemberPlan, outcome: ReconcileOutcome, forgotten: set[int]) -> None:
        """Kick on lapse counts from the moment the engine took the last tier role it had given a member whose own
        paid entitlement ended at Patreon (`not_own_lapse`; bot/guild_admin/lapse_kicks.py); a tier role it adds
        again (a pledge, a comp) ends the lapse."""
        guild_id, user_id = member_plan.guild_id, member_plan.user_id
        if not outcome.changed:
            return
        tier_roles = (await self.store.get_tier_roles(guild_id)).managed_role_ids()
        if outcome.added & tier_roles:
            await self.store.clear_lapse(guild_id, user_id)
            return
        left = (member_plan.granted - outcome.removed - forgotten) & tier_roles
        taken = outcome.removed & tier_roles
        if not taken or left or member_plan.decision.hold:
            return
        why_not = not_own_lapse(
            await self.store.get_link_by_discord(user_id),
            member_plan.membership,
            await self.store.get_settings(guild_id),
            await self.store.get_tiers(await self.campaign_key(guild_id)),
            self.clock(),
        )
        if why_not is not None:
            log.info("guild=%s user=%s: the last tier role was taken, no lapse: %s", guild_id, user_id, why_not)
            return
        if await self._comps_ended(guild_id, user_id, taken):
            log.info("guild=%s user=%s: the last tier role went with its comp: no lapse", guild_id, user_id)
            return
        await self.store.record_lapse(guild_id, user_id, self.clock())
        log.info("guild=%s user=%s lapsed: the last tier role the bot gave was taken", guild_id, user_id)

    async def _comps_ended(self, guild_id: int, user_id: int, roles: frozenset[int]) -> bool:
        """Whether every one of these roles had a comp that is over (expired or revoked): then the removal is the
        comp's end, not a paid entitlement's, and an `uncomp` (Manage Roles suffices) must never start a kick.
        A comp once given on a role spares a later lapse of that role too: the safe side."""
        now = self.clock()
        for role_id in roles:
            comp = await self.store.get_comp(guild_id, user_id, role_id)
            if comp is None or comp.active_at(now):
                return False
        return True

    async def _apply(self, guild_id: int, user_id: int, plan: RolePlan, reason: str, priority: float) -> None:
        """The plan's calls, adds first; with a limiter each call holds a slot of its own, so the next waiter
        (perhaps a more urgent member) can go between two calls of this one."""
        if self.limiter is None:
            await self.gateway.set_member_roles(guild_id, user_id, plan.add, plan.remove, reason)
            return
        steps = [(frozenset({role}), frozenset[int]()) for role in sorted(plan.add)]
        steps += [(frozenset[int](), frozenset({role})) for role in sorted(plan.remove)]
        added: frozenset[int] = frozenset()
        for add, remove in steps:
            try:
                async with self.limiter.call(guild_id, priority):
                    await self.gateway.set_member_roles(guild_id, user_id, add, remove, reason)
            except RoleChangeError as error:
                raise RoleChangeError(str(error), permanent=error.permanent, added=added | error.added) from error
            added |= add

    async def _settled_forgets(self, guild_id: int, user_id: int, vanished: set[int]) -> set[int]:
        """Grants the member seems not to hold, old enough that the cache can be believed.

        discord.py's member cache learns of our own role change only when Discord's gateway event arrives,
        so a grant made moments ago can look missing; forgetting it would leave a role nobody takes back.
        The Discord adapter already shows its own unconfirmed writes (bot/discord_io/roles.py); this still
        guards what that can't see: a write whose answer was lost, another gateway, a restart.
        """
        if not vanished:
            return set()
        cutoff = self.clock() - GRANT_SETTLE_TIME
        granted_at = await self.store.grant_times(guild_id, user_id)
        return {role for role in vanished if granted_at.get(role, cutoff) <= cutoff}

    async def campaign_for(
        self, guild_id: int, fallback: CampaignService | None = None
    ) -> CampaignService | None:
        """The campaign this guild follows (None: none); without participation (the engine alone), `fallback`."""
        if self.participation is None:
            return fallback
        return await self.participation.campaign_for(guild_id)

    async def campaign_key(self, guild_id: int) -> str | None:
        """The campaign whose memberships and tiers count in this guild, as stored (`CampaignService.storage_key`):
        a patron of another campaign gets nothing here. `FOLLOWS_NOTHING` when the guild follows none; None
        without participation (the engine alone: every stored campaign, for tests of the engine)."""
        if self.participation is None:
            return None
        campaign = await self.participation.campaign_for(guild_id)
        return FOLLOWS_NOTHING if campaign is None else await campaign.storage_key()

    async def participation_refusal(self, guild_id: int) -> str | None:
        """Why this server doesn't act for the campaign (bot/sync/participation.py), or None when it does."""
        return None if self.participation is None else await self.participation.refusal(guild_id)

    async def acting_guild_ids(self) -> list[int]:
        """The servers the bot is in that act for the campaign: the only ones whose roles it changes."""
        if self.participation is None:
            return self.gateway.guild_ids()
        return await self.participation.guild_ids()

    async def guilds_following(self, campaign: CampaignService) -> list[int]:
        """The acting servers that follow this campaign (without participation: every acting server)."""
        if self.participation is None:
            return await self.acting_guild_ids()
        return await self.participation.guild_ids_following(campaign)

    async def member_guilds(self, user_id: int) -> list[int]:
        """Acting guilds the user may be in: every one where memory doesn't answer for them, else only theirs."""
        return [
            guild_id
            for guild_id in await self.acting_guild_ids()
            if not self.gateway.knows_member(guild_id, user_id)
            or self.gateway.cached_member_roles(guild_id, user_id) is not None
        ]

    @contextlib.asynccontextmanager
    async def _member_lock(self, guild_id: int, user_id: int) -> AsyncIterator[None]:
        key = (guild_id, user_id)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def reconcile_user_everywhere(self, user_id: int, cause: str) -> list[ReconcileOutcome]:
        """Reconcile one Discord user in every acting guild where they are a member."""
        outcomes = []
        for guild_id in await self.acting_guild_ids():
            try:
                outcome = await self.reconcile_member(guild_id, user_id, cause)
            except RoleChangeError as error:  # one server failing must not stop the others
                outcome = ReconcileOutcome(guild_id, user_id, error=str(error), permanent=error.permanent)
            if outcome.in_guild:
                outcomes.append(outcome)
        await self.hand_off(user_id, cause)
        return outcomes

    async def hand_off(self, user_id: int, cause: str) -> None:
        """The member's role jobs for the servers of other shards, which their own processes run."""
        if self._hand_off is not None:
            await self._hand_off(user_id, cause)

    async def managed_roles(self, guild_id: int) -> frozenset[int]:
        return managed_role_ids(await self.store.get_settings(guild_id), await self.store.get_tier_roles(guild_id))

    async def _report(self, outcome: ReconcileOutcome, cause: str, queued: bool = False) -> None:
        summary = plain(outcome.summary)  # it quotes tier titles, which the creator chose on Patreon (R5-7)
        for role_id in sorted(outcome.added):
            await self._log(
                outcome.guild_id,
                f"Gave {self._role(outcome.guild_id, role_id)} to <@{outcome.user_id}> ({cause}: {summary})",
                queued,
            )
        for role_id in sorted(outcome.removed):
            await self._log(
                outcome.guild_id,
                f"Removed {self._role(outcome.guild_id, role_id)} from <@{outcome.user_id}> "
                f"({cause}: {summary})",
                queued,
            )
        for role_id, why in sorted(outcome.blocked.items()):
            await self._log(
                outcome.guild_id,
                f"Could not change {self._role(outcome.guild_id, role_id)} for <@{outcome.user_id}>: {why}",
                queued,
            )

    def _role(self, guild_id: int, role_id: int) -> str:
        return f"@{self.gateway.role_name(guild_id, role_id)}"

    async def _log(self, guild_id: int, text: str, queued: bool = False) -> None:
        """One readable line to the bot's log and, if the server chose one, its log channel."""
        log.info("guild=%s %s", guild_id, text)
        settings = await self.store.get_settings(guild_id)
        if settings.log_channel_id is None:
            return
        if self.channel_log is None:
            await self.gateway.post_log(settings.log_channel_id, text)
        elif queued:
            self.channel_log.add(settings.log_channel_id, text)
        else:  # a decision someone waits for: posted now, but never held up by the channel's rate limit
            await self.channel_log.post_soon(settings.log_channel_id, text)

    async def log_event(self, guild_id: int, text: str, *, queued: bool = False) -> None:
        await self._log(guild_id, text, queued)

    async def alert_every_server(self, text: str) -> None:
        """One line to every acting server the bot is in or has settings for (the creator-token alert): a server
        that isn't the creator's is told nothing about the campaign."""
        for guild_id in sorted(set(self.gateway.guild_ids()) | set(await self.store.configured_guild_ids())):
            if await self.participation_refusal(guild_id) is None:
                await self._log(guild_id, text)

    async def alert_campaign_servers(self, campaign: CampaignService, text: str) -> None:
        """`alert_every_server`, but only the acting servers that follow this campaign (a campaign's creator-token
        alert is nobody else's business)."""
        for guild_id in sorted(set(self.gateway.guild_ids()) | set(await self.store.configured_guild_ids())):
            if self.participation is None:
                follows = True
            else:
                follows = await self.participation.acting_campaign(guild_id) is campaign
            if follows and await self.participation_refusal(guild_id) is None:
                await self._log(guild_id, text)
