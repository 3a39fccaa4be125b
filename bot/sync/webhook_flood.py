"""A flood of webhook deliveries for one campaign is answered by one listing of it, not by a look-up per member.

Why: every delivery is one `GET /members/{id}` with the campaign's creator token, and Patreon allows a token 100
requests a minute (docs/patreon-api.md "Rate limits"; the budget keeps to it, bot/patreon/budget.py). On a charge
day thousands of deliveries arrive for one campaign: looked up one by one they would take 30 minutes for 3,000,
while one listing (1,000 members a page) answers all of them in a few requests.

The threshold (`flood_wanted`), per campaign and per applier pass: a campaign floods when its creator token's
look-ups in the last minute, with the pass's members (distinct), would be more than half the token's limit
(`FLOOD_SHARE`: 50 of Patreon's 100 a minute; the campaign's own listing pages don't count, so a webhook during a
refresh is looked up as ever), and a listing of it costs at most a quarter of the limit (`LISTING_SHARE`: 25
pages, a campaign of up to 24,000 members: its stored members per 1,000, plus one). Then one listing answers them,
and while it runs or waits every later event of the campaign joins the next one (one running and one waiting per
campaign at most), so the other half of the window is left to the listings. Below that, small floods keep the
per-member look-up (fresher, and faster for a few). A campaign too big to list cheaply is looked up one by one: as
many as its token has room for now, the rest deferred until the token frees a slot, so a pass never sits on a
spent token while other campaigns' webhooks wait. A listing that failed makes the campaign's floods look up for a
while (`retry_base` doubling up to `retry_cap`), so a broken listing is never retried in a loop.

Nothing is lost, and nothing is done early. The events a listing covers stay pending, deferred (not due, attempts
unchanged, still claimed) while it runs, renewed every third of the lease; only the listing marks them superseded,
once it completed and planned every member (bot/sync/refresh.py, events received before it started). A listing
that fails, or that another process holds the campaign's lock for longer than `lock_wait`, leaves them pending and
due again at once; a crash leaves them due when the deferral runs out (a lease). A failed listing forgets nobody
and removes no role (bot/sync/refresh.py). Events received after a listing was asked for are not its: they are
looked up, or another flood asks for one more listing after it (one running and one waiting per campaign at most).

Shards: any process may apply any campaign's events; a flood listing takes the campaign's refresh lock
(`Store.exclusive`), so only one process lists a campaign at a time, and one that finds it taken waits for it and
then lists again (the other listing may have started before these events arrived).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.patreon.budget import RequestBudget
from bot.patreon.client import MAX_PAGE_SIZE
from bot.store import Store
from bot.store.leases import Claimer, LeaseRenewal
from bot.store.queues import WebhookEvent
from bot.sync.campaign import CampaignService

log = logging.getLogger(__name__)

#: Seconds a flood listing waits for another holder of the campaign's refresh lock before it lets its events go.
LOCK_WAIT = 60.0


class ListingOutcome(Protocol):
    """What a flood listing needs of a refresh report (bot/sync/refresh.py `RefreshReport`)."""

    ok: bool
    detail: str
    pages: int
    patreon_requests: int


#: `refresh_campaign(campaign, cause, wait=…)` (bot/sync/refresh.py): None when the lock stayed held.
ListCampaign = Callable[..., Awaitable[ListingOutcome | None]]


#: A campaign floods when its token's look-ups in a window would be more than this share of the token's limit.
FLOOD_SHARE = 0.5
#: ... and a listing of it costs at most this share of the token's window.
LISTING_SHARE = 0.25


def flood_wanted(members: int, token_lookups: int | None, token_limit: int | None, listing_pages: int) -> bool:
    """Whether `members` look-ups of one campaign are better answered by one listing of `listing_pages` pages:
    when, with the `token_lookups` its token has in its window already, they would be more than half the token's
    `token_limit` (None: tokens aren't budgeted, never), and the listing is cheap (a quarter of the limit at most)."""
    if token_lookups is None or token_limit is None:
        return False
    return token_lookups + members > token_limit * FLOOD_SHARE and listing_pages <= token_limit * LISTING_SHARE


def listing_pages(stored_members: int, page_size: int = MAX_PAGE_SIZE) -> int:
    """What one listing costs, from the members stored: its pages, and one for good measure (a tier read, a
    campaign grown since)."""
    return math.ceil(stored_members / page_size) + 1


@dataclass
class _Listing:
    """One listing asked for: it covers the events received before `requested_at` (it starts later)."""

    requested_at: datetime
    ids: set[int] = field(default_factory=set)
    started: bool = False


@dataclass
class _CampaignFloods:
    campaign: CampaignService
    current: _Listing | None = None
    following: _Listing | None = None
    task: asyncio.Task[None] | None = None
    failures: int = 0
    #: After a failed listing, this campaign's floods are looked up until then.
    list_again_at: datetime | None = None


class FloodListings:
    """The webhook applier's flood handling (see the module docstring); `take` is called once per campaign per
    pass, with the events the pass claimed."""

    def __init__(
        self,
        store: Store,
        budget: RequestBudget,
        list_campaign: ListCampaign | None,
        clock: Callable[[], datetime],
        claimer: Claimer,
        *,
        lock_wait: float = LOCK_WAIT,
        retry_base: float = 5.0,
        retry_cap: float = 300.0,
        on_released: Callable[[], None] = lambda: None,
    ) -> None:
        """`list_campaign` None: floods are looked up like any webhook (no refresh to list with). `on_released`:
        events a listing let go are due again (the applier wakes, rather than sleeping out their deferral)."""
        self.store = store
        self.budget = budget
        self.list_campaign = list_campaign
        self.clock = clock
        self.claimer = claimer
        self.lock_wait = lock_wait
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.on_released = on_released
        self._campaigns: dict[str, _CampaignFloods] = {}
        #: Floods answered by a listing since start (tests, benches, /metrics read it).
        self.listings = 0
        #: Events whose look-up waited for its token's window (deferred, not looked up in that pass).
        self.deferred_lookups = 0

    @property
    def active(self) -> bool:
        """A flood listing is asked for or running (the applier is busy until it ends)."""
        return any(state.task is not None for state in self._campaigns.values())

    async def take(self, campaign: CampaignService, events: list[WebhookEvent]) -> list[WebhookEvent]:
        """Of one campaign's claimed events, defer to a listing those it covers (or a flood's), defer those its
        token has no room for; return the ones to look up now."""
        if self.list_campaign is None or not events:
            return events
        now = self.clock()
        state = self._campaigns.setdefault(campaign.token_subject, _CampaignFloods(campaign))
        state.campaign = campaign
        listing_allowed = state.list_again_at is None or now >= state.list_again_at
        if state.task is not None and listing_allowed:  # flooding: the running listing or the next one answers
            current = state.current
            covered = [e for e in events if current is not None and e.received_at < current.requested_at]
            if covered and current is not None:
                await self._defer_to(current, covered, now)
            rest = [e for e in events if current is None or e.received_at >= current.requested_at]
            if rest:
                await self._defer_to(self._listing_for(state, now), rest, now)
            return []
        members = list(dict.fromkeys(event.member_id or "" for event in events))
        try:
            token = await campaign.creator_access_token()
        except Exception as error:  # the look-ups meet the same trouble and handle it (retry, fail)
            log.debug("webhook: no creator token to weigh the look-ups by (%s); looking up", error)
            return events
        budget = self.budget
        room, looked_up, limit = budget.token_room(token), budget.token_lookups(token), budget.token_limit
        if room is None or looked_up is None or limit is None:
            return events
        if len(members) <= room and looked_up + len(members) <= limit * FLOOD_SHARE:
            return events  # no flood (and no store read to weigh one)
        pages = listing_pages(await self.store.membership_count(await campaign.storage_key()))
        if listing_allowed and flood_wanted(len(members), looked_up, limit, pages):
            log.info(
                "webhook flood: campaign %s has %d member(s) to look up after %d look-up(s) in its token's window; a "
                "listing (about %d page(s)) answers them and what follows",
                campaign.known_campaign_id(),
                len(members),
                looked_up,
                pages,
            )
            await self._defer_to(self._listing_for(state, now), events, now)
            self._start(state)
            return []
        if len(members) <= room:
            return events
        now_members = set(members[:room])
        lookups = [e for e in events if (e.member_id or "") in now_members]
        later = [e for e in events if (e.member_id or "") not in now_members]
        wait = max(1.0, self.budget.token_frees_in(token))
        self.deferred_lookups += len(later)
        log.info(
            "webhook campaign %s: the token has room for %d look-up(s) now; %d event(s) wait %.0fs for its window",
            campaign.known_campaign_id(),
            room,
            len(later),
            wait,
        )
        await self.store.defer_webhook_events(
            [e.id for e in later], now + timedelta(seconds=wait), owner=self.claimer.owner, release=True
        )
        return lookups

    def _listing_for(self, state: _CampaignFloods, now: datetime) -> _Listing:
        """The listing a new flood joins: one not yet started (asked for again now, so it covers this flood too),
        else a new one after the running one."""
        for listing in (state.current, state.following):
            if listing is not None and not listing.started:
                listing.requested_at = now
                return listing
        made = _Listing(now)
        if state.current is None:
            state.current = made
        else:
            state.following = made
        return made

    async def _defer_to(self, listing: _Listing, events: list[WebhookEvent], now: datetime) -> None:
        ids = [event.id for event in events]
        listing.ids.update(ids)  # before the write: a listing ending meanwhile lets these go too
        await self.store.defer_webhook_events(ids, now + self.claimer.lease, owner=self.claimer.owner)

    def _start(self, state: _CampaignFloods) -> None:
        if state.task is None:
            state.task = asyncio.get_running_loop().create_task(self._run(state), name="webhook flood listing")

    async def _run(self, state: _CampaignFloods) -> None:
        try:
            while state.current is not None:
                listing = state.current
                listing.started = True
                failed = not await self._list(state, listing)
                state.current, state.following = state.following, None
                if failed and state.current is not None:  # no listing again at once: they are looked up meanwhile
                    listing.ids |= state.current.ids
                    state.current = None
                await self._let_go(listing.ids)
        except asyncio.CancelledError:
            for left in (state.current, state.following):
                if left is not None:
                    await asyncio.shield(self._let_go(left.ids))
            raise
        finally:
            state.task = None

    async def _list(self, state: _CampaignFloods, listing: _Listing) -> bool:
        """List the campaign for this flood; False when the listing failed (the campaign's floods back off)."""
        assert self.list_campaign is not None
        campaign = state.campaign
        cause = f"webhook flood ({len(listing.ids)} event(s))"

        async def renew() -> None:
            until = self.clock() + self.claimer.lease
            await self.store.defer_webhook_events(list(listing.ids), until, owner=self.claimer.owner)

        try:
            async with LeaseRenewal(renew, self.claimer.lease, "webhook flood listing"):
                report = await self.list_campaign(campaign, cause, wait=self.lock_wait)
        except Exception:
            log.exception(
                "webhook flood of campaign %s: the listing crashed; its events are looked up",
                campaign.known_campaign_id(),
            )
            self._failed(state)
            return False
        if report is None:
            log.info(
                "webhook flood of campaign %s: another process kept its listing for %.0fs; the events go back",
                campaign.known_campaign_id(),
                self.lock_wait,
            )
            return True
        if report.ok:
            state.failures, state.list_again_at = 0, None
            self.listings += 1
            # The listing's own supersede goes by campaign id; these may have come by the legacy URL (no id), and
            # left pending they would flood again and list again, forever.
            await self.store.supersede_webhook_events_by_id(sorted(listing.ids), self.clock())
            log.info(
                "webhook flood of campaign %s: %d event(s) answered by one listing (%d page(s), %d request(s))",
                campaign.known_campaign_id(),
                len(listing.ids),
                report.pages,
                report.patreon_requests,
            )
            return True
        log.warning(
            "webhook flood of campaign %s: the listing failed (%s); its %d event(s) stay pending",
            campaign.known_campaign_id(),
            report.detail,
            len(listing.ids),
        )
        self._failed(state)
        return False

    def _failed(self, state: _CampaignFloods) -> None:
        state.failures += 1
        delay = min(self.retry_cap, self.retry_base * 2 ** min(state.failures - 1, 30))  # no float overflow
        state.list_again_at = self.clock() + timedelta(seconds=delay)

    async def _let_go(self, ids: set[int]) -> None:
        """Due at once again, those still pending (a complete listing superseded the others)."""
        try:
            await self.store.defer_webhook_events(list(ids), self.clock(), owner=self.claimer.owner, release=True)
        except Exception as error:  # their deferral runs out within a lease anyway
            log.warning("webhook flood: could not let %d event(s) go (%s); due within a lease", len(ids), error)
        else:
            self.on_released()

    async def close(self) -> None:
        """Stop the listings under way; their events go back to pending and due."""
        tasks = [state.task for state in self._campaigns.values() if state.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
