"""What server admins do: map tiers to roles, set the policy, preview and run a sync, manual links.

Every refusal is an AdminError whose message is a friendly sentence for an ephemeral reply.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field

from bot.accounts.linking import LinkingService, UnlinkResult
from bot.domain.models import GUILD_SETTINGS, ROLE_SETTINGS, GuildSettings, Tier
from bot.patreon.errors import PatreonError
from bot.store import Store
from bot.sync.campaign import CampaignService, CampaignUnavailable
from bot.sync.reconcile import MemberPlan, ReconcileOutcome, ReconcileService, RoleChangeError, RoleGateway
from bot.sync.role_jobs import RoleJobs

log = logging.getLogger(__name__)

MAX_GRACE_DAYS = 60
#: A real sync changing more members than this queues them (paced, durable) instead of changing them inline.
INLINE_SYNC_LIMIT = 25


class AdminError(Exception):
    """A refusal to show the admin as is."""


@dataclass(frozen=True)
class TierLine:
    tier: Tier
    role_ids: frozenset[int]


@dataclass
class SyncReport:
    dry_run: bool
    checked: int = 0
    lines: list[str] = field(default_factory=list)
    changed_members: int = 0
    failures: int = 0
    #: Members handed to the durable queue instead of changed while the command waited.
    queued: int = 0


class AdminService:
    def __init__(
        self,
        store: Store,
        campaign: CampaignService,
        reconcile: ReconcileService,
        linking: LinkingService,
        jobs: RoleJobs,
        gateway: RoleGateway,
    ) -> None:
        self.store = store
        self.campaign = campaign
        self.reconcile = reconcile
        self.linking = linking
        self.jobs = jobs
        self.gateway = gateway
        self._sync_locks: dict[int, asyncio.Lock] = {}

    async def campaign_tiers(self, refresh: bool) -> dict[str, Tier]:
        """The campaign's tiers, fresh from Patreon when asked and possible, else the stored ones."""
        if refresh:
            try:
                return await self.campaign.refresh_tiers()
            except (PatreonError, CampaignUnavailable) as error:
                log.warning("tier refresh failed, using stored tiers: %s", error)
        return await self.store.get_tiers()

    async def tier_overview(self, guild_id: int) -> list[TierLine]:
        tiers = await self.campaign_tiers(refresh=True)
        mapping = (await self.store.get_tier_roles(guild_id)).roles_by_tier
        lines = [TierLine(tier, mapping.get(tier_id, frozenset())) for tier_id, tier in tiers.items()]
        lines += [
            TierLine(Tier(id=tier_id, title=f"unknown tier {tier_id}"), roles)
            for tier_id, roles in mapping.items()
            if tier_id not in tiers
        ]
        return lines

    async def map_tier(self, guild_id: int, tier_id: str, role_id: int) -> Tier:
        self._assert_can_manage(guild_id)
        tier = await self._known_tier(tier_id)
        self._assert_assignable(guild_id, role_id)
        if not await self.store.map_tier_role(guild_id, tier.id, role_id):
            raise AdminError(f"Tier **{tier.title}** already gives that role.")
        await self.reconcile.log_event(guild_id, f"Tier {tier.title} now gives @{self._role(guild_id, role_id)}")
        return tier

    async def unmap_tier(self, guild_id: int, tier_id: str, role_id: int | None) -> int:
        self._assert_can_manage(guild_id)
        removed = await self.store.unmap_tier_role(guild_id, tier_id, role_id)
        if removed == 0:
            raise AdminError("That tier had no such mapping here; `/patreon-admin tiers` lists the mappings.")
        await self.reconcile.log_event(guild_id, f"Removed {removed} mapping(s) from tier {tier_id}")
        return removed

    async def update_settings(self, guild_id: int, **changes: object) -> GuildSettings:
        """Validate and save the changed fields; unknown or invalid values change nothing."""
        if changes:
            self._assert_can_manage(guild_id)
        current = await self.store.get_settings(guild_id)
        known = {spec.name for spec in GUILD_SETTINGS}
        unknown = set(changes) - known
        if unknown:
            raise AdminError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        grace = changes.get("decline_grace_days")
        if grace is not None and not (isinstance(grace, int) and 0 <= grace <= MAX_GRACE_DAYS):
            raise AdminError(f"Grace days must be between 0 and {MAX_GRACE_DAYS}.")
        threshold = changes.get("lifetime_threshold_cents")
        if threshold is not None and not (isinstance(threshold, int) and threshold >= 0):
            raise AdminError("The lifetime support threshold can't be negative.")
        for name in ROLE_SETTINGS:
            role_id = changes.get(name)
            if isinstance(role_id, int):
                self._assert_assignable(guild_id, role_id)
        updated = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
        await self.store.save_settings(updated)
        return updated

    async def members_to_sync(self, guild_id: int) -> list[int]:
        """Linked users plus anyone holding a role this bot granted here (they may need it taken back)."""
        linked = {link.discord_user_id for link in await self.store.all_links()}
        return sorted(linked | set(await self.store.users_with_grants(guild_id)))

    async def sync(self, guild_id: int, dry_run: bool) -> SyncReport:
        """A preview works without Manage Roles (it shows what is blocked); a real sync is refused."""
        if not dry_run:
            self._assert_can_manage(guild_id)
        lock = self._sync_locks.setdefault(guild_id, asyncio.Lock())
        if lock.locked():
            raise AdminError("A sync is already running in this server; wait for it to finish.")
        async with lock:
            return await self._sync(guild_id, dry_run)

    async def _sync(self, guild_id: int, dry_run: bool) -> SyncReport:
        """Plan every member; a preview stops there. A real sync applies a few changes at once and hands a
        larger batch to the durable queue, which paces it under Discord's limits and outlives the command."""
        report = SyncReport(dry_run=dry_run)
        changed: list[int] = []
        unchecked: list[str] = []
        for user_id in await self.members_to_sync(guild_id):
            try:
                plan = await self.reconcile.plan_member(guild_id, user_id)
            except RoleChangeError as error:
                report.failures += 1
                unchecked.append(f"<@{user_id}>: couldn't check: {error}")
                report.lines.append(unchecked[-1])
                continue
            if plan is None:
                continue
            report.checked += 1
            if line := self._describe_plan(plan):
                report.lines.append(line)
                report.changed_members += 1
                changed.append(user_id)
        if dry_run or not changed:
            return report
        if len(changed) > INLINE_SYNC_LIMIT:
            await self.jobs.enqueue_many([(guild_id, user_id) for user_id in changed], "admin sync")
            report.queued = len(changed)
            return report
        report.lines = unchecked  # the planned changes are replaced by what actually happened
        report.changed_members = 0
        for user_id in changed:
            outcome = await self._apply(guild_id, user_id)
            if outcome is not None and outcome.error:
                report.failures += 1
                report.lines.append(f"<@{user_id}>: failed: {outcome.error}")
            elif outcome is not None and outcome.changed:
                report.changed_members += 1
                report.lines.append(self._describe(guild_id, user_id, outcome.added, outcome.removed, {}))
        return report

    async def _apply(self, guild_id: int, user_id: int) -> ReconcileOutcome | None:
        try:
            outcome = await self.reconcile.reconcile_member(guild_id, user_id, "admin sync")
        except RoleChangeError as error:
            return ReconcileOutcome(guild_id, user_id, error=str(error))
        return outcome if outcome.in_guild else None

    async def link_user(self, guild_id: int, discord_user_id: int, patreon_user_id: str) -> str:
        """Link by hand; never takes a Patreon account from someone else (unlink them first)."""
        patreon_user_id = patreon_user_id.strip()
        if not patreon_user_id.replace("-", "").isalnum():
            raise AdminError("That doesn't look like a Patreon user id (the number in their profile URL).")
        self._assert_can_manage(guild_id)
        owner = await self.store.get_link_by_patreon(patreon_user_id)
        if owner is not None and owner.discord_user_id != discord_user_id:
            raise AdminError(
                f"That Patreon account is already linked to <@{owner.discord_user_id}>; unlink them first."
            )
        previous = await self.store.get_link_by_discord(discord_user_id)
        if previous is not None and previous.linked_in_guild_id not in (None, guild_id):
            raise AdminError("That member was linked in another server; only that server's admins can change it.")
        await self.store.save_link(discord_user_id, patreon_user_id, guild_id, "admin")
        outcome = await self.reconcile.reconcile_member(guild_id, discord_user_id, "linked by an admin")
        await self.reconcile.log_event(guild_id, f"An admin linked <@{discord_user_id}> to Patreon {patreon_user_id}")
        if await self.store.get_membership(patreon_user_id) is None:
            return "Linked. Their membership isn't known yet; roles follow at the next refresh."
        if outcome.error or outcome.blocked:
            why = outcome.error or "; ".join(outcome.blocked.values())
            return f"Linked, but some roles couldn't be changed: {why}."
        return "Linked; their roles are up to date."

    async def unlink_user(self, guild_id: int, discord_user_id: int) -> UnlinkResult:
        self._assert_can_manage(guild_id)
        link = await self.store.get_link_by_discord(discord_user_id)
        if link is None:
            raise AdminError("That member isn't linked.")
        if link.linked_in_guild_id not in (None, guild_id):
            raise AdminError("That member linked in another server; they can run `/patreon unlink` themselves.")
        return await self.linking.unlink(discord_user_id)

    def _assert_can_manage(self, guild_id: int) -> None:
        """Every command that changes roles, links or the policy refuses, changing nothing, while the bot
        lacks Manage Roles: otherwise it would half-happen (a link without roles, a sync that changes nobody)."""
        problem = self.gateway.missing_permissions(guild_id)
        if problem is not None:
            raise AdminError(problem)

    async def _known_tier(self, tier_id: str) -> Tier:
        tiers = await self.store.get_tiers()
        if tier_id not in tiers:
            tiers = await self.campaign_tiers(refresh=True)
        if tier_id not in tiers:
            raise AdminError(
                f"`{tier_id}` isn't one of this campaign's tiers. Pick one from the list, or run "
                "`/patreon-admin tiers` to see them."
            )
        return tiers[tier_id]

    def _assert_assignable(self, guild_id: int, role_id: int) -> None:
        refusal = self.gateway.unassignable_roles(guild_id, frozenset({role_id}))
        if role_id in refusal:
            raise AdminError(f"I can't manage that role: {refusal[role_id]}.")

    def _role(self, guild_id: int, role_id: int) -> str:
        return self.gateway.role_name(guild_id, role_id)

    def _describe_plan(self, plan: MemberPlan) -> str:
        if plan.plan.is_empty and not plan.plan.blocked:
            return ""
        return self._describe(plan.guild_id, plan.user_id, plan.plan.add, plan.plan.remove, plan.plan.blocked)

    def _describe(
        self, guild_id: int, user_id: int, add: frozenset[int], remove: frozenset[int], blocked: dict[int, str]
    ) -> str:
        parts = [f"+@{self._role(guild_id, role)}" for role in sorted(add)]
        parts += [f"−@{self._role(guild_id, role)}" for role in sorted(remove)]
        parts += [f"⚠️@{self._role(guild_id, role)} ({why})" for role, why in sorted(blocked.items())]
        return f"<@{user_id}>: {' '.join(parts)}"
