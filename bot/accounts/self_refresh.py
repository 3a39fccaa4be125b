"""`/patreon refresh`: a patron asks the bot to re-read their own membership from Patreon now ("I just pledged").

It reads only the asking user's own Patreon account: the command takes no option, so nobody can refresh someone
else. The patron's own token is asked first (its /identity shows a pledge made a minute ago, which the creator's
stored member ids can't), and the creator token's member data for the stored member id when there is no usable
patron token. What Patreon says is stored like a webhook's re-fetch (a newer look is never overwritten), then the
member is reconciled everywhere the bot acts, like after a link.

Patreon's limits are shared by the whole bot, so a patron may refresh once a minute, and all patrons together at
most `global_limit` times per `global_window`. A failing Patreon changes nothing: no membership is forgotten and
no role is removed.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from bot.accounts.status_report import NOT_HERE, member_status
from bot.domain.models import MembershipSnapshot, TokenPair
from bot.patreon.client import PatreonClient
from bot.patreon.creator_api import sees_every_membership
from bot.patreon.errors import PatreonAuthError, PatreonError, PatreonNotFound
from bot.store import Link, Store, patron_subject
from bot.sync.campaign import CampaignService, CampaignUnavailable, grant_refused
from bot.sync.reconcile import ReconcileService

log = logging.getLogger(__name__)

#: One refresh per patron per minute (the issue's promise).
USER_COOLDOWN = timedelta(seconds=60)
#: All patrons together: at most this many refreshes per `GLOBAL_WINDOW` (each costs one to three Patreon calls).
GLOBAL_LIMIT = 30
GLOBAL_WINDOW = timedelta(seconds=60)
#: Seconds `/patreon refresh` waits for another refresh of the same patron's token (then it reads the new pair).
PATRON_TOKEN_LOCK_WAIT = 10.0

NOT_LINKED = "You haven't linked a Patreon account yet: run `/patreon link` to connect it and get your roles."
PATREON_DOWN = "Patreon didn't answer just now, so nothing was changed; please try again in a few minutes."
NO_WAY_TO_ASK = (
    "The bot has no way to ask Patreon about your account right now; run `/patreon link` to sign in again, which "
    "reads your membership at once."
)


class RefreshTurns:
    """Who may refresh now: one turn per user per `cooldown`, at most `limit` turns per `window` for everyone.

    In memory: a restart forgets the turns, which costs at most one extra refresh per patron.
    """

    def __init__(self, cooldown: timedelta, limit: int, window: timedelta) -> None:
        self.cooldown = cooldown
        self.limit = limit
        self.window = window
        self._last_by_user: dict[int, datetime] = {}
        self._recent: deque[datetime] = deque()

    def claim(self, user_id: int, now: datetime) -> str | None:
        """Take this user's turn now, or say how long to wait (the user's own minute first, then everyone's cap)."""
        last = self._last_by_user.get(user_id)
        if last is not None and now - last < self.cooldown:
            return f"You refreshed a moment ago; try again in {_seconds(self.cooldown - (now - last))} s."
        while self._recent and now - self._recent[0] >= self.window:
            self._recent.popleft()
        if len(self._recent) >= self.limit:
            left = self.window - (now - self._recent[0])
            return f"Many patrons are refreshing right now; try again in {_seconds(left)} s."
        for user, at in list(self._last_by_user.items()):  # keep the map small: expired turns are forgotten
            if now - at >= self.cooldown:
                del self._last_by_user[user]
        self._last_by_user[user_id] = now
        self._recent.append(now)
        return None


def _seconds(left: timedelta) -> int:
    return max(1, math.ceil(left.total_seconds()))


class NoFreshLook(Exception):
    """Neither the patron's token nor the creator's stored member id can answer for this patron."""


