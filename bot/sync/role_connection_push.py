"""Linked Roles: keep each connected user's role-connection metadata on Discord equal to the policy's view.

Every `scan_seconds` (and at once when told of a user) the pusher asks `view` what each connected user's metadata
should be; a value that differs from what Discord last accepted is queued in the store (`role_connections.wanted`,
durable), and an unchanged one costs no call. The queue is drained with the user's own Bearer token
(`PUT /users/@me/applications/{app}/role-connection`; the bot token is never sent there, Discord refuses it):

- a token about to expire is refreshed first, and the new pair is stored before it is used (Discord rotates the
  refresh token); with several processes on one database one drains the queue at a time, and a user's refresh runs
  under a lock of its own after reading the stored pair again, so no refresh token is ever spent twice;
- 401/403 or a refused refresh marks that user's connection revoked and drops the pair: pushes stop for them alone,
  nothing blocks anyone else, and `/patreon status` shows it;
- a 429 waits its `retry_after` (a global one pauses every push), other failures back off and stay queued;
- pushes are paced (`per_second`, under Discord's global 50 requests a second).

What goes on the wire is decided in bot/accounts (`LinkedRoleView`): this module sees only plain dicts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.domain.models import TokenPair
from bot.store import Store
from bot.store.role_connections import RoleConnection, discord_subject
from bot.sync.worker import BackgroundWorker

log = logging.getLogger(__name__)

#: Refresh a token this long before it expires (Discord's live a week).
REFRESH_MARGIN = timedelta(hours=1)
MAX_BACKOFF = timedelta(hours=1)
#: Seconds a push waits for another process's refresh of the same user's Discord token (then it reads the new pair).
TOKEN_LOCK_WAIT = 30.0
#: Held while a process drains the push queue: one process pushes at a time (others skip the round).
PUSH_LOCK = "role connection pushes"
#: How long a process that found another one pushing waits before it looks again (rather than spinning).
OTHER_PUSHER_PAUSE = timedelta(seconds=2)


class RoleConnectionRefused(Exception):
    """Discord refused the user's token or refresh token: only the user can connect again."""


class RoleConnectionRateLimited(Exception):
    def __init__(self, retry_after: float, *, is_global: bool) -> None:
        super().__init__(f"rate limited for {retry_after:.2f}s{' (global)' if is_global else ''}")
        self.retry_after = retry_after
        self.is_global = is_global


class RoleConnectionUnavailable(Exception):
    """Discord did not answer usefully (5xx, timeout, a bad body): try again later."""


class RoleConnectionClient(Protocol):
    """Discord's Bearer-token side as the pusher needs it (bot/web/discord_bearer.py is the real one)."""

    async def refresh(self, refresh_token: str) -> TokenPair: ...

    async def put_role_connection(
        self, access_token: str, platform_name: str, platform_username: str | None, metadata: dict[str, str]
    ) -> None: ...


@dataclass(frozen=True)
class WantedConnection:
    """What the policy says Discord should show for a user."""

    metadata: dict[str, str]
    platform_username: str | None


#: discord user id, metadata last pushed (None: never) → what should be there now (None: leave it as it is).
MetadataView = Callable[[int, dict[str, str] | None], Awaitable[WantedConnection | None]]


@dataclass(frozen=True)
class PushResult:
    ok: bool
    #: "pushed", "unchanged", "revoked", "queued" (will be retried), "not connected"
    outcome: str


