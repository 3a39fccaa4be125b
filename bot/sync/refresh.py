"""The periodic full refresh: list every campaign member, store them, queue the role jobs that follow.

Fail safe above all: only a listing that completed without error may change anything. On any failure (5xx,
429 past the client's patience, timeout, expired cursor, refused token) nothing is saved or removed, the old
snapshots stay, and the LAST_REFRESH fact and the log say why. A complete listing saves all snapshots in one
transaction, forgets members who are no longer listed (unless a webhook re-fetch stored them after the listing
began), auto-matches where enabled, and queues one job per member whose roles differ. Patron tokens close to
expiry are refreshed on the way.

A member listed without its user (a deleted Patreon account, or a page that lost the relationship) is matched
back to the user stored under its member id (a membership never changes hands); one that can't be matched is
counted as unlinkable (`members_without_user`, shown by `/patreon-admin check`) and counts towards the total, so a
campaign with deleted accounts still completes. A listing that ended without error is still refused as
incomplete (`IncompleteListing`, nothing saved or forgotten) when:

- its distinct members (with a user, plus the unlinkable) are fewer than the smallest `meta.pagination.total`
  any of its pages reported (a page that lost its cursor looks like the last page; the smallest total allows for
  members who left mid-listing);
- no page reported a total and it would forget more than `MAX_UNCONFIRMED_FORGET` of the stored memberships
  (without a total nothing confirms that so many left; Patreon does report the total, so this is a backstop).

Anything unexpected (a bug, a store error) also ends the refresh with ok=False and a LAST_REFRESH that says so.
Pending webhook events are marked superseded only once the refresh's jobs are queued: a refresh that fails
before that leaves them to the webhook applier.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from bot.domain.models import MembershipSnapshot
from bot.patreon.client import MAX_PAGE_SIZE, PatreonClient
from bot.patreon.errors import PatreonAuthError, PatreonBadResponse, PatreonCursorExpired, PatreonError
from bot.store import LAST_REFRESH, Store
from bot.sync.auto_match import auto_match
from bot.sync.batch_plan import plan_all_guilds
from bot.sync.campaign import CampaignService, CampaignUnavailable, CreatorTokenRejected, grant_refused
from bot.sync.reconcile import ReconcileService, RoleGateway
from bot.sync.role_jobs import RoleJobs

log = logging.getLogger(__name__)

PATRON_TOKEN_MARGIN = timedelta(days=7)
KEEP_WEBHOOK_EVENTS = timedelta(days=7)
#: Without a reported total, a refresh may forget at most this fraction of the stored memberships.
MAX_UNCONFIRMED_FORGET = 0.5


class IncompleteListing(PatreonBadResponse):
    """The listing ended without error but cannot be the whole campaign; the refresh changes nothing."""


@dataclass
class RefreshReport:
    ok: bool
    cause: str
    started_at: datetime
    finished_at: datetime | None = None
    detail: str = ""
    pages: int = 0
    members_listed: int = 0
    snapshots_saved: int = 0
    snapshots_forgotten: int = 0
    auto_linked: int = 0
    members_checked: int = 0
    #: Members Discord failed to look up while planning; each was queued as a job that looks again.
    members_unchecked: int = 0
    roles_differ: int = 0
    jobs_queued: int = 0
    patron_tokens_refreshed: int = 0
    #: Members listed without a Patreon user that no stored membership matches (deleted accounts): never linkable.
    members_without_user: int = 0
    #: Patreon HTTP requests this refresh made (retries included).
    patreon_requests: int = 0

    def fact(self) -> dict[str, object]:
        """What `/patreon-admin check` shows (LAST_REFRESH)."""
        data = asdict(self)
        data["at"] = (self.finished_at or self.started_at).isoformat(timespec="seconds")
        data["started_at"] = self.started_at.isoformat(timespec="seconds")
        data.pop("finished_at")
        return data


class RefreshService:
    def __init__(
        self,
        client: PatreonClient,
        store: Store,
        campaign: CampaignService,
        reconcile: ReconcileService,
        jobs: RoleJobs,
        gateway: RoleGateway,
        clock: Callable[[], datetime],
        page_size: int = MAX_PAGE_SIZE,
    ) -> None:
        self.client = client
        self.store = store
        self.campaign = campaign
        self.reconcile = reconcile
        self.jobs = jobs
        self.gateway = gateway
        self.clock = clock
        self.page_size = page_size
        self._lock = asyncio.Lock()
        self.last_report: RefreshReport | None = None

    async def run(self, cause: str = "scheduled") -> RefreshReport:
        """One full refresh (refreshes never overlap: a second caller waits for the first to finish)."""
        async with self._lock:
            report = RefreshReport(ok=False, cause=cause, started_at=self.clock())
            requests_before = self.client.request_count
            try:
                await self._refresh(report)
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
                log.info("refresh (%s): %s", cause, report.detail)
            await self.store.set_fact(LAST_REFRESH, report.fact())
            self.last_report = report
            return report

    async def _refresh(self, report: RefreshReport) -> None:
        if not await self.store.get_tiers():
            try:
                await self.campaign.refresh_tiers()
            except (PatreonError, CampaignUnavailable) as error:
                log.warning("refresh: no tier catalogue yet and could not load it: %s", error)
        memberships, total = await self._list_members(report)
        if total is None:
            await self._check_unconfirmed_forget(memberships, report.started_at)
        # The listing is complete: from here on the refresh may change state.
        report.snapshots_saved = await self.store.save_memberships(memberships.values())
        gone = await self.store.delete_memberships_except(set(memberships), report.started_at)
        report.snapshots_forgotten = len(gone)
        matched = await auto_match(self.store, self.gateway, self.reconcile, memberships.values(), self.clock())
        report.auto_linked = len(matched)
        acting = await self.reconcile.acting_guild_ids()
        plan = await plan_all_guilds(self.store, self.gateway, acting, memberships, self.clock())
        report.members_checked, report.roles_differ = plan.checked, plan.changes
        report.members_unchecked = plan.unchecked
        if plan.jobs:
            await self.jobs.enqueue_many(plan.jobs, "refresh")
        report.jobs_queued = len(plan.jobs)
        # Only now do the pending webhook events have nothing left to do: their members' jobs are queued.
        await self.store.supersede_webhook_events(report.started_at, self.clock())
        report.patron_tokens_refreshed = await self._refresh_patron_tokens()
        await self.store.prune_webhook_events(self.clock() - KEEP_WEBHOOK_EVENTS)
        report.detail = (
            f"{report.members_listed} member(s) in {report.pages} page(s); {report.roles_differ} member(s) "
            f"need a role change; {report.snapshots_forgotten} gone; {report.auto_linked} auto-linked"
        )
        if report.members_without_user:
            report.detail += (
                f"; {report.members_without_user} member(s) without a Patreon account (deleted) can't be linked"
            )

    async def _list_members(self, report: RefreshReport) -> tuple[dict[str, MembershipSnapshot], int | None]:
        """Every member by Patreon user id and the listing's total (None when no page said), or an exception:
        a partial listing is never returned."""
        campaign_id = await self.campaign.campaign_id()
        token = await self.campaign.creator_access_token()
        for attempt in (1, 2):
            memberships: dict[str, MembershipSnapshot] = {}
            without_user: list[MembershipSnapshot] = []
            total: int | None = None
            report.pages = report.members_listed = 0
            try:
                async for page in self.client.iter_member_pages(token, campaign_id, self.page_size):
                    report.pages += 1
                    report.members_listed += len(page.members)
                    if page.total is not None:
                        total = page.total if total is None else min(total, page.total)
                    for member in page.members:
                        if member.patreon_user_id is None:
                            without_user.append(member)
                        else:
                            memberships[member.patreon_user_id] = member
                unlinkable = await self._match_members_without_user(memberships, without_user)
                report.members_without_user = unlinkable
                if total is not None and len(memberships) + unlinkable < total:
                    also = f" (and {unlinkable} without a Patreon account)" if unlinkable else ""
                    raise IncompleteListing(
                        f"the listing ended after {len(memberships)} member(s){also} in {report.pages} page(s), "
                        f"but Patreon reported {total}"
                    )
                return memberships, total
            except PatreonCursorExpired:
                if attempt == 2:
                    raise
                log.info("refresh: Patreon expired the listing's cursor after %d page(s); starting over", report.pages)
            except PatreonAuthError as error:
                if attempt == 2 or error.status != 401 or isinstance(error, CreatorTokenRejected):
                    raise
                token = await self.campaign.creator_access_token(stale=token)
        raise AssertionError("unreachable")

    async def _match_members_without_user(
        self, memberships: dict[str, MembershipSnapshot], without_user: list[MembershipSnapshot]
    ) -> int:
        """Give each member listed without its user the user stored under its member id; return how many are
        left unlinkable (distinct members no stored membership matches)."""
        known = await self.store.patreon_users_by_member_id(m.member_id for m in without_user if m.member_id)
        unlinkable: set[str] = set()
        for index, member in enumerate(without_user):
            user_id = known.get(member.member_id or "")
            if user_id is not None and user_id not in memberships:
                memberships[user_id] = dataclasses.replace(member, patreon_user_id=user_id)
            else:
                unlinkable.add(member.member_id or f"(no id) {index}")
        if unlinkable:
            log.info("refresh: %d listed member(s) have no Patreon user and can't be linked", len(unlinkable))
        return len(unlinkable)

    async def _check_unconfirmed_forget(self, memberships: dict[str, MembershipSnapshot], started: datetime) -> None:
        """Without a total, refuse a listing that would forget more than `MAX_UNCONFIRMED_FORGET` of the stored."""
        stored = await self.store.membership_count()
        gone = len(await self.store.memberships_not_listed(set(memberships), started))
        if gone > stored * MAX_UNCONFIRMED_FORGET:
            raise IncompleteListing(
                f"the listing reported no total and would forget {gone} of {stored} stored member(s)"
            )

    async def _refresh_patron_tokens(self) -> int:
        """Refresh linked patrons' tokens that expire within a week; a refused one is dropped (the link stays).

        Refused means `invalid_grant` only: `invalid_client` says our client credentials are wrong, not the
        patron's token, and any other failure (a 403 from the edge, 5xx) is tried again next refresh.
        """
        refreshed = 0
        due = await self.store.tokens_expiring("patron:", self.clock() + PATRON_TOKEN_MARGIN)
        for subject, tokens in due:
            try:
                fresh = await self.client.refresh(tokens.refresh_token)
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
