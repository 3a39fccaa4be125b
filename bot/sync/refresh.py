"""The periodic full refresh: list every campaign member page by page, store and plan each page as it comes,
then sweep the members the listing no longer shows and queue the role jobs that follow.

Fail safe above all: only a listing that completed without error may forget a member or act on a member's
absence. Each page is real Patreon data, so its snapshots are stored as they arrive (like a webhook re-fetch)
and role changes it shows (a tier change, a new pledge, a member Patreon now calls a former patron) are queued at
once; what depends on a member *not* being listed (forgetting them, taking their roles) waits for the end. On
any failure (5xx, 429 past the client's patience, timeout, expired cursor, refused token) nobody is forgotten,
no absence is acted on, and the LAST_REFRESH fact and the log say why. A complete listing forgets members who
are no longer listed (unless a webhook re-fetch stored them after the listing began), auto-matches where
enabled, and plans the members it could not show. Only ids are kept across pages, never the whole listing.
Patron tokens close to expiry are refreshed on the way.

Which members are planned (only what changed, with a full re-plan at start-up, on `/patreon-admin sync`, daily
and when a guild's settings or tier map change) is bot/sync/plan_scope.py; the walk through the pages (store,
plan and queue each, `IncompleteListing`) is bot/sync/refresh_listing.py.

A member listed without its user (a deleted Patreon account, or a page that lost the relationship) is matched
back to the user stored under its member id (a membership never changes hands); one that can't be matched is
counted as unlinkable (`members_without_user`, shown by `/patreon-admin check`) and counts towards the total, so a
campaign with deleted accounts still completes. A listing that ended without error is still refused as
incomplete (`IncompleteListing`, nothing forgotten) when:

- its distinct members (with a user, plus the unlinkable) are fewer than the smallest `meta.pagination.total`
  any of its pages reported (a page that lost its cursor looks like the last page; the smallest total allows for
  members who left mid-listing);
- no page reported a total and it would forget more than `MAX_UNCONFIRMED_FORGET` of the stored memberships
  (without a total nothing confirms that so many left; Patreon does report the total, so this is a backstop).

Anything unexpected (a bug, a store error) also ends the refresh with ok=False and a LAST_REFRESH that says so.
Pending webhook events are marked superseded only once the refresh's jobs are queued (their members planned):
a refresh that fails before that leaves them to the webhook applier.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from bot.domain.models import MembershipSnapshot
from bot.patreon.budget import Priority
from bot.patreon.client import MAX_PAGE_SIZE, PatreonClient
from bot.patreon.errors import PatreonError
from bot.store import LAST_REFRESH, Store
from bot.sync.auto_match import auto_match
from bot.sync.batch_plan import GuildInputs, RefreshPlanner, load_guild_inputs
from bot.sync.campaign import CampaignService, CampaignUnavailable, grant_refused
from bot.sync.campaign_registry import CampaignRegistry
from bot.sync.plan_scope import DirtyMembers, GuildScope
from bot.sync.reconcile import ReconcileService
from bot.sync.refresh_listing import LISTING_GC_THRESHOLD as LISTING_GC_THRESHOLD  # bench/parse_bench.py reads it here
from bot.sync.refresh_listing import ListingReader, check_unconfirmed_forget, fewer_collections
from bot.sync.refresh_report import RefreshReport, combined
from bot.sync.refresh_schedule import SKIPPED, OneProcessAtATime, RefreshRotation, run_each
from bot.sync.role_gateway import RoleGateway
from bot.sync.role_jobs import RoleJobs

log = logging.getLogger(__name__)

PATRON_TOKEN_MARGIN = timedelta(days=7)
KEEP_WEBHOOK_EVENTS = timedelta(days=7)
class RefreshService:
    def __init__(
        self,
        client: PatreonClient,
        store: Store,
        campaigns: CampaignRegistry | CampaignService,
        reconcile: ReconcileService,
        jobs: RoleJobs,
        gateway: RoleGateway,
        clock: Callable[[], datetime],
        dirty: DirtyMembers,
        page_size: int = MAX_PAGE_SIZE,
        on_changed: Callable[[Sequence[MembershipSnapshot], str], Awaitable[None]] | None = None,
        campaign_concurrency: int = 1,
        on_auto_linked: Callable[[str], None] = lambda how: None,
        on_forgotten: Callable[[Sequence[str], str], Awaitable[None]] | None = None,
    ) -> None:
        """`dirty` is where the Discord adapter marks members whose roles changed on Discord. `campaigns`: every
        campaign refreshed, each for the servers that follow it (one `CampaignService`: that campaign alone).
        `on_changed(snapshots, campaign id)` hears each page's members whose snapshot changed, once stored (the
        opt-in DMs: a declined payment keeps its roles, so no role job would tell them). `on_auto_linked`: each
        link auto-match makes (bot/sync/auto_match.py). `on_forgotten(patreon ids, campaign key)` hears who a
        complete listing forgot (with shards: their roles in other processes' servers go to those processes)."""
        self.on_forgotten = on_forgotten
        self.client = client
        self.on_auto_linked = on_auto_linked
        self.store = store
        self.campaigns = campaigns if isinstance(campaigns, CampaignRegistry) else CampaignRegistry.of(campaigns)
        self.reconcile = reconcile
        self.jobs = jobs
        self.gateway = gateway
        self.clock = clock
        self.dirty = dirty
        self.scope = GuildScope()
        self.page_size = page_size
        #: How many campaigns refresh side by side (bot/sync/refresh_schedule.py says why one by default).
        self.campaign_concurrency = campaign_concurrency
        #: Which campaign goes first: the one whose last complete refresh is the oldest.
        self.rotation = RefreshRotation()
        #: One process at a time refreshes a campaign (several may share the database); the others skip it.
        self.exclusive = OneProcessAtATime(store)
        self._lock = asyncio.Lock()
        #: Set while something is stored or forgotten but not yet planned (a failure then needs a full plan).
        self._unplanned_flag: contextvars.ContextVar[bool] = contextvars.ContextVar("unplanned", default=False)
        self.listing = ListingReader(client, store, jobs, self._unplanned_flag, on_changed)
        self.last_report: RefreshReport | None = None
        #: The servers each campaign (by its token subject, one per campaign) acted in at its last refresh.
        self._acting: dict[str, list[int]] = {}
        #: Which campaign last planned each server: a server that now follows another one is planned in full.
        self._planned_for: dict[int, str] = {}

    @property
    def _unplanned(self) -> bool:
        """Set while something is stored or forgotten but not yet planned (a failure then needs a full plan); per
        campaign's task, so campaigns refreshing side by side never see each other's."""
        return self._unplanned_flag.get()

    @_unplanned.setter
    def _unplanned(self, value: bool) -> None:
        self._unplanned_flag.set(value)

    def request_full_plan(self, guild_id: int) -> None:
        """The next refresh plans every member of this guild, not only what changed (`/patreon-admin sync`)."""
        self.scope.request_full(guild_id)

    async def run(self, cause: str = "scheduled") -> RefreshReport:
        """One full refresh of every campaign in turn (refreshes never overlap: a second caller waits for the first
        to finish). One campaign failing changes nothing for the others. Returns the campaign's report (several:
        their sum, ok only when all were)."""
        async with self._lock:
            marked, overflowed = self.dirty.take()
            services = self.campaigns.services()
            self.rotation.forget_except({campaign.token_subject for campaign in services})
            ordered = self.rotation.order(services, lambda campaign: campaign.token_subject)

            async def one(campaign: CampaignService) -> RefreshReport:
                report = await self.exclusive.run(
                    f"refresh {campaign.token_subject}",
                    lambda: self._run_campaign(campaign, cause, marked, overflowed),
                )
                if report is None:  # another process refreshes it now: no failure, and its marks wait for us
                    self.dirty.restore(marked, overflowed)
                    now = self.clock()
                    return RefreshReport(ok=True, cause=cause, started_at=now, finished_at=now, detail=SKIPPED)
                self.rotation.finished(campaign.token_subject, report.ok)
                return report

            reports = await run_each(ordered, one, self.campaign_concurrency)
            if any(report.ok for report in reports):  # one process at a time: a patron's refresh token works once
                await self.exclusive.run("patron tokens", lambda: self._refresh_patron_tokens_and_prune(reports))
            report = combined(reports, cause, self.clock())
            self.last_report = report
            return report

    async def refresh_campaign(self, campaign: CampaignService, cause: str, *, wait: float) -> RefreshReport | None:
        """One campaign's listing now, outside the periodic run (a webhook flood: bot/sync/webhook_flood.py), under
        the same per-campaign lock, waiting up to `wait` s for whoever holds it (their listing may have started
        before what the caller needs listed); None when it stayed held. Marks on Discord wait for the periodic run."""
        async with self.store.exclusive(f"refresh {campaign.token_subject}", wait=wait) as held:
            if not held:
                return None
            report = await self._run_campaign(campaign, cause, {}, set())
        self.rotation.finished(campaign.token_subject, report.ok)
        return report

    async def _refresh_patron_tokens_and_prune(self, reports: list[RefreshReport]) -> None:
        """Once per run, not per campaign: patron tokens belong to people, and the event log is one table."""
        try:
            refreshed = await self._refresh_patron_tokens()
            await self.store.prune_webhook_events(self.clock() - KEEP_WEBHOOK_EVENTS)
        except Exception:
            log.exception("refresh: patron tokens or the event prune failed; the next refresh tries again")
            return
        next(report for report in reports if report.ok).patron_tokens_refreshed = refreshed

    async def _run_campaign(
        self, campaign: CampaignService, cause: str, marked: dict[int, set[int]], overflowed: set[int]
    ) -> RefreshReport:
        report = RefreshReport(ok=False, cause=cause, started_at=self.clock())
        requests_before = self.client.request_count
        try:
            await self._refresh(report, campaign, marked, overflowed)
        except (PatreonError, CampaignUnavailable) as error:
            report.ok = False
            report.detail = f"failed, nothing was removed: {error}"
            log.warning("refresh (%s) %s", cause, report.detail)
        except Exception as error:
            report.ok = False
            report.detail = f"failed unexpectedly ({type(error).__name__}: {error}); the next refresh tries again"
            log.exception("refresh (%s) failed unexpectedly", cause)
        else:
            report.ok = True
        report.finished_at = self.clock()
        report.patreon_requests = self.client.request_count - requests_before
        if report.ok:
            log.info("refresh (%s) campaign %s: %s", cause, campaign.known_campaign_id(), report.detail)
        await self.store.set_fact(campaign.fact_key(LAST_REFRESH), report.fact())
        return report

    async def _refresh(
        self,
        report: RefreshReport,
        campaign: CampaignService,
        marked_all: dict[int, set[int]],
        overflowed_all: set[int],
    ) -> None:
        acting = await self.reconcile.guilds_following(campaign)
        self.scope.keep_only(sorted(set(acting) | set(self._other_guilds(campaign))))
        marked = {guild: users for guild, users in marked_all.items() if guild in acting}
        overflowed = overflowed_all & set(acting)
        key = await campaign.storage_key()
        if not await self.store.get_tiers(key):
            try:
                await campaign.refresh_tiers()
            except (PatreonError, CampaignUnavailable) as error:
                log.warning("refresh: no tier catalogue yet and could not load it: %s", error)
        key = await campaign.storage_key()  # the tier load may have told the campaign's id
        tiers, now, started_wall = await self.store.get_tiers(key), self.clock(), datetime.now(UTC)
        self._acting[campaign.token_subject] = acting
        for guild_id in acting:
            if self._planned_for.setdefault(guild_id, campaign.token_subject) != campaign.token_subject:
                log.info("refresh: guild=%s now follows another campaign; planning every member", guild_id)
                self.scope.request_full(guild_id)
                self._planned_for[guild_id] = campaign.token_subject
        guilds: list[GuildInputs] = []
        try:
            fingerprints = {}
            for guild_id in acting:
                settings, tier_roles, fingerprints[guild_id] = await load_guild_inputs(
                    self.store, self.gateway, guild_id, tiers
                )
                why = self.scope.full_reason(guild_id, fingerprints[guild_id], now, guild_id in overflowed)
                state = self.scope.state(guild_id)
                since = state.planned_at if state is not None else None
                guilds.append(GuildInputs(guild_id, settings, tier_roles, full=why is not None, since=since))
                if why is not None:
                    report.full_replan_guilds += 1
                    log.info("refresh: planning every member of guild=%s (%s)", guild_id, why)
            planner = RefreshPlanner(self.store, self.gateway, guilds, tiers, now, key)
            auto_matching = any(guild.settings.auto_match_discord for guild in guilds)
            with fewer_collections():
                listing = await self.listing.stream(report, planner, auto_matching, campaign, self.page_size)
            key = await campaign.storage_key()
            if listing.total is None:
                await check_unconfirmed_forget(self.store, listing.listed, report.started_at, key)
            # The listing is complete: from here on absence counts.
            self._unplanned = True  # once forgotten, a gone member is found again only by a full plan
            gone = await self.store.delete_memberships_except(
                listing.listed, report.started_at, key, listing.stored_not_listed()
            )
            report.snapshots_forgotten = len(gone)
            if gone and self.on_forgotten is not None:
                await self.on_forgotten(gone, key)
            matched = await auto_match(
                self.store, self.gateway, self.reconcile, listing.unmatched, self.clock(), self.on_auto_linked
            )
            report.auto_linked = len(matched)
            unlisted = set(gone) | await self.store.pending_webhook_patreon_ids(report.started_at, key)
            for guild in guilds:
                members = await self._members_not_on_a_page(
                    guild, unlisted, marked.get(guild.guild_id, set()), now, key
                )
                await planner.plan_members(guild, members | {discord_id for discord_id, _ in matched})
            await self.listing.enqueue(planner, report)
        except BaseException:
            self.dirty.restore(marked, overflowed)  # not planned: the next refresh plans them
            if self._unplanned:  # stored (or forgotten) but maybe not planned: only a full plan would see it now
                log.warning("refresh failed between storing and planning; the next one plans every member")
                for guild in guilds:
                    self.scope.request_full(guild.guild_id)
            raise
        finally:
            self._unplanned = False
        for guild in guilds:
            self.scope.planned(guild.guild_id, fingerprints[guild.guild_id], now, started_wall, guild.full)
        plan = planner.result
        report.members_planned, report.members_checked = plan.planned, plan.checked
        report.roles_differ, report.members_unchecked = plan.changes, plan.unchecked
        # Only now do the pending webhook events have nothing left to do: their members' jobs are queued.
        await self.store.supersede_webhook_events(report.started_at, self.clock(), key)
        report.detail = (
            f"{report.members_listed} member(s) in {report.pages} page(s); {report.roles_differ} member(s) "
            f"need a role change; {report.snapshots_forgotten} gone; {report.auto_linked} auto-linked; "
            f"{report.members_planned} planned"
        )
        if report.full_replan_guilds:
            report.detail += f" (every member of {report.full_replan_guilds} server(s))"
        if report.members_without_user:
            report.detail += (
                f"; {report.members_without_user} member(s) without a Patreon account (deleted) can't be linked"
            )

    def _other_guilds(self, campaign: CampaignService) -> list[int]:
        """Servers other campaigns refreshed last (their plan state is theirs; this campaign's prune spares it)."""
        return [guild for key, acting in self._acting.items() if key != campaign.token_subject for guild in acting]

    async def _members_not_on_a_page(
        self, guild: GuildInputs, unlisted: set[str], marked: set[int], now: datetime, campaign_key: str | None = None
    ) -> set[int]:
        """Who in `guild` the pages could not plan: holders of a grant without a link that counts there and, in
        full, every member linked to no stored membership; for changes only, the members of `unlisted` Patreon
        users (gone, or with a pending webhook), those whose roles time alone may have changed since the last plan
        (their standing's moments, kept by the store), those marked on Discord, and links made since the last plan."""
        members = await self.store.grant_holders_without_link(guild.guild_id)
        if guild.full:
            return members | await self.store.links_without_membership(guild.guild_id, campaign_key)
        due: list[str] = []
        if campaign_key is not None and guild.since is not None:
            grace = guild.settings.decline_grace_days
            due = await self.store.memberships_due_by_time(campaign_key, guild.since, now, grace)
        members |= set(await self.store.links_counting_in_for_patreon(guild.guild_id, unlisted | set(due)))
        state = self.scope.state(guild.guild_id)
        if state is not None:
            members |= await self.store.links_made_since(guild.guild_id, state.started_wall)
        return members | marked

    async def _refresh_patron_tokens(self) -> int:
        """Refresh linked patrons' tokens that expire within a week; a refused one is dropped (the link stays).

        Refused means `invalid_grant` only: `invalid_client` says our client credentials are wrong, not the
        patron's token, and any other failure (a 403 from the edge, 5xx) is tried again next refresh.
        """
        refreshed = 0
        due = await self.store.tokens_expiring("patron:", self.clock() + PATRON_TOKEN_MARGIN)
        for subject, listed in due:
            # One at a time with the patron's own `/patreon refresh` (bot/accounts/self_refresh.py): the refresh
            # token is single use, so a pair rotated (or unlinked) meanwhile is neither refreshed nor dropped.
            async with self.store.token_refresh(subject) as held:
                tokens = await self.store.get_tokens(subject) if held else None
                if tokens is None or tokens.refresh_token != listed.refresh_token:
                    continue
                try:
                    fresh = await self.client.refresh(tokens.refresh_token, priority=Priority.REFRESH)
                except PatreonError as error:
                    if grant_refused(error, client_too=False):
                        log.warning("patron token %s was refused (%s); dropped, the link stays", subject, error)
                        await self.store.delete_tokens(subject)
                        continue
                    log.info("patron token %s: refresh failed for now (%s)", subject, error)
                    continue
                if await self.store.get_tokens(subject) is not None:  # not unlinked meanwhile
                    await self.store.save_tokens(subject, fresh)
                    refreshed += 1
        return refreshed


class RefreshScheduler:
    """Runs a refresh at start-up and then every `interval_minutes` ± `jitter` (so many bots don't align)."""

    def __init__(
        self, refresh: RefreshService, interval_minutes: float, jitter: float = 0.1, rng: random.Random | None = None
    ) -> None:
        self.refresh = refresh
        self.interval_minutes = interval_minutes
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.first_run_done = asyncio.Event()
        self._stopping = asyncio.Event()

    def next_delay(self) -> float:
        return self.interval_minutes * 60 * (1 + self._rng.uniform(-self.jitter, self.jitter))

    async def run(self) -> None:
        self._stopping.clear()
        cause = "start-up"
        while not self._stopping.is_set():
            try:
                await self.refresh.run(cause)
            except Exception:
                log.exception("refresh (%s) crashed", cause)
            self.first_run_done.set()
            cause = "scheduled"
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.next_delay())
            except TimeoutError:
                continue

    def stop(self) -> None:
        self._stopping.set()
