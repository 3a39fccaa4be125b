"""Applying recorded webhook events: re-fetch the member, store what Patreon says now, queue the role jobs.

The payload only says which member changed. Re-fetching and storing the snapshot with the fetch time means a
duplicated, reordered or late delivery can never roll state back. A 404 means the membership is gone. When
Patreon can't be reached the events stay pending and are retried with back-off (nothing is removed meanwhile);
after `max_attempts` they are given up, and the next complete refresh covers them anyway.

Every process may run an applier on one database (issue 11): a pass claims its events first (bot/store/claims.py),
so each is applied once, and renews the claims while it runs; a killed process's events are free again after the
lease.

A flood (more look-ups of one campaign than its creator token can send now, and more than a listing of it costs)
is answered by one listing of the campaign instead (bot/sync/webhook_flood.py), and look-ups its token has no room
for wait for its window outside the pass, so a spent token never holds another campaign's webhooks. Each
campaign's events are weighed and looked up apart from the others' in a pass: weighing reads the creator token,
which may mean refreshing it at Patreon first, and that holds up only that campaign's events (review 4, R4-4).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.domain.models import MembershipSnapshot
from bot.patreon.client import PatreonClient
from bot.patreon.errors import PatreonError, PatreonNotFound, PatreonRequestError
from bot.store import Link, Store
from bot.store.campaigns import OAUTH_SOURCE
from bot.store.leases import Claimer, LeaseRenewal
from bot.store.queues import DONE, FAILED, IGNORED, WebhookEvent
from bot.sync.auto_match import auto_match
from bot.sync.campaign import CampaignService, CampaignUnavailable
from bot.sync.campaign_registry import CampaignRegistry
from bot.sync.reconcile import ReconcileService
from bot.sync.role_gateway import RoleGateway
from bot.sync.role_jobs import RoleJobs
from bot.sync.webhook_flood import FloodListings, ListCampaign
from bot.sync.worker import BackgroundWorker

log = logging.getLogger(__name__)


class WebhookApplier(BackgroundWorker):
    """The receiver records events and calls `wake()`; the worker (one per process) is `start()`ed by a cog."""

    name = "webhook applier"

    def __init__(
        self,
        store: Store,
        client: PatreonClient,
        campaigns: CampaignRegistry | CampaignService,
        reconcile: ReconcileService,
        jobs: RoleJobs,
        gateway: RoleGateway,
        clock: Callable[[], datetime],
        *,
        concurrency: int = 4,
        batch: int = 200,
        max_attempts: int = 12,
        retry_base: float = 5.0,
        retry_cap: float = 900.0,
        on_auto_linked: Callable[[str], None] = lambda how: None,
        claimer: Claimer | None = None,
        list_campaign: ListCampaign | None = None,
    ) -> None:
        """`on_auto_linked`: each link auto-match makes from a webhook's member (bot/sync/auto_match.py).
        `claimer`: this process's owner id and lease for claiming events (None: a fresh owner id).
        `list_campaign`: the refresh's `refresh_campaign`, which answers a flood (None: floods are looked up)."""
        super().__init__(clock)
        self.claimer = claimer or Claimer()
        self.store = store
        self.on_auto_linked = on_auto_linked
        self.client = client
        #: Each event is applied for the campaign whose URL and secret received it, with that creator's token.
        self.campaigns = campaigns if isinstance(campaigns, CampaignRegistry) else CampaignRegistry.of(campaigns)
        self.reconcile = reconcile
        self.jobs = jobs
        self.gateway = gateway
        self.concurrency = concurrency
        self.batch = batch
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._busy = False
        self._pass_lock = asyncio.Lock()
        self.floods = FloodListings(store, client.budget, list_campaign, clock, self.claimer, on_released=self.wake)

    async def work(self) -> bool:
        return await self.apply_due() > 0

    async def resume(self) -> None:
        """On SQLite, a dead predecessor's claims are let go at once (a failure here costs only their lease)."""
        try:
            await self.store.release_claims_of_earlier_runs(self.claimer.owner)
        except Exception as error:
            log.warning("webhook applier: could not let go of earlier runs' claims (%s); their lease ends them", error)

    async def next_due(self) -> datetime | None:
        return await self.store.next_claimable_webhook_event(owner=self.claimer.owner)

    async def busy(self) -> bool:
        """A flood listing under way counts: the events it took over are applied when it ends."""
        return self._busy or self.floods.active or bool(await self.store.due_webhook_events(self.clock(), limit=1))

    async def drain(self, timeout: float) -> None:
        await self.floods.close()

    async def apply_due(self) -> int:
        """One pass over the due events, one fetch per member; return how many events were handled."""
        async with self._pass_lock:  # two passes at once could fetch and apply the same events twice
            self._busy = True
            try:
                # Someone waits on these: the refresh's next pages (and the work each brings) wait for this pass.
                async with self.client.budget.urgent():
                    return await self._apply_batch()
            finally:
                self._busy = False

    async def _apply_batch(self) -> int:
        claimer = self.claimer
        events = await self.store.claim_due_webhook_events(
            self.clock(), self.batch, owner=claimer.owner, lease=claimer.lease
        )
        ids = [event.id for event in events]

        async def renew() -> None:  # a flood's listing renews its own too; events let go are no longer held
            await self.store.renew_webhook_event_claims(ids, owner=claimer.owner, until=self.clock() + claimer.lease)

        gate = asyncio.Semaphore(self.concurrency)

        async def one(addressed: str, member_id: str, group: list[WebhookEvent]) -> None:
            async with gate:
                try:
                    campaign = self._campaign(addressed)
                    if campaign is None:
                        await self._not_served(addressed, member_id, group)
                        return
                    await self._apply_member(campaign, member_id, group)
                except Exception as error:  # one bad member must not stall the others; bounded retries
                    log.exception("webhook member=%s: applying failed", member_id)
                    await self._retry_later(member_id, group, f"{type(error).__name__}: {error}")

        async def of_campaign(campaign: CampaignService | None, group: list[WebhookEvent]) -> None:
            """Weighed for a flood (reading its creator token, which may refresh it at Patreon first), then looked
            up: apart from the other campaigns', so one campaign's slow token holds up only its own webhooks."""
            kept = group if campaign is None else await self.floods.take(campaign, group)
            by_member: dict[tuple[str, str], list[WebhookEvent]] = {}
            for event in kept:
                by_member.setdefault((event.addressed_campaign_id or "", event.member_id or ""), []).append(event)
            await asyncio.gather(*(one(addressed, member, same) for (addressed, member), same in by_member.items()))

        async with LeaseRenewal(renew, claimer.lease, self.name):
            if any(self._campaign(event.addressed_campaign_id or "") is None for event in events):
                await self._reload_campaigns()
            parts = self._by_campaign(events)
            outcomes = await asyncio.gather(*(of_campaign(c, g) for c, g in parts), return_exceptions=True)
        for outcome in outcomes:  # a weighing that failed (the store): the pass fails once every part has ended
            if isinstance(outcome, BaseException):
                raise outcome
        return len(events)

    def _by_campaign(self, events: list[WebhookEvent]) -> list[tuple[CampaignService | None, list[WebhookEvent]]]:
        """The events by the campaign serving them ('' and the `.env` campaign's id are one), those of a campaign
        not served here together (None)."""
        parts: dict[str | None, tuple[CampaignService | None, list[WebhookEvent]]] = {}
        for event in events:
            campaign = self._campaign(event.addressed_campaign_id or "")
            key = None if campaign is None else campaign.token_subject
            parts.setdefault(key, (campaign, []))[1].append(event)
        return list(parts.values())

    async def _reload_campaigns(self) -> None:
        """Another process may have connected a campaign (and recorded its first webhook) since this one's last
        reload, which runs only every few seconds: serve what the database says before giving such an event up."""
        try:
            await self.campaigns.reload()
        except Exception as error:  # the event retries below rather than being ignored
            log.warning("webhook applier: could not reload the connected campaigns (%s)", error)

    async def _not_served(self, addressed: str, member_id: str, events: list[WebhookEvent]) -> None:
        """An event of a campaign this process doesn't serve even after a reload: ignored when the database has no
        such connected campaign (disconnected), else retried (this process will serve it at its next reload)."""
        record = await self.store.get_campaign(addressed) if addressed else None
        if record is not None and record.source == OAUTH_SOURCE:
            await self._retry_later(member_id, events, f"campaign {addressed} is not served here yet")
            return
        log.warning("webhook member=%s: campaign %s is no longer connected; ignored", member_id, addressed)
        await self._finish([e.id for e in events], IGNORED, self.clock(), "campaign not connected")

    def _campaign(self, addressed: str) -> CampaignService | None:
        """The campaign an event was addressed to; '' (the legacy URL, or recorded before its id was known) is
        the `.env` campaign's."""
        if not addressed:
            return self.campaigns.env
        return self.campaigns.get(addressed)

    async def _apply_member(self, campaign: CampaignService, member_id: str, events: list[WebhookEvent]) -> None:
        ids = [event.id for event in events]
        trigger = events[-1].trigger
        hint_user = next((event.patreon_user_id for event in reversed(events) if event.patreon_user_id), None)
        fetched_at = self.clock()
        stored_id: str | None = None  # the stored membership re-read after a 404 that named another one
        try:
            campaign_id = await campaign.campaign_id()
            snapshot = await self._fetch(campaign, member_id)
            if snapshot is None and hint_user is not None:
                known = await self.store.get_membership(hint_user, campaign_id)
                if known is not None and known.member_id not in (None, member_id):
                    # Patreon may have deleted the stored one too, with its webhook lost; keeping it unasked would
                    # leave its roles on a patron who pays nothing until the next refresh. One call, only here.
                    stored_id = known.member_id
                    snapshot = await self._fetch(campaign, stored_id)
        except PatreonRequestError as error:
            log.warning("webhook member=%s: Patreon refused the re-fetch (%s); events %s failed", member_id, error, ids)
            await self._finish(ids, FAILED, self.clock(), str(error)[:500])
            return
        except (PatreonError, CampaignUnavailable) as error:
            await self._retry_later(member_id, events, str(error))
            return
        patreon_ids: set[str] = set()
        if snapshot is None:
            if hint_user is not None:
                if stored_id is None:
                    await self.store.delete_membership_observed_before(
                        hint_user, fetched_at, member_id, campaign_id=campaign_id
                    )
                else:
                    await self.store.delete_membership_observed_before(
                        hint_user, fetched_at, stored_id, also_gone=member_id, campaign_id=campaign_id
                    )
                patreon_ids.add(hint_user)
            log.info(
                "webhook %s member=%s%s: gone at Patreon (404); membership forgotten",
                trigger,
                member_id,
                f" and the stored member={stored_id}" if stored_id else "",
            )
        else:
            if snapshot.campaign_id is not None and snapshot.campaign_id != campaign_id:
                log.warning("webhook member=%s belongs to campaign %s, not ours; ignored", member_id, campaign_id)
                await self._finish(ids, IGNORED, self.clock(), "another campaign")
                return
            if snapshot.patreon_user_id is None:
                snapshot = dataclasses.replace(snapshot, patreon_user_id=hint_user)
            if snapshot.patreon_user_id is None:
                await self._finish(ids, FAILED, self.clock(), "member has no Patreon user")
                return
            stored = await self.store.save_membership(snapshot, campaign_id)
            if snapshot.social_discord_id is not None and not await self._linked(snapshot.patreon_user_id):
                # Only a patron linked to nobody, or only by hand (which may give way to Patreon's word, R5-5), can be
                # matched; auto_match reads every acting server's settings first, which for a patron linked himself
                # (most webhooks) was that many reads behind the refresh's writes.
                await auto_match(
                    self.store, self.gateway, self.reconcile, [snapshot], self.clock(), self.on_auto_linked
                )
            patreon_ids.add(snapshot.patreon_user_id)
            log.info(
                "webhook %s member=%s user=%s: %s (%s)",
                trigger,
                member_id if stored_id is None else f"{member_id} gone (404), the stored member={stored_id} kept",
                snapshot.patreon_user_id,
                snapshot.patron_status or "no pledge",
                "stored" if stored else "not stored: a newer look, or Patreon's 404 since, is already stored",
            )
        keys: list[tuple[int, int]] = []
        for patreon_id in patreon_ids:
            link = await self.store.get_link_by_patreon(patreon_id)
            if link is not None:
                keys += await self._servers_to_tell(link, campaign_id)
                await self.reconcile.hand_off(link.discord_user_id, f"webhook {trigger}")  # other shards' servers
        if keys:
            await self.jobs.enqueue_many(keys, f"webhook {trigger}", urgent=True)
        await self._finish(ids, DONE, self.clock())

    async def _linked(self, patreon_user_id: str) -> bool:
        """Linked by the patron's own sign-in or an auto-match: no match to weigh."""
        link = await self.store.get_link_by_patreon(patreon_user_id)
        return link is not None and not link.by_hand

    async def _servers_to_tell(self, link: Link, campaign_id: str) -> list[tuple[int, int]]:
        """The (server, member) jobs a change of this campaign's patron needs: servers that follow the campaign
        (another campaign's patron changes nothing there) and act, where the member may be (memory doesn't say they
        aren't), and where the link counts or our grants are held (so the job can take them back).

        Followers are picked first: which campaign a server follows is read from memory, whether it acts from its
        settings, so only this campaign's servers are read. Asking every acting server first (50 campaigns: 50
        settings reads a webhook, each queued behind the refresh's writes on the one connection) made a webhook
        wait seconds while the campaigns refreshed (bench/campaigns_bench.py)."""
        user_id, gateway = link.discord_user_id, self.gateway
        keys: list[tuple[int, int]] = []
        for guild_id in gateway.guild_ids():
            if not await self._follows(guild_id, campaign_id):
                continue
            if gateway.knows_member(guild_id, user_id) and gateway.cached_member_roles(guild_id, user_id) is None:
                continue  # Discord said they aren't a member there
            if await self.reconcile.participation_refusal(guild_id) is not None:
                continue  # the server doesn't act (not turned on, or not the creator's)
            if link.counts_in(guild_id) or await self.store.granted_roles(guild_id, user_id):
                keys.append((guild_id, user_id))
        return keys

    async def _follows(self, guild_id: int, campaign_id: str) -> bool:
        key = await self.reconcile.campaign_key(guild_id)
        return key is None or key == campaign_id

    async def _fetch(self, campaign: CampaignService, member_id: str) -> MembershipSnapshot | None:
        """What Patreon says of the member now; None when it answers 404 (the membership is gone)."""
        try:
            return await campaign.with_creator_token(lambda token: self.client.get_member(token, member_id))
        except PatreonNotFound:
            return None

    async def _retry_later(self, member_id: str, events: list[WebhookEvent], error: str) -> None:
        ids = [event.id for event in events]
        attempts = max(event.attempts for event in events) + 1
        if attempts >= self.max_attempts:
            log.warning(
                "webhook member=%s: giving up after %d attempts (%s); the next refresh covers it",
                member_id,
                attempts,
                error,
            )
            await self._finish(ids, FAILED, self.clock(), error[:500])
            return
        delay = min(self.retry_cap, self.retry_base * 2 ** (attempts - 1))
        log.info("webhook member=%s: Patreon unavailable (%s); retry %d in %.0fs", member_id, error, attempts, delay)
        await self.store.retry_webhook_events(
            ids, self.clock() + timedelta(seconds=delay), error[:500], owner=self.claimer.owner
        )

    async def _finish(self, ids: list[int], state: str, now: datetime, error: str | None = None) -> None:
        """Only events this process still holds: after its lease ran out another one may have taken them."""
        await self.store.finish_webhook_events(ids, state, now, error, owner=self.claimer.owner)