class SelfRefresh:
    def __init__(
        self,
        client: PatreonClient,
        store: Store,
        campaign_of: Callable[[int], Awaitable[CampaignService | None]],
        reconcile: ReconcileService,
        role_name: Callable[[int, int], str],
        clock: Callable[[], datetime],
        *,
        cooldown: timedelta = USER_COOLDOWN,
        global_limit: int = GLOBAL_LIMIT,
        global_window: timedelta = GLOBAL_WINDOW,
    ) -> None:
        """`campaign_of(guild_id)`: the campaign whose creator token answers for that server (None: none)."""
        self.client = client
        self.store = store
        self.campaign_of = campaign_of
        self.reconcile = reconcile
        self.role_name = role_name
        self.clock = clock
        self.turns = RefreshTurns(cooldown, global_limit, global_window)

    async def refresh(self, guild_id: int, user_id: int) -> str:
        """The whole ephemeral answer for this user in this server."""
        campaign = await self.campaign_of(guild_id)
        if campaign is None or await self.reconcile.participation_refusal(guild_id) is not None:
            return NOT_HERE
        link = await self.store.get_link_by_discord(user_id)
        if link is None:
            return NOT_LINKED
        # No await between the check and the claim: two clicks at once can't both pass.
        wait = self.turns.claim(user_id, self.clock())
        if wait is not None:
            log.info("refresh by user=%s in guild=%s refused: %s", user_id, guild_id, wait)
            return wait
        try:
            changed = await self._read_and_store(campaign, link)
        except NoFreshLook:
            log.info("refresh by user=%s: no patron token and no stored member id", user_id)
            return NO_WAY_TO_ASK
        except (PatreonError, CampaignUnavailable) as error:
            log.warning("refresh by user=%s: Patreon failed (%s); nothing changed", user_id, error)
            return PATREON_DOWN
        await self.reconcile.reconcile_user_everywhere(user_id, "refresh by the patron")
        status = await member_status(self.store, self.reconcile, self.role_name, guild_id, user_id)
        head = "🔄 Read your membership from Patreon just now" + ("." if changed else "; nothing had changed.")
        return f"{head}\n{status}"

    async def _read_and_store(self, campaign: CampaignService, link: Link) -> bool:
        """What Patreon says of this patron now, stored; True when the stored membership changed."""
        patreon_id = link.patreon_user_id
        campaign_id = await campaign.campaign_id()
        before = await self.store.get_membership(patreon_id, campaign_id)
        fetched_at = self.clock()
        membership, member_id = await self._look(campaign, patreon_id, campaign_id, before)
        if membership is None:
            gone = await self.store.delete_membership_observed_before(
                patreon_id, fetched_at, member_id, campaign_id=campaign_id
            )
            log.info("refresh patreon=%s: not a member of the campaign at Patreon%s", patreon_id, " (forgotten)" * gone)
            return gone
        stored = await self.store.save_membership(membership, campaign_id)
        log.info(
            "refresh patreon=%s: %s (%s)",
            patreon_id,
            membership.patron_status or "no pledge",
            "stored" if stored else "a newer look was already stored",
        )
        after = await self.store.get_membership(patreon_id, campaign_id)
        return _comparable(before) != _comparable(after)

    async def _look(
        self, campaign: CampaignService, patreon_id: str, campaign_id: str, known: MembershipSnapshot | None
    ) -> tuple[MembershipSnapshot | None, str | None]:
        """(the membership, or None when Patreon says there is none; the member id a None is about)."""
        answered, by_identity = await self._by_patron_token(patreon_id, campaign_id, campaign.from_env)
        if answered:
            return by_identity, None
        if known is None or known.member_id is None:
            raise NoFreshLook()
        member_id = known.member_id
        try:
            snapshot = await campaign.with_creator_token(lambda token: self.client.get_member(token, member_id))
        except PatreonNotFound:
            return None, member_id
        if snapshot.campaign_id not in (None, campaign_id):
            raise NoFreshLook()
        if snapshot.patreon_user_id not in (None, patreon_id):
            raise NoFreshLook()
        return _owned(snapshot, patreon_id, self.clock()), None

    async def _by_patron_token(
        self, patreon_id: str, campaign_id: str, owners_campaign: bool
    ) -> tuple[bool, MembershipSnapshot | None]:
        """(whether the patron's own token answered, the membership it shows: None when they aren't a member).
        It doesn't answer without a usable token (none stored, refused, or it belongs to someone else), nor about
        an absent membership it can't see: one of a campaign not the client owner's (`owners_campaign`, the .env
        campaign) shows only with `identity.memberships`, so then the creator's read decides."""
        subject = patron_subject(patreon_id)
        tokens = await self.store.get_tokens(subject)
        if tokens is None:
            return False, None
        for attempt in range(2):
            if attempt or tokens.expires_at <= self.clock():
                refreshed = await self._refreshed(subject, stale=tokens.access_token if attempt else None)
                if refreshed is None:
                    return False, None
                tokens = refreshed
            try:
                identity = await self.client.get_identity(tokens.access_token)
            except PatreonAuthError as error:
                if error.status == 401 and attempt == 0:
                    continue
                raise
            if identity.user.id != patreon_id:
                log.warning("refresh patreon=%s: the stored token belongs to patreon=%s", patreon_id, identity.user.id)
                return False, None
            membership = identity.membership_for(campaign_id)
            if membership is None and not (owners_campaign or sees_every_membership(tokens)):
                log.info("refresh patreon=%s: the patron's token can't see campaign %s", patreon_id, campaign_id)
                return False, None
            return True, None if membership is None else _owned(membership, patreon_id, self.clock())
        return False, None

    async def _refreshed(self, subject: str, *, stale: str | None) -> TokenPair | None:
        """The patron's pair, refreshed unless someone else just did (`stale`: the access token Patreon refused);
        None when it is gone or refused. Refresh tokens are single use and the refresh's patron-token pass uses the
        same one: one at a time refreshes it (bot/sync/refresh.py takes the same lock), each reading the pair again
        first, so neither spends a token the other already rotated."""
        async with self.store.token_refresh(subject, wait=PATRON_TOKEN_LOCK_WAIT) as held:
            if not held:
                log.info("refresh %s: another process is refreshing the patron's token", subject)
                return None
            tokens = await self.store.get_tokens(subject)
            if tokens is None:
                return None
            if tokens.access_token != stale and tokens.expires_at > self.clock():
                return tokens  # refreshed meanwhile
            try:
                fresh = await self.client.refresh(tokens.refresh_token)
            except PatreonAuthError as error:
                if grant_refused(error):
                    log.info("refresh %s: the patron's refresh token was refused", subject)
                    return None
                raise
            await self.store.save_tokens(subject, fresh)  # single use: stored before it is used
            return fresh


def _owned(membership: MembershipSnapshot, patreon_id: str, now: datetime) -> MembershipSnapshot:
    return replace(
        membership, patreon_user_id=membership.patreon_user_id or patreon_id, observed_at=membership.observed_at or now
    )


def _comparable(membership: MembershipSnapshot | None) -> MembershipSnapshot | None:
    return None if membership is None else replace(membership, observed_at=None)