class RoleConnectionPusher(BackgroundWorker):
    name = "role-connection pusher"

    def __init__(
        self,
        store: Store,
        client: RoleConnectionClient,
        view: MetadataView,
        clock: Callable[[], datetime],
        *,
        platform_name: str,
        scan_seconds: float = 30.0,
        per_second: float = 10.0,
    ) -> None:
        super().__init__(clock)
        self.store = store
        self.client = client
        self.view = view
        self.platform_name = platform_name
        #: How often every connected user's metadata is compared with the policy (grace ending, refreshes).
        self.scan_seconds = scan_seconds
        self.per_second = per_second
        self.retry_base = 5.0
        #: Completed comparisons of every connected user (tests and `check` read it as a sign of life).
        self.scans = 0
        self._scan_due = True
        self._last_scan: datetime | None = None
        self._paused_until: datetime | None = None
        self._locks: dict[int, asyncio.Lock] = {}
        self._running = 0

    # -- what callers use ---------------------------------------------------------------------------

    async def note(self, discord_user_id: int) -> bool:
        """Compare this user's metadata with the policy now and queue a push when it differs; True if queued."""
        connection = await self.store.role_connection(discord_user_id)
        if connection is None or connection.revoked:
            return False
        queued = await self._queue_if_changed(connection)
        if queued:
            self.wake()
        return queued

    async def on_reconciled(self, discord_user_id: int) -> None:
        """The engine just planned this member (a webhook, a refresh, grace ending, an unlink): compare now rather
        than at the next scan. Never raises into the engine."""
        try:
            await self.note(discord_user_id)
        except Exception:
            log.exception("linked roles: could not compare user=%s after a reconcile", discord_user_id)

    async def push_now(self, discord_user_id: int) -> PushResult:
        """Queue and push this user's metadata in the caller's request (the verification page waits for it)."""
        connection = await self.store.role_connection(discord_user_id)
        if connection is None:
            return PushResult(False, "not connected")
        if connection.revoked:
            return PushResult(False, "revoked")
        if not await self._queue_if_changed(connection):
            fresh = await self.store.role_connection(discord_user_id)
            if fresh is None or fresh.wanted is None:
                return PushResult(True, "unchanged")
        connection = await self.store.role_connection(discord_user_id)
        assert connection is not None
        return await self._push(connection)

    def scan_soon(self) -> None:
        """Compare every connected user at the next pass (settings or tiers changed)."""
        self._scan_due = True
        self.wake()

    # -- the loop -----------------------------------------------------------------------------------

    async def work(self) -> bool:
        now = self.clock()
        if self._scan_due or self._last_scan is None or now - self._last_scan >= timedelta(seconds=self.scan_seconds):
            self._scan_due = False
            self._last_scan = now
            await self._scan()
        if self._paused_until is not None and now < self._paused_until:
            return False
        # The queue is one table for every process: one drains it at a time, so no user is pushed twice at once.
        async with self.store.exclusive(PUSH_LOCK) as held:
            if not held:
                log.debug("linked roles: another process is pushing; this one skips the round")
                self._paused_until = max(self._paused_until or now, now + OTHER_PUSHER_PAUSE)
                return False
            due = await self.store.due_pushes(now, limit=20)
            for connection in due:
                await self._push(connection)
                await asyncio.sleep(1.0 / self.per_second)
        return bool(due)

    async def next_due(self) -> datetime | None:
        scan = (self._last_scan or self.clock()) + timedelta(seconds=self.scan_seconds)
        due = await self.store.next_push_due()
        if self._paused_until is not None and due is not None:
            due = max(due, self._paused_until)
        return min(scan, due) if due is not None else scan

    async def busy(self) -> bool:
        if self._running:
            return True
        due = await self.store.next_push_due()
        paused = self._paused_until is not None and self.clock() < self._paused_until
        return due is not None and due <= self.clock() and not paused

    # -- steps --------------------------------------------------------------------------------------

    async def _scan(self) -> None:
        queued = 0
        for connection in await self.store.active_role_connections():
            try:
                queued += await self._queue_if_changed(connection)
            except Exception:  # one user's bad data must not stop the others
                log.exception("linked roles: could not compare user=%s", connection.discord_user_id)
        self.scans += 1
        if queued:
            log.info("linked roles: %d user(s) to push", queued)

    async def _queue_if_changed(self, connection: RoleConnection) -> bool:
        wanted = await self.view(connection.discord_user_id, connection.pushed)
        if wanted is None:
            return False
        current = connection.wanted if connection.wanted is not None else connection.pushed
        if current == wanted.metadata and connection.platform_username == wanted.platform_username:
            return False  # Discord has it (or it waits already): no call
        return await self.store.want_push(
            connection.discord_user_id, wanted.metadata, wanted.platform_username, self.clock()
        )

    async def _push(self, connection: RoleConnection) -> PushResult:
        user_id = connection.discord_user_id
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        self._running += 1
        try:
            async with lock:
                fresh = await self.store.role_connection(user_id)
                if fresh is None or fresh.revoked or fresh.wanted is None:
                    return PushResult(fresh is not None and not fresh.revoked, "unchanged")
                return await self._send(fresh, fresh.wanted)
        finally:
            self._running -= 1
            if not lock.locked():
                self._locks.pop(user_id, None)

    async def _send(self, connection: RoleConnection, metadata: dict[str, str]) -> PushResult:
        user_id = connection.discord_user_id
        try:
            tokens = await self._live_tokens(user_id)
            try:
                await self.client.put_role_connection(
                    tokens.access_token, self.platform_name, connection.platform_username, metadata
                )
            except RoleConnectionRefused:
                # The access token may have died early; one refresh decides whether the user's grant still holds.
                tokens = await self._refreshed(user_id, stale=tokens.access_token)
                await self.client.put_role_connection(
                    tokens.access_token, self.platform_name, connection.platform_username, metadata
                )
        except RoleConnectionRefused as error:
            await self.store.revoke_role_connection(user_id, str(error), self.clock())
            log.warning("linked roles: Discord refused user=%s's token (%s); pushes stop for them", user_id, error)
            return PushResult(False, "revoked")
        except RoleConnectionRateLimited as error:
            wait = timedelta(seconds=max(error.retry_after, 0.05))
            if error.is_global:
                self._paused_until = self.clock() + wait
            await self.store.push_later(user_id, str(error), self.clock() + wait, count=False)
            log.info("linked roles: push for user=%s %s", user_id, error)
            return PushResult(False, "queued")
        except RoleConnectionUnavailable as error:
            delay = min(timedelta(seconds=self.retry_base * 2**connection.attempts), MAX_BACKOFF)
            await self.store.push_later(user_id, str(error), self.clock() + delay, count=True)
            log.info("linked roles: push for user=%s failed (%s); again in %ds", user_id, error, delay.total_seconds())
            return PushResult(False, "queued")
        await self.store.push_done(user_id, metadata, self.clock())
        log.info("linked roles: pushed user=%s metadata %s", user_id, metadata)
        return PushResult(True, "pushed")

    async def _live_tokens(self, user_id: int) -> TokenPair:
        tokens = await self.store.get_tokens(discord_subject(user_id))
        if tokens is None:
            raise RoleConnectionRefused("no Discord token is stored")
        if self._expiring(tokens):
            return await self._refreshed(user_id, stale=None)
        return tokens

    def _expiring(self, tokens: TokenPair) -> bool:
        return tokens.expires_at - REFRESH_MARGIN <= self.clock()

    async def _refreshed(self, user_id: int, *, stale: str | None) -> TokenPair:
        """Refresh the user's pair unless someone else just did (`stale`: the access token Discord refused).

        Refresh tokens are single use: two processes (or a push and the verification page) refreshing one pair
        would leave the loser with `invalid_grant`, read as the user's revocation, and its revoke would delete the
        winner's new pair. So one at a time refreshes it, and each reads the stored pair again first."""
        subject = discord_subject(user_id)
        async with self.store.token_refresh(subject, wait=TOKEN_LOCK_WAIT) as held:
            if not held:
                raise RoleConnectionUnavailable("another process is refreshing this user's Discord token")
            tokens = await self.store.get_tokens(subject)
            if tokens is None:
                raise RoleConnectionRefused("no Discord token is stored")
            if tokens.access_token != stale and not self._expiring(tokens):
                return tokens  # refreshed meanwhile by whoever held the lock
            fresh = await self.client.refresh(tokens.refresh_token)
            await self.store.save_tokens(subject, fresh)  # before use: the old refresh token is spent
        log.info("linked roles: refreshed user=%s's Discord token", user_id)
        return fresh
