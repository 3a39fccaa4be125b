"""What server admins do: map tiers to roles, set the policy, preview and run a sync, manual links.

Every refusal is an AdminError whose message is a friendly sentence for an ephemeral reply. Two rules hold for
every command that changes something: the server must act for the campaign (bot/sync/participation.py), and a
command that makes the bot give a role needs an invoker who could give that role by hand (bot/guild_admin/rank.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.accounts.linking import LinkingService, UnlinkResult
from bot.domain.models import GUILD_SETTINGS, ROLE_SETTINGS, GuildSettings, Tier
from bot.domain.money import SUPPORTED_CURRENCIES
from bot.domain.policy import managed_role_ids
from bot.guild_admin.rank import NOBODY, InvokerRank
from bot.patreon.errors import PatreonError
from bot.store import LAST_REFRESH, WEBHOOK_LAST_SEEN, Store
from bot.sync.campaign import CampaignService, CampaignUnavailable
from bot.sync.participation import ENABLE_HINT, Participation
from bot.sync.reconcile import MemberPlan, ReconcileOutcome, ReconcileService, RoleChangeError, RoleGateway
from bot.sync.role_jobs import RoleJobs

log = logging.getLogger(__name__)

MAX_GRACE_DAYS = 60
#: Settings that decide who holds the policy's roles rather than which roles: changing one can hand any of them to
#: more members, so it needs an invoker who could give every role the policy hands out.
WHO_GETS_WHAT = frozenset(
    {
        "decline_grace_days",
        "keep_until_paid_through",
        "role_mode",
        "trial_gets_tier_roles",
        "lifetime_threshold_cents",
        "currency",  # which patrons' amounts are compared with tier prices (bot/domain/money.py)
        *("kick_after_days", "kick_protect_rank_id"),  # who is removed from the server (lapse_kicks.py)
    }
)
#: Kick on lapse: changing it needs Kick Members as well (turning it off needs nothing more).
KICK_SETTINGS = frozenset({"kick_after_days", "kick_protect_rank_id"})
MAX_KICK_DAYS = 3650
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
        participation: Participation,
    ) -> None:
        self.store = store
        self.campaign = campaign
        self.reconcile = reconcile
        self.linking = linking
        self.jobs = jobs
        self.gateway = gateway
        self.participation = participation
        self._sync_locks: dict[int, asyncio.Lock] = {}

    async def participation_refusal(self, guild_id: int) -> str | None:
        """Why this server doesn't act for the campaign (shown by `check`), or None."""
        return await self.participation.refusal(guild_id)

    async def creators_server_refusal(self, guild_id: int) -> str | None:
        """Why this server may not even see a campaign's tiers (it follows none), or None."""
        return await self.participation.ownership_refusal(guild_id)

    async def campaign_tiers(self, refresh: bool, guild_id: int | None = None) -> dict[str, Tier]:
        """The tiers of the campaign this guild follows (None: the `.env` campaign), fresh from Patreon when asked
        and possible, else the stored ones; none when the guild follows no campaign."""
        campaign = self.campaign if guild_id is None else await self.participation.campaign_for(guild_id)
        if campaign is None:
            return {}
        if refresh:
            try:
                return await campaign.refresh_tiers()
            except (PatreonError, CampaignUnavailable) as error:
                log.warning("tier refresh failed, using stored tiers: %s", error)
        return await self.store.get_tiers(await campaign.storage_key())

    async def campaign_facts(self, guild_id: int) -> dict[str, object]:
        """What `check` shows of the guild's campaign (`WEBHOOK_LAST_SEEN`, `LAST_REFRESH`), under the plain
        names health_report reads."""
        campaign = await self.participation.campaign_for(guild_id)
        if campaign is None:
            return {}
        return {name: await self.store.get_fact(campaign.fact_key(name)) for name in (WEBHOOK_LAST_SEEN, LAST_REFRESH)}

    async def campaign_description(self, guild_id: int) -> str | None:
        """Which campaign this server follows and how, for `check` (None: none)."""
        campaign = await self.participation.campaign_for(guild_id)
        if campaign is None:
            return None
        name = campaign.known_campaign_id() or "(its id not known yet)"
        if campaign.from_env:
            return f"{name}, from the bot's .env creator tokens"
        binding = await self.store.guild_binding(guild_id)
        if binding is None:
            return name
        by = f" by <@{binding.bound_by}>" if binding.bound_by is not None else ""
        return f"{name}, connected{by} on {binding.bound_at:%Y-%m-%d}"

    async def tier_overview(self, guild_id: int) -> list[TierLine]:
        problem = await self.creators_server_refusal(guild_id)
        if problem is not None:  # the campaign's tiers and patron counts are the creator's business
            raise AdminError(problem)
        tiers = await self.campaign_tiers(refresh=True, guild_id=guild_id)
        mapping = (await self.store.get_tier_roles(guild_id)).roles_by_tier
        lines = [TierLine(tier, mapping.get(tier_id, frozenset())) for tier_id, tier in tiers.items()]
        lines += [
            TierLine(Tier(id=tier_id, title=f"unknown tier {tier_id}"), roles)
            for tier_id, roles in mapping.items()
            if tier_id not in tiers
        ]
        return lines

    async def map_tier(self, guild_id: int, tier_id: str, role_id: int, invoker: InvokerRank) -> Tier:
        await self._assert_takes_part(guild_id)
        self._assert_can_manage(guild_id)
        tier = await self._known_tier(guild_id, tier_id)
        self._assert_assignable(guild_id, role_id)
        self._assert_outranks(guild_id, invoker, {role_id})
        if not await self.store.map_tier_role(guild_id, tier.id, role_id):
            raise AdminError(f"Tier **{tier.title}** already gives that role.")
        await self.reconcile.log_event(guild_id, f"Tier {tier.title} now gives @{self._role(guild_id, role_id)}")
        return tier

    async def unmap_tier(self, guild_id: int, tier_id: str, role_id: int | None) -> int:
        await self._assert_takes_part(guild_id)
        self._assert_can_manage(guild_id)
        removed = await self.store.unmap_tier_role(guild_id, tier_id, role_id)
        if removed == 0:
            raise AdminError("That tier had no such mapping here; `/patreon-admin tiers` lists the mappings.")
        await self.reconcile.log_event(guild_id, f"Removed {removed} mapping(s) from tier {tier_id}")
        return removed

    async def update_settings(self, guild_id: int, invoker: InvokerRank = NOBODY, **changes: object) -> GuildSettings:
        """Validate and save the changed fields; unknown or invalid values change nothing.

        `enabled` is the server's consent to act for the campaign: turning it on needs a server the bot can tell is
        the creator's; every other change needs a server that takes part (or this very change turning it on).
        A role option needs an `invoker` who could give that role by hand, and a change of who gets the roles
        (`WHO_GETS_WHAT`) one who could give every role the policy hands out.
        """
        known = {spec.name for spec in GUILD_SETTINGS}
        unknown = set(changes) - known
        if unknown:
            raise AdminError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        current = await self.store.get_settings(guild_id)
        if changes:
            await self._assert_may_change_settings(current, changes)
            self._assert_can_manage(guild_id)
        grace = changes.get("decline_grace_days")
        if grace is not None and not (isinstance(grace, int) and 0 <= grace <= MAX_GRACE_DAYS):
            raise AdminError(f"Grace days must be between 0 and {MAX_GRACE_DAYS}.")
        threshold = changes.get("lifetime_threshold_cents")
        if threshold is not None and not (isinstance(threshold, int) and threshold >= 0):
            raise AdminError("The lifetime support threshold can't be negative.")
        self._assert_may_change_kicks(guild_id, invoker, changes)
        currency = changes.get("currency")
        if currency is not None and currency not in SUPPORTED_CURRENCIES:
            raise AdminError(f"The currency must be one Patreon supports: {', '.join(SUPPORTED_CURRENCIES)}.")
        roles = {role_id for name in ROLE_SETTINGS if isinstance(role_id := changes.get(name), int)}
        for role_id in sorted(roles):
            self._assert_assignable(guild_id, role_id)
        self._assert_outranks(guild_id, invoker, roles)
        updated = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
        if changes.keys() & WHO_GETS_WHAT:
            handed_out = managed_role_ids(updated, await self.store.get_tier_roles(guild_id))
            self._assert_outranks(guild_id, invoker, handed_out, action="change who gets")
        await self.store.save_settings(updated)
        if updated.enabled != current.enabled:
            state = "now manages Patreon roles here" if updated.enabled else "stopped managing Patreon roles here"
            await self.reconcile.log_event(guild_id, f"An admin changed the settings: the bot {state}")
        return updated

    def _assert_may_change_kicks(self, guild_id: int, invoker: InvokerRank, changes: dict[str, object]) -> None:
        """Kick on lapse removes people: its settings need what kicking by hand needs (Kick Members, and a
        threshold below the asker's own highest role); switching it off needs nothing more."""
        kicks = changes.keys() & KICK_SETTINGS
        if not kicks or (kicks == {"kick_after_days"} and changes["kick_after_days"] == 0):
            return
        days = changes.get("kick_after_days")
        if days is not None and not (isinstance(days, int) and 0 <= days <= MAX_KICK_DAYS):
            raise AdminError(f"Kick-after days must be between 0 (never) and {MAX_KICK_DAYS}.")
        if not (invoker.owner or invoker.kick_members):
            log.info("guild=%s: refused user=%s a kick setting without Kick Members", guild_id, invoker.user_id)
            raise AdminError("Changing kick on lapse needs the Kick Members permission, as kicking by hand would.")
        threshold = changes.get("kick_protect_rank_id")
        if isinstance(threshold, int):
            self._assert_outranks(guild_id, invoker, {threshold}, action="set the kick threshold at")

    async def _assert_may_change_settings(self, current: GuildSettings, changes: dict[str, object]) -> None:
        turning_on = changes.get("enabled") is True
        if changes.keys() == {"enabled"} and not turning_on:
            return  # switching the bot off is always allowed
        problem = await self.participation.ownership_refusal(current.guild_id)
        if problem is not None:
            raise AdminError(problem)
        if not (current.enabled or turning_on):
            raise AdminError(f"The bot doesn't manage Patreon roles in this server yet; {ENABLE_HINT}.")

    async def members_to_sync(self, guild_id: int) -> list[int]:
        """Users whose link counts here plus anyone holding a role this bot granted here (they may need it taken
        back)."""
        linked = set(await self.store.links_counting_in(guild_id))
        return sorted(linked | set(await self.store.users_with_grants(guild_id)))

    async def sync(self, guild_id: int, dry_run: bool) -> SyncReport:
        """A preview works without Manage Roles (it shows what is blocked); a real sync is refused. Both need a
        server that takes part: elsewhere the preview would promise changes that never happen."""
        await self._assert_takes_part(guild_id)
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

    async def link_user(self, guild_id: int, discord_user_id: int, patreon_user_id: str, invoker: InvokerRank) -> str:
        """Link by hand. The link counts only in this server (`Link.counts_in`); it never takes a Patreon account
        from someone else (unlink them first) and never replaces a link the patron proved (OAuth, auto-match).

        The invoker must be able to give by hand every role this server's policy hands out: the link gives the
        patron's roles now and whatever tier they move to later.
        """
        patreon_user_id = patreon_user_id.strip()
        if not patreon_user_id.replace("-", "").isalnum():
            raise AdminError("That doesn't look like a Patreon user id (the number in their profile URL).")
        await self._assert_takes_part(guild_id)
        self._assert_can_manage(guild_id)
        owner = await self.store.get_link_by_patreon(patreon_user_id)
        if owner is not None and owner.discord_user_id != discord_user_id:
            if owner.by_hand and owner.linked_in_guild_id != guild_id:
                raise AdminError(
                    f"That Patreon account was linked by hand to <@{owner.discord_user_id}> in another server; the "
                    "patron can sign in with `/patreon link` themselves, which replaces that link."
                )
            raise AdminError(
                f"That Patreon account is already linked to <@{owner.discord_user_id}>; unlink them first."
            )
        previous = await self.store.get_link_by_discord(discord_user_id)
        if previous is not None and not previous.by_hand:
            if previous.patreon_user_id == patreon_user_id:
                return "Already linked: they signed in to that Patreon account themselves."
            raise AdminError(
                "That member signed in to a Patreon account themselves, and a link by hand never replaces that; "
                "unlink them first if it's wrong."
            )
        if previous is not None and previous.linked_in_guild_id not in (None, guild_id):
            raise AdminError("That member was linked in another server; only that server's admins can change it.")
        self._assert_outranks(guild_id, invoker, await self.reconcile.managed_roles(guild_id))
        await self.linking.link_by_hand(discord_user_id, patreon_user_id, guild_id)
        outcome = await self.reconcile.reconcile_member(guild_id, discord_user_id, "linked by an admin")
        await self.reconcile.log_event(guild_id, f"An admin linked <@{discord_user_id}> to Patreon {patreon_user_id}")
        if await self.store.get_membership(patreon_user_id, await self.reconcile.campaign_key(guild_id)) is None:
            return "Linked. Their membership isn't known yet; roles follow at the next refresh."
        if outcome.error or outcome.blocked:
            why = outcome.error or "; ".join(outcome.blocked.values())
            return f"Linked, but some roles couldn't be changed: {why}."
        return "Linked; their roles are up to date."

    async def unlink_user(self, guild_id: int, discord_user_id: int) -> UnlinkResult:
        """Only the server a link was made in may remove it (the member can always `/patreon unlink`)."""
        await self._assert_takes_part(guild_id)
        self._assert_can_manage(guild_id)
        link = await self.store.get_link_by_discord(discord_user_id)
        if link is None:
            raise AdminError("That member isn't linked.")
        if link.linked_in_guild_id not in (None, guild_id):
            if link.by_hand:
                raise AdminError(
                    "That member was linked by hand in another server; only that server's admins can unlink them "
                    "(the link gives no roles here)."
                )
            raise AdminError("That member linked in another server; they can run `/patreon unlink` themselves.")
        return await self.linking.unlink(discord_user_id, who="admin")

    async def _assert_takes_part(self, guild_id: int) -> None:
        """Nothing changes for the campaign from a server that doesn't act for it (bot/sync/participation.py)."""
        problem = await self.participation.refusal(guild_id)
        if problem is not None:
            raise AdminError(problem)

    def _assert_outranks(
        self, guild_id: int, invoker: InvokerRank, role_ids: Iterable[int], action: str = "make the bot give"
    ) -> None:
        """Discord's own rule for the person asking: only roles below their highest role, unless they own the
        server (bot/guild_admin/rank.py)."""
        refusal = invoker.refusal(role_ids, lambda role_id: self._role(guild_id, role_id), action)
        if refusal is not None:
            log.info("guild=%s: refused user=%s a role above their rank", guild_id, invoker.user_id)
            raise AdminError(refusal)

    def _assert_can_manage(self, guild_id: int) -> None:
        """Every command that changes roles, links or the policy refuses, changing nothing, while the bot
        lacks Manage Roles: otherwise it would half-happen (a link without roles, a sync that changes nobody)."""
        problem = self.gateway.missing_permissions(guild_id)
        if problem is not None:
            raise AdminError(problem)

    async def _known_tier(self, guild_id: int, tier_id: str) -> Tier:
        tiers = await self.campaign_tiers(refresh=False, guild_id=guild_id)
        if tier_id not in tiers:
            tiers = await self.campaign_tiers(refresh=True, guild_id=guild_id)
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
