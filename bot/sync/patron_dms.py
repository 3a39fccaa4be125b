"""Opt-in DMs (`settings dm_welcome`, `dm_declined`, `dm_removed`, each off by default): a welcome after linking,
"your payment was declined, roles kept until <date>", "your roles were removed because ...".

Why an outbox: the engine decides a DM in the middle of a reconcile (bot/sync/reconcile.py calls `on_outcome`), but
Discord may be slow, refuse, or the bot may stop; so a DM is first a row in the store (bot/store/dm_outbox.py),
unique per what makes it one DM, and a worker sends the rows.

Exactly once, as far as Discord lets us: each send carries the row's id as Discord's message `nonce` with
`enforce_nonce` (discord.py sets it with a nonce), so a resend of the same row within Discord's window ("the past
few minutes", Create Message) returns the message already made instead of a second one. The row is stamped before
the call; a row found stamped after a restart is resent with its nonce when the stamp is younger than
`NONCE_TRUST`. An older stamp is past the nonce's window, so the DM channel is read back first (`find_sent`,
matching our own message's text since the stamp): found, the row is done; absent, it is sent; Discord unreadable,
it waits for a later pass. A crash loses no DM (review C3: a restart slower than a minute used to drop it).

A member who doesn't take DMs (Discord's 50007) costs one failed call: the row is marked blocked, logged once, and
for `BLOCKED_MEMORY` every later DM to them is marked blocked without a call. Other refusals are not retried;
Discord being down is retried a few times, backing off. DMs go out one at a time, `pace_seconds` apart (Discord
treats a bot opening many DMs fast as spam). Only a server that takes part, with that DM on, sends; only a link
proven by Patreon (OAuth, auto-match) gets a DM, since a link made by hand could tie a member to someone else's
Patreon account; and a DM carries nothing but this member's own values (bot/domain/dm_templates.py).

Once across processes sharing the database (issue 11, item 6): each reads only its shards' servers' rows and claims
a row before delivering it (bot/store/dm_outbox.py `claim_dm`, renewed while the delivery runs); the stamp needs the
claim still held and each outcome is written only by its holder, so a process cut off mid-send neither sends after
losing the row nor overwrites what its successor did. A process killed mid-send leaves its claim to run out and its
stamp behind: the next owner goes by the nonce or the DM channel, as above, so the DM is neither lost nor doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from bot.domain import billing
from bot.domain.dm_templates import SAMPLE_REASON, SAMPLE_ROLES, SAMPLE_UNTIL, DmKind, DmValues, render
from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, PatronStatus, TierRoleMap
from bot.store import Store
from bot.store.dm_outbox import DM_BLOCKED, DM_DROPPED, DM_FAILED, DM_SENT, QueuedDm
from bot.store.leases import Claimer, LeaseRenewal
from bot.sync.member_plan import ReconcileOutcome
from bot.sync.participation import Participation

log = logging.getLogger(__name__)

#: A stamped send younger than this is resent with its nonce after a restart (Discord keeps nonces "a few minutes").
NONCE_TRUST = timedelta(seconds=60)
#: How far before the row's stamp the DM channel is searched (the bot's clock against Discord's snowflakes).
CLOCK_SKEW = timedelta(minutes=5)
#: After a 50007, later DMs to that member are not tried for this long.
BLOCKED_MEMORY = timedelta(days=30)
MAX_ATTEMPTS = 5
#: The reconcile cause of an OAuth link (bot/accounts/linking.py); "unlinked" removals are the member's own doing.
LINKED_CAUSE = "linked"
UNLINKED_CAUSE = "unlinked"
SWITCHES = {DmKind.WELCOME: "dm_welcome", DmKind.DECLINED: "dm_declined", DmKind.REMOVED: "dm_removed"}


class DmOutcome(StrEnum):
    SENT = "sent"
    #: Discord's 50007: the member doesn't take DMs from the bot (or shares no server with it).
    BLOCKED = "blocked"
    #: Discord was down or slow: worth another try later.
    RETRY = "retry"
    #: Any other refusal: trying again can't help.
    FAILED = "failed"


class DmSender(Protocol):
    """The Discord adapter's half (bot/discord_io/direct_messages.py)."""

    def guild_name(self, guild_id: int) -> str: ...

    async def send(self, user_id: int, text: str, nonce: str) -> tuple[DmOutcome, str]: ...

    async def find_sent(self, user_id: int, text: str, since: datetime) -> bool | None: ...


