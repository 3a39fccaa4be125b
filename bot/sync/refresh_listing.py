"""The refresh's walk through the members listing: each page is stored and planned as it comes, and only ids are
kept across pages for the sweep that follows (bot/sync/refresh.py).

Each page is real Patreon data, so its changed snapshots are stored at once (like a webhook re-fetch) and the role
changes it shows are queued; what depends on a member *not* being listed waits for the end. A listing is returned
only whole: an expired cursor starts it over once, a refused creator token is refreshed once, and a listing that
ended without error but cannot be the whole campaign raises `IncompleteListing` (the refresh forgets nobody).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import gc
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bot.domain.models import MembershipSnapshot
from bot.patreon.client import PatreonClient
from bot.patreon.errors import PatreonAuthError, PatreonBadResponse, PatreonCursorExpired
from bot.patreon.member_rows import MemberRows
from bot.store import Store
from bot.sync.batch_plan import RefreshPlanner
from bot.sync.campaign import CampaignService, CreatorTokenRejected
from bot.sync.page_changes import differing_bytes, page_changes
from bot.sync.role_jobs import RoleJobs

if TYPE_CHECKING:
    from bot.sync.refresh_report import RefreshReport

log = logging.getLogger(__name__)

#: Without a reported total, a refresh may forget at most this fraction of the stored memberships.
MAX_UNCONFIRMED_FORGET = 0.5
#: Allocations between two young-generation collections while a listing is parsed (Python's default: 700).
LISTING_GC_THRESHOLD = 50_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect cyclic garbage less often while pages are parsed: each page's JSON makes ~100,000 short-lived objects,
    and with discord.py's member cache alive every collection they trigger walks millions of objects (1.2 of 7 s
    of a 100,000-member refresh went to the collector). Reference counting still frees the pages as before."""
    previous = gc.get_threshold()
    gc.set_threshold(max(previous[0], LISTING_GC_THRESHOLD), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


class IncompleteListing(PatreonBadResponse):
    """The listing ended without error but cannot be the whole campaign; the refresh forgets nobody."""


@dataclass
class Listing:
    """What one attempt at the listing keeps across pages: ids, never snapshots (but auto-match's few)."""

    listed: set[str] = field(default_factory=set)
    unlinkable: set[str] = field(default_factory=set)
    total: int | None = None
    #: Listed members with a Discord account on Patreon who are not linked (auto-match's candidates).
    unmatched: list[MembershipSnapshot] = field(default_factory=list)
    #: The campaign's stored listing hashes as the attempt began (`Store.listing_hashes`), None for a full re-plan.
    #: A write while it runs (a webhook's re-fetch, which clears the member's hash) is kept when the member's page
    #: shows the bytes of the last listing: the listing doesn't put its older-known look over it, and the next
    #: listing compares that member by value.
    stored_hashes: dict[str, bytes | None] | None = None

    def stored_not_listed(self) -> list[str] | None:
        """The members stored as the attempt began that it didn't list: the only ones its sweep needs to read. A
        member first stored later was seen after the refresh began, so is kept anyway, but for one from a look taken
        just before it began (a webhook's, a sign-in's): that one, and the roles its own job gave, wait for the next
        complete listing that doesn't show him (kept a refresh longer, never forgotten early; a new patron the
        listing hasn't caught up with yet isn't forgotten at all). None for a full re-plan: its sweep reads the
        whole campaign (review 7, R7-1)."""
        if self.stored_hashes is None:
            return None
        return sorted(self.stored_hashes.keys() - self.listed)


class ListingReader:
    """Streams one campaign's listing into the store and the planner, page by page."""

    def __init__(
        self,
        client: PatreonClient,
        store: Store,
        jobs: RoleJobs,
        unplanned: contextvars.ContextVar[bool],
        on_changed: Callable[[Sequence[MembershipSnapshot], str], Awaitable[None]] | None = None,
    ) -> None:
        """`unplanned` is the refresh's flag for "stored but not yet planned" (a failure then needs a full plan)."""
        self.client = client
        self.store = store
        self.jobs = jobs
        self.unplanned = unplanned
        self.on_changed = on_changed

    async def enqueue(self, planner: RefreshPlanner, report: RefreshReport) -> None:
        jobs = planner.result.take_jobs()
        if jobs:
            await self.jobs.enqueue_many(jobs, "refresh")
            report.jobs_queued += len(jobs)

    async def stream(
        self,
        report: RefreshReport,
        planner: RefreshPlanner,
        auto_matching: bool,
        campaign: CampaignService,
        page_size: int,
    ) -> Listing:
        """Walk every page, storing and planning each; return what the sweep needs, or raise: a partial listing
        is never returned (what its pages showed is stored and planned already)."""
        campaign_id = await campaign.campaign_id()
        planner.campaign_id = campaign_id
        token = await campaign.creator_access_token()
        by_bytes = not any(guild.full for guild in planner.guilds)  # a full re-plan trusts no stored hash
        for attempt in (1, 2):
            listing = Listing(stored_hashes=await self.store.listing_hashes(campaign_id) if by_bytes else None)
            report.pages = report.members_listed = 0
            try:
                async for page in self.client.iter_member_pages(token, campaign_id, page_size):
                    members = MemberRows.of_page(page)
                    report.pages += 1
                    report.members_listed += len(members)
                    if page.total is not None:
                        listing.total = page.total if listing.total is None else min(listing.total, page.total)
                    await self._take_page(members, listing, planner, report, auto_matching, campaign_id)
                unlinkable = report.members_without_user = len(listing.unlinkable)
                if unlinkable:
                    log.info("refresh: %d listed member(s) have no Patreon user and can't be linked", unlinkable)
                if listing.total is not None and len(listing.listed) + unlinkable < listing.total:
                    also = f" (and {unlinkable} without a Patreon account)" if unlinkable else ""
                    raise IncompleteListing(
                        f"the listing ended after {len(listing.listed)} member(s){also} in {report.pages} page(s), "
                        f"but Patreon reported {listing.total}"
                    )
                return listing
            except PatreonCursorExpired:
                if attempt == 2:
                    raise
                log.info("refresh: Patreon expired the listing's cursor after %d page(s); starting over", report.pages)
            except PatreonAuthError as error:
                if attempt == 2 or error.status != 401 or isinstance(error, CreatorTokenRejected):
                    raise
                token = await campaign.creator_access_token(stale=token)
        raise AssertionError("unreachable")

    async def _take_page(
        self,
        page: MemberRows,
        listing: Listing,
        planner: RefreshPlanner,
        report: RefreshReport,
        auto_matching: bool,
        campaign_id: str,
    ) -> None:
        """Store one page, plan what it changed and queue those jobs; remember only its ids. A member is decoded
        only when its bytes differ from the last listing's (`page_changes`), the planner plans it or auto-match may
        link it; its snapshot is built only when the store writes it or the planner plans it."""
        self.unplanned.set(True)  # until the page's jobs are queued: a failure in between asks for a full plan
        members = page
        if None in page.user_ids:  # they stay, ignored as unstored; matched copies are added
            without_user = [page.snapshot(i) for i, user in enumerate(page.user_ids) if user is None]
            on_page: set[str | None] = {user for user in page.user_ids if user is not None}
            members = page.extended(
                await self._match_members_without_user(listing, without_user, on_page, report, campaign_id)
            )
        stored, by_bytes = listing.stored_hashes, listing.stored_hashes is not None
        among = differing_bytes(members, stored) if stored is not None else None
        wanted = members.user_ids if among is None else [members.user_ids[index] for index in among]
        looks = await self.store.listing_looks(campaign_id, wanted)
        changes = page_changes(members, looks, by_bytes, among)
        remembered = [(members.snapshot(index), digest, listing) for index, digest, listing in changes.remember]
        await self.store.remember_listing_hashes(campaign_id, remembered)
        candidates = [members.snapshot(index) for index in changes.changed]
        hashes = members.listing_hashes
        read_from = None
        if hashes is not None:
            read_from = {
                user: digest
                for i in changes.changed
                if (user := members.user_ids[i]) is not None and (digest := hashes[i]) is not None
            }
        changed = await self.store.save_membership_page(candidates, campaign_id, read_from)
        report.snapshots_saved += len(changed)
        if changed and self.on_changed is not None:
            await self.on_changed(changed, campaign_id)
        listing.listed.update(members.user_ids)  # type: ignore[arg-type]  # None with them, dropped next
        listing.listed.discard(None)
        await planner.plan_page(members, {m.patreon_user_id for m in changed if m.patreon_user_id is not None})
        await self.enqueue(planner, report)
        self.unplanned.set(False)
        if auto_matching:
            social = [index for index in range(len(members)) if members.social(index) is not None]
            if social:
                linked = await self.store.linked_patreon_ids(
                    (user for i in social if (user := members.user_ids[i])), by_hand_too=False
                )  # a patron linked only by hand is offered too: that link may give way (bot/sync/auto_match.py)
                listing.unmatched += [
                    members.snapshot(index) for index in social if members.user_ids[index] not in linked
                ]

    async def _match_members_without_user(
        self,
        listing: Listing,
        without_user: list[MembershipSnapshot],
        on_page: set[str | None],
        report: RefreshReport,
        campaign_id: str,
    ) -> list[MembershipSnapshot]:
        """Give each member listed without its user the user stored under its member id; count the ones left
        unlinkable (distinct members no stored membership matches) in `listing`."""
        known = await self.store.patreon_users_by_member_id(
            (m.member_id for m in without_user if m.member_id), campaign_id
        )
        matched: list[MembershipSnapshot] = []
        for index, member in enumerate(without_user):
            user_id = known.get(member.member_id or "")
            if user_id is not None and user_id not in listing.listed and user_id not in on_page:
                matched.append(dataclasses.replace(member, patreon_user_id=user_id))
                on_page.add(user_id)
            else:
                listing.unlinkable.add(member.member_id or f"(no id) page {report.pages} #{index}")
        return matched


async def check_unconfirmed_forget(store: Store, listed: set[str], started: datetime, campaign_id: str) -> None:
    """Without a total, refuse a listing that would forget more than `MAX_UNCONFIRMED_FORGET` of the stored."""
    stored = await store.membership_count(campaign_id)
    gone = len(await store.memberships_not_listed(listed, started, campaign_id))
    if gone > stored * MAX_UNCONFIRMED_FORGET:
        raise IncompleteListing(f"the listing reported no total and would forget {gone} of {stored} stored member(s)")
