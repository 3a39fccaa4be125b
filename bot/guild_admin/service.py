"""What server admins do: map tiers to roles, set the policy, preview and run a sync, manual links
(bot/guild_admin/hand_links.py).

Every refusal is an AdminError whose message is a friendly sentence for an ephemeral reply. Two rules hold for
every command that changes something: the server must act for the campaign (bot/sync/participation.py), and a
command that makes the bot give a role, take one back or stop managing one needs an invoker who could do that by
hand (bot/guild_admin/rank.py; the checks live in bot/guild_admin/admin_checks.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.domain.dm_templates import plain
from bot.domain.guild_settings import GUILD_SETTINGS, ROLE_SETTINGS, GuildSettings
from bot.domain.models import Tier
from bot.domain.money import SUPPORTED_CURRENCIES
from bot.domain.policy import managed_role_ids
from bot.guild_admin.admin_checks import AdminError
from bot.guild_admin.hand_links import HandLinkCommands
from bot.guild_admin.rank import NOBODY, InvokerRank
from bot.store import LAST_REFRESH, WEBHOOK_LAST_SEEN
from bot.sync.member_plan import MemberPlan, ReconcileOutcome
from bot.sync.participation import ENABLE_HINT
from bot.sync.role_gateway import RoleChangeError, roles_gone

__all__ = ["AdminError", "AdminService", "SyncReport", "TierLine"]

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


class AdminService(HandLinkCommands):
    async def participation_refusal(self, guild_id: int) -> str | None:
        """Why this server doesn't act for the campaign (shown by `check`), or None."""
        return await self.participation.refusal(guild_id)

    async def creators_server_refusal(self, guild_id: int) -> str | None:
        """Why this server may not even see a campaign's tiers (it follows none), or None."""
        return await self.participation.ownership_refusal(guild_id)

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
        shown = f"Tier {plain(tier.title)} now gives @{plain(self._role(guild_id, role_id))}"  # inert (review 5, R5-7)
        await self.reconcile.log_event(guild_id, shown)
        return tier

    async def unmap_tier(self, guild_id: int, tier_id: str, role_id: int | None, invoker: InvokerRank = NOBODY) -> int:
        """Stop giving a tier's role (or all its roles): the next sync takes them back, so the invoker must be
        able to take each away by hand. A comp of a role no tier gives any more ends with the mapping (the bot
        manages no other role, and `uncomp` couldn't reach it)."""
        await self._assert_takes_part(guild_id)
        self._assert_can_manage(guild_id)
        mapped = (await self.store.get_tier_roles(guild_id)).roles_by_tier.get(tier_id, frozenset())
        stopping = mapped if role_id is None else mapped & {role_id}
        self._assert_outranks(guild_id, invoker, await self._existing(guild_id, stopping), "stop giving", removing=True)
        removed = await self.store.unmap_tier_role(guild_id, tier_id, role_id)
        if removed == 0:
            raise AdminError("That tier had no such mapping here; `/patreon-admin tiers` lists the mappings.")
        await self.reconcile.log_event(guild_id, f"Removed {removed} mapping(s) from tier {tier_id}")
        await self._end_comps_of_unmanaged(guild_id, stopping)
        return removed

    async def _end_comps_of_unmanaged(self, guild_id: int, roles: frozenset[int]) -> None:
        still_given = (await self.store.get_tier_roles(guild_id)).managed_role_ids()
        orphaned = roles - still_given
        if not orphaned:
            return
        now = self.clock()
        comps = [comp for held in (await self.store.guild_comps(guild_id, now)).values() for comp in held]
        ended = await self.store.end_comps([c for c in comps if c.role_id in orphaned], now, "role unmapped")
        for comp in ended:
            log.info("guild=%s: comp of role=%s for user=%s ended by unmap", guild_id, comp.role_id, comp.user_id)
            await self.reconcile.log_event(
                guild_id, f"The comp of @{self._role(guild_id, comp.role_id)} for <@{comp.user_id}> ended: no tier "
                "gives that role any more"
            )

    async def update_settings(self, guild_id: int, invoker: InvokerRank = NOBODY, **changes: object) -> GuildSettings:
        """Validate and save the changed fields; unknown or invalid values change nothing.

        `enabled` is the server's consent to act for the campaign: turning it on needs a server the bot can tell is
        the creator's; every other change needs a server that takes part (or this very change turning it on).
        A role option needs an `invoker` who could give that role by hand, and a change of who gets the roles
        (`WHO_GETS_WHAT`), or switching the bot on or off, one who could give every role the policy hands out.
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
        self._assert_may_route_patron_data(guild_id, invoker, current, changes)
        currency = changes.get("currency")
        if currency is not None and currency not in SUPPORTED_CURRENCIES:
            raise AdminError(f"The currency must be one Patreon supports: {', '.join(SUPPORTED_CURRENCIES)}.")
        roles = {role_id for name in ROLE_SETTINGS if isinstance(role_id := changes.get(name), int)}
        for role_id in sorted(roles):
            self._assert_assignable(guild_id, role_id)
        self._assert_outranks(guild_id, invoker, roles)
        # A role setting cleared or replaced: the bot stops giving the old role and the next sync takes it back.
        replaced = {
            old
            for name in changes.keys() & set(ROLE_SETTINGS)
            if isinstance(old := getattr(current, name), int) and old != changes[name]
        }
        self._assert_outranks(guild_id, invoker, await self._existing(guild_id, replaced), "stop giving", removing=True)
        updated = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
        if changes.keys() & WHO_GETS_WHAT:
            handed_out = managed_role_ids(updated, await self.store.get_tier_roles(guild_id))
            self._assert_outranks(guild_id, invoker, await self._existing(guild_id, handed_out), "change who gets")
        if updated.enabled != current.enabled:
            await self._assert_may_switch(guild_id, invoker, updated)
        await self.store.save_settings(updated)
        if updated.enabled != current.enabled:
            state = "now manages Patreon roles here" if updated.enabled else "stopped managing Patreon roles here"
            who = f"<@{invoker.user_id}>" if invoker.user_id else "An admin"
            await self.reconcile.log_event(guild_id, f"{who} changed the settings: the bot {state}")
        return updated

    async def _assert_may_switch(self, guild_id: int, invoker: InvokerRank, updated: GuildSettings) -> None:
        """Whether the bot acts decides who holds every role the policy hands out: switched on, it gives them
        again; switched off, it keeps them on patrons who stopped paying. So both ways need an invoker who could
        give each of those roles by hand (the owner is exempt), like the "who gets what" settings (review 5, R5-3)."""
        policy = managed_role_ids(updated, await self.store.get_tier_roles(guild_id))
        handed_out = await self._existing(guild_id, policy)
        verb = "turn the bot on" if updated.enabled else "turn the bot off"
        self._assert_outranks(guild_id, invoker, handed_out, action=f"{verb} while it hands out")

    async def _existing(self, guild_id: int, role_ids: Iterable[int]) -> frozenset[int]:
        """`role_ids` without those Discord says the server no longer has (`roles_gone`): a deleted role, still
        mapped or set, would otherwise lock every admin but the owner out of the switch and the `unmap` that
        clears it."""
        roles = frozenset(role_ids)
        return roles - await roles_gone(self.gateway, guild_id, roles)

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

    def _assert_may_route_patron_data(
        self, guild_id: int, invoker: InvokerRank, current: GuildSettings, changes: dict[str, object]
    ) -> None:
        """Choosing the log channel, or turning the weekly patrons report on, decides who reads every patron's name
        and payment status: a server-wide call that Discord itself leaves to Manage Server (the server's own
        system-messages channel needs it), and that `connect` asks too. So the owner or a Manage Server admin makes
        it, not any Manage Roles moderator (review 5, R5-8); clearing the channel or turning the report off shows
        less, so it needs nothing more. The report also never goes where @everyone can read (cogs/admin.py,
        weekly_patrons.py)."""
        channel = changes.get("log_channel_id", current.log_channel_id)
        rerouted = channel is not None and channel != current.log_channel_id
        report_on = changes.get("patrons_report_weekly") is True and not current.patrons_report_weekly
        if not (rerouted or report_on) or invoker.owner or invoker.manage_guild:
            return
        log.info("guild=%s: refused user=%s a log channel or report change without Manage Server", guild_id,
                 invoker.user_id)
        raise AdminError(
            "Choosing the log channel, or turning on the weekly patrons report, needs the Manage Server permission: "
            "both show every patron's name and payment status to whoever reads that channel."
        )

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