def _declined(membership: MembershipSnapshot) -> bool:
    """Declined as the policy reads it (docs/policy.md row 5): the status, or an active status whose charge lags."""
    return membership.patron_status == PatronStatus.DECLINED or (
        membership.patron_status == PatronStatus.ACTIVE and membership.last_charge_status == billing.DECLINED
    )


def wants(settings: GuildSettings, kind: DmKind) -> bool:
    return bool(getattr(settings, SWITCHES[kind]))


class PatronDms:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        participation: Participation,
        campaign_key: Callable[[int], Awaitable[str | None]],
        role_name: Callable[[int, int], str],
        member_guilds: Callable[[int], Awaitable[list[int]]],
        *,
        pace_seconds: float = 1.0,
        retry_base: float = 30.0,
        claimer: Claimer | None = None,
    ) -> None:
        """`claimer`: who this process is when it claims a DM, and whose servers' DMs it sends (None: a fresh
        owner id, every shard)."""
        self.store = store
        self.claimer = claimer if claimer is not None else Claimer()
        self.clock = clock
        self.participation = participation
        self.campaign_key = campaign_key
        self.role_name = role_name
        self.member_guilds = member_guilds
        self.pace_seconds = pace_seconds
        self.retry_base = retry_base
        self._wake = asyncio.Event()
        #: Passes over the outbox so far (tests wait for it to move instead of sleeping).
        self.passes = 0

    # -- deciding --------------------------------------------------------------------------------------------

    async def on_outcome(self, outcome: ReconcileOutcome, cause: str) -> None:
        """The engine's hook after each reconcile: queue the DMs this outcome calls for. Never raises."""
        try:
            await self._consider(outcome, cause)
        except Exception:  # a DM must never break a reconcile
            log.exception("guild=%s user=%s: could not queue a DM", outcome.guild_id, outcome.user_id)

    async def _consider(self, outcome: ReconcileOutcome, cause: str) -> None:
        guild_id, user_id = outcome.guild_id, outcome.user_id
        if not outcome.in_guild or outcome.error is not None:
            return
        settings = await self.store.get_settings(guild_id)
        if not (settings.dm_welcome or settings.dm_declined or settings.dm_removed):
            return
        if await self.participation.refusal(guild_id) is not None:
            return
        link = await self.store.get_link_by_discord(user_id)
        if link is None or link.by_hand:
            return  # a link made by hand proves nothing: its Patreon data may be someone else's
        now = self.clock()
        if settings.dm_welcome and cause == LINKED_CAUSE:
            await self._queue(
                guild_id,
                user_id,
                DmKind.WELCOME,
                f"link:{link.linked_at.isoformat()}",
                now,
                roles=sorted(outcome.added),
            )
        if settings.dm_removed and outcome.removed and cause != UNLINKED_CAUSE:
            roles = sorted(outcome.removed)
            key = f"{now.isoformat()}:{','.join(map(str, roles))}"
            await self._queue(guild_id, user_id, DmKind.REMOVED, key, now, roles=roles, reason=outcome.summary)
        if settings.dm_declined:
            campaign = await self.campaign_key(guild_id)
            membership = await self.store.get_membership(link.patreon_user_id, campaign)
            if membership is not None:
                await self._queue_declined(guild_id, user_id, membership, settings, now)

    async def on_memberships_changed(self, snapshots: Sequence[MembershipSnapshot], campaign_id: str) -> None:
        """The refresh's hook: a payment declined since the last look keeps its roles, so no reconcile would say."""
        try:
            for membership in snapshots:
                if _declined(membership) and membership.patreon_user_id is not None:
                    await self._declined_everywhere(membership, membership.patreon_user_id, campaign_id)
        except Exception:  # a DM must never break a refresh
            log.exception("campaign=%s: could not queue declined-payment DMs", campaign_id)

    async def _declined_everywhere(self, membership: MembershipSnapshot, patreon_user_id: str, campaign: str) -> None:
        link = await self.store.get_link_by_patreon(patreon_user_id)
        if link is None or link.by_hand:
            return
        for guild_id in await self.member_guilds(link.discord_user_id):
            settings = await self.store.get_settings(guild_id)
            if not settings.dm_declined or await self.participation.refusal(guild_id) is not None:
                continue
            if await self.campaign_key(guild_id) == campaign:
                await self._queue_declined(guild_id, link.discord_user_id, membership, settings, self.clock())

    async def _queue_declined(
        self, guild_id: int, user_id: int, membership: MembershipSnapshot, settings: GuildSettings, now: datetime
    ) -> None:
        """One DM per declined charge, while its grace runs."""
        if settings.decline_grace_days <= 0 or not _declined(membership):
            return
        ends = billing.decline_grace_ends(membership, settings.decline_grace_days)
        if ends is None or now < ends:
            charged = membership.last_charge_date.isoformat() if membership.last_charge_date else "unknown"
            until = f"{ends:%Y-%m-%d}" if ends is not None else ""
            await self._queue(guild_id, user_id, DmKind.DECLINED, f"charge:{charged}", now, until=until)

    async def _queue(self, guild_id: int, user_id: int, kind: DmKind, key: str, now: datetime, **params: Any) -> None:
        if await self.store.queue_dm(guild_id, user_id, kind.value, key, params, now):
            log.info("guild=%s user=%s: %s DM queued", guild_id, user_id, kind.value)
            self._wake.set()

    # -- previewing ------------------------------------------------------------------------------------------

    async def preview(self, guild_id: int, kind: DmKind, server_name: str) -> str:
        """The DM exactly as a member of this server would get it, with sample values where theirs would be."""
        settings = await self.store.get_settings(guild_id)
        roles = self._sample_roles(guild_id, await self.store.get_tier_roles(guild_id))
        values = DmValues(server_name, roles, SAMPLE_UNTIL, SAMPLE_REASON)
        state = (
            "on" if wants(settings, kind) else f"off (turn it on with `/patreon-admin settings {SWITCHES[kind]}:True`)"
        )
        return f"**Preview of the {kind.value} DM** ({state}):\n\n{render(kind, values)}"

    def _sample_roles(self, guild_id: int, mapping: TierRoleMap) -> tuple[str, ...]:
        mapped = sorted(mapping.managed_role_ids())
        return tuple(self.role_name(guild_id, role) for role in mapped[:1]) or SAMPLE_ROLES

    # -- sending ---------------------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self, sender: DmSender, idle_seconds: float = 60.0) -> None:
        """Send what is due, then wait for a new DM, the next retry's time, or `idle_seconds`."""
        try:  # on SQLite a stopped predecessor's claims go now (else this loop would sleep until their lease ends)
            await self.store.release_claims_of_earlier_runs(self.claimer.owner)
        except Exception as error:
            log.warning("DM outbox: could not let go of earlier runs' claims (%s); their lease ends them", error)
        while True:
            self._wake.clear()  # before the pass: a DM queued during it wakes the next one
            wait = idle_seconds
            try:
                await self.drain(sender)
                due = await self.store.next_dm_due(owner=self.claimer.owner, shards=self.claimer.shards)
                if due is not None:  # a retry waiting out its back-off
                    wait = min(wait, max(0.0, (due - self.clock()).total_seconds()))
            except Exception:  # a store hiccup must not end the DMs for good
                log.exception("the DM outbox pass failed; trying again later")
            self.passes += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def drain(self, sender: DmSender) -> int:
        """One pass over the due rows; how many DMs went out."""
        sent = 0
        claimer = self.claimer
        for due in await self.store.due_dms(self.clock(), owner=claimer.owner, shards=claimer.shards):
            if sent:
                await asyncio.sleep(self.pace_seconds)
            dm = await self.store.claim_dm(due.id, owner=claimer.owner, now=self.clock(), lease=claimer.lease)
            if dm is None:
                continue  # another process claimed it since the read, or it is done
            async with LeaseRenewal(functools.partial(self._renew, dm.id), claimer.lease, f"DM {dm.id}"):
                sent += await self._deliver(sender, dm)
        return sent

    async def _renew(self, dm_id: int) -> None:
        await self.store.renew_dm_claim(dm_id, owner=self.claimer.owner, until=self.clock() + self.claimer.lease)

    async def _finish(self, dm: QueuedDm, state: str, error: str | None = None) -> None:
        """The outcome, written only while this process holds the row's claim."""
        if not await self.store.finish_dm(dm.id, state, self.clock(), error, owner=self.claimer.owner):
            log.warning("dm=%s: another process took this DM over; its outcome stands, not %s", dm.id, state)

    async def _deliver(self, sender: DmSender, dm: QueuedDm) -> int:
        now = self.clock()
        kind = DmKind(dm.kind)
        where = f"guild={dm.guild_id} user={dm.discord_user_id} dm={dm.id} kind={kind.value}"
        settings = await self.store.get_settings(dm.guild_id)
        refusal = await self.participation.refusal(dm.guild_id)
        if refusal is not None or not wants(settings, kind):
            await self._finish(dm, DM_DROPPED, refusal or "turned off")
            log.info("%s: not sent (%s)", where, refusal or "the server turned this DM off")
            return 0
        if await self.store.dms_blocked_since(dm.discord_user_id, now - BLOCKED_MEMORY):
            await self._finish(dm, DM_BLOCKED, "refused a DM before")
            return 0  # logged when Discord said so; this one costs no call
        text = render(kind, self._values(sender, dm))
        if dm.sending_at is not None and now - dm.sending_at > NONCE_TRUST:
            found = await sender.find_sent(dm.discord_user_id, text, dm.sending_at - CLOCK_SKEW)
            if found is None and dm.attempts + 1 < MAX_ATTEMPTS:
                delay = timedelta(seconds=self.retry_base * 2**dm.attempts)
                await self.store.postpone_dm(
                    dm.id, now + delay, "couldn't read the DM channel back", owner=self.claimer.owner
                )
                log.info(
                    "%s: an earlier try was cut short; Discord couldn't say if it arrived; again in %s", where, delay
                )
                return 0
            if found is None:
                await self._finish(dm, DM_FAILED, "couldn't read the DM channel back")
                log.warning("%s: given up: Discord never said whether an interrupted send arrived", where)
                return 0
            if found:
                await self._finish(dm, DM_SENT)
                log.info("%s: an earlier try cut short %s ago had arrived: not sent again", where, now - dm.sending_at)
                return 0
            log.info("%s: an earlier try cut short %s ago never arrived: sending it", where, now - dm.sending_at)
        if not await self.store.mark_dm_sending(dm.id, now, owner=self.claimer.owner):
            log.warning("%s: not sent: this process's claim ran out before the send (another process has it)", where)
            return 0
        outcome, detail = await sender.send(dm.discord_user_id, text, f"dm-{dm.id}")
        done = self.clock()
        if outcome is DmOutcome.SENT:
            await self._finish(dm, DM_SENT)
            log.info("%s: sent", where)
            return 1
        if outcome is DmOutcome.BLOCKED:
            await self._finish(dm, DM_BLOCKED, detail)
            log.warning("%s: the member doesn't take DMs from the bot (%s); none is tried for 30 days", where, detail)
            return 0
        if outcome is DmOutcome.RETRY and dm.attempts + 1 < MAX_ATTEMPTS:
            delay = timedelta(seconds=self.retry_base * 2**dm.attempts)
            await self.store.retry_dm_at(dm.id, done + delay, detail, owner=self.claimer.owner)
            log.info("%s: Discord didn't answer (%s); trying again in %s", where, detail, delay)
            return 0
        await self._finish(dm, DM_FAILED, detail)
        log.warning("%s: given up: %s", where, detail)
        return 0

    def _values(self, sender: DmSender, dm: QueuedDm) -> DmValues:
        roles = tuple(self.role_name(dm.guild_id, int(role)) for role in dm.params.get("roles", ()))
        return DmValues(
            sender.guild_name(dm.guild_id),
            roles,
            str(dm.params.get("until", "")),
            str(dm.params.get("reason", "")),
        )
