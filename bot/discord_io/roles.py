"""The adapter that applies role changes through discord.py (the engine's RoleGateway).

It checks Discord's rules before calling, because every refused call counts toward Discord's
invalid-request limit: a role the bot may not manage is reported, never sent.

Each role is changed on its own (`PUT`/`DELETE /guilds/{g}/members/{u}/roles/{r}`), never by a `PATCH` of the
member's whole list: the list would come from discord.py's lagging cache, and a PATCH from it takes away a role a
moderator gave moments ago (even a fresh GET first leaves a gap). tests/e2e/test_member_patch_race.py shows the
loss on the PATCH path and the role kept on this one; docs/discord-api.md says more.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import discord
from discord.ext import commands

from bot.discord_io.kicks import KickCalls
from bot.discord_io.linked_members import LinkedMembers, MemberLookupFailed
from bot.discord_io.rate_limit_watch import RateLimitWatch
from bot.sync.reconcile import GRANT_SETTLE_TIME
from bot.sync.role_gateway import RoleChangeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoleWrite:
    """One successful PUT (`present`) or DELETE of a member's role, at a monotonic time."""

    present: bool
    at: float
    #: False when it reversed a write of ours still unconfirmed: the cache then agrees with it by coincidence
    #: (it still shows the state before both), so only the time bound ends it.
    confirmable: bool = True


class UnconfirmedRoleWrites:
    """The role writes this bot made that discord.py's member cache may not show yet.

    Why: `add_roles`/`remove_roles` (atomic) change nothing in discord.py's cache; it learns of them only from
    Discord's GUILD_MEMBER_UPDATE, which can lag by seconds or more (Rapptz/discord.py#8269). A job planned in
    that gap from the cache alone would skip the removal of a role just given (or the re-grant of a role just
    taken) and nothing would fix it until the next refresh. So the adapter's view of a member is the cache with
    these writes laid over it. A write ends when the cache shows it (the event arrived: `seen` is told after
    every member update, so a moderator's later change counts at once) or after `settle_seconds` (then the cache
    is believed: someone may have changed the role since). Only the cache as it is now is compared, never an
    older copy: an older state can match a write by coincidence (our previous write to that role).
    """

    def __init__(self, settle_seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settle_seconds = settle_seconds
        self._monotonic = monotonic
        self._writes: dict[tuple[int, int], dict[int, RoleWrite]] = {}
        self._next_prune = monotonic() + settle_seconds

    def record(self, guild_id: int, user_id: int, role_id: int, present: bool, cached: frozenset[int]) -> None:
        """Remember a write Discord accepted; `cached` is what discord.py's cache shows for the member now."""
        self._prune()
        writes = self._writes.setdefault((guild_id, user_id), {})
        self._settle(writes, cached, self._monotonic())
        if role_id not in writes and (role_id in cached) == present:
            # The gateway echo beat Discord's answer (two connections, nothing orders them): the cache shows the
            # write already, so nothing is unconfirmed, and keeping it would hide a moderator's change for the
            # whole settle time.
            if not writes:
                del self._writes[(guild_id, user_id)]
            return
        writes[role_id] = RoleWrite(present, self._monotonic(), confirmable=role_id not in writes)

    def overlay(self, guild_id: int, user_id: int, cached: frozenset[int]) -> frozenset[int]:
        """The member's roles: `cached` with the writes the cache doesn't show yet applied."""
        writes = self._writes.get((guild_id, user_id))
        if not writes:
            return cached
        self._settle(writes, cached, self._monotonic())
        if not writes:
            del self._writes[(guild_id, user_id)]
        added = {role for role, write in writes.items() if write.present}
        return frozenset((cached - writes.keys()) | added)

    def seen(self, guild_id: int, user_id: int, cached: frozenset[int]) -> None:
        """The cache now shows the member with these roles (just after a GUILD_MEMBER_UPDATE)."""
        writes = self._writes.get((guild_id, user_id))
        if writes:
            self._settle(writes, cached, self._monotonic())
            if not writes:
                del self._writes[(guild_id, user_id)]

    def forget_member(self, guild_id: int, user_id: int) -> None:
        """Drop a member's writes: Discord itself was just asked for their roles, so nothing is pending."""
        self._writes.pop((guild_id, user_id), None)

    def _settle(self, writes: dict[int, RoleWrite], cached: frozenset[int], now: float) -> None:
        for role_id, write in list(writes.items()):
            echoed = write.confirmable and (role_id in cached) == write.present
            if echoed or now - write.at > self.settle_seconds:
                del writes[role_id]

    def _prune(self) -> None:
        """Now and then, forget members nobody read again once all their writes are past the bound."""
        now = self._monotonic()
        if now < self._next_prune:
            return
        self._next_prune, cutoff = now + self.settle_seconds, now - self.settle_seconds
        for key, writes in list(self._writes.items()):
            if all(write.at < cutoff for write in writes.values()):
                del self._writes[key]


#: A log channel of a server this process doesn't hold, once Discord refused it (deleted, or the bot lost access),
#: is not tried again for this long: each refusal counts toward Discord's invalid-request limit (a ban past 10,000
#: in 10 minutes), and a busy sync could post hundreds of lines.
UNPOSTABLE_SECONDS = 600.0


class DiscordRoleGateway(KickCalls):
    def __init__(self, client: commands.Bot, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._monotonic = monotonic
        #: Uncached log channels Discord refused: channel id -> when they may be tried again (monotonic).
        self._unpostable: dict[int, float] = {}
        #: Our own role writes the cache hasn't confirmed; every read of a member's roles goes through it.
        self.pending_writes = UnconfirmedRoleWrites(GRANT_SETTLE_TIME.total_seconds(), monotonic)
        #: The members held in memory: linked ones, asked for by id (bot/discord_io/linked_members.py).
        self.linked_members = LinkedMembers(client)
        #: 429s Discord sent anyway (discord.py retried them); `check` shows the count.
        self.rate_limit_watch = RateLimitWatch.attach()
        #: Member-role calls by Discord's answer ("204", "403", ...), for /metrics; 429s are the watch's.
        self.role_call_statuses: collections.Counter[str] = collections.Counter()
        self._gateway_up = False
        client.add_listener(self._member_updated, "on_member_update")
        for event, up in (("on_connect", True), ("on_resumed", True), ("on_disconnect", False)):
            client.add_listener(functools.partial(self._gateway_changed, up), event)

    async def _gateway_changed(self, up: bool) -> None:
        self._gateway_up = up

    def connected(self) -> bool:
        """Whether the gateway session is up now (discord.py's connect/resumed/disconnect events), for /readyz."""
        return self._gateway_up and not self.client.is_closed()

    def role_call_counts(self) -> dict[str, int]:
        """Member-role calls by status for /metrics; the 429s discord.py retried by itself count as "429"."""
        counts = dict(self.role_call_statuses)
        if self.rate_limit_watch.role_calls:
            counts["429"] = self.rate_limit_watch.role_calls
        return counts

    async def _member_updated(self, _before: discord.Member, after: discord.Member) -> None:
        """Settle the member's writes as soon as an event changes the cache, not at the next read: a moderator's
        edit right after our echo must not hide behind our write. (`after` is the live cached member; `before`,
        an older copy, could agree with a write by coincidence and is not used.)"""
        self.pending_writes.seen(after.guild.id, after.id, _role_ids(after))

    def guild_ids(self) -> list[int]:
        return [guild.id for guild in self.client.guilds]

    async def member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        member = await self._member(guild_id, user_id)
        if member is None:
            return None
        return self.pending_writes.overlay(guild_id, user_id, _role_ids(member))

    def cached_member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        guild = self.client.get_guild(guild_id)
        member = guild.get_member(user_id) if guild is not None else None
        if member is None:
            return None
        return self.pending_writes.overlay(guild_id, user_id, _role_ids(member))

    def knows_all_members(self, guild_id: int) -> bool:
        """All *linked* members (and holders of our grants) were asked for since READY; nobody else is kept."""
        return self.client.get_guild(guild_id) is not None and self.linked_members.knows_all(guild_id)

    def knows_member(self, guild_id: int, user_id: int) -> bool:
        """Cached, or Discord was asked since READY and said they aren't a member (a new link isn't known yet)."""
        return self.linked_members.requested(guild_id, user_id)

    async def load_linked_members(self, guild_id: int, user_ids: set[int]) -> None:
        """Ask Discord for these members (at each READY), by id, 100 per gateway request."""
        guild = self.client.get_guild(guild_id)
        if guild is not None:
            await self.linked_members.load(guild, user_ids)

    def missing_permissions(self, guild_id: int) -> str | None:
        guild = self.client.get_guild(guild_id)
        if guild is None:
            return "The bot is not in this server."
        if not guild.me.guild_permissions.manage_roles:
            return "The bot lacks the Manage Roles permission; give its role Manage Roles."
        return None

    def unassignable_roles(self, guild_id: int, role_ids: frozenset[int]) -> dict[int, str]:
        problem = self.missing_permissions(guild_id)
        guild = self.client.get_guild(guild_id)
        if problem is not None or guild is None:
            return {role_id: (problem or "").rstrip(".") for role_id in role_ids}
        refused: dict[int, str] = {}
        for role_id in role_ids:
            reason = role_refusal(guild, guild.get_role(role_id))
            if reason:
                refused[role_id] = reason
        return refused

    async def deleted_roles(self, guild_id: int, role_ids: frozenset[int]) -> frozenset[int]:
        """Those of `role_ids` Discord no longer has in this server. A role missing from the cached guild (which
        discord.py keeps by GUILD_CREATE and GUILD_ROLE_CREATE/DELETE) is only a hint: a role created a moment ago
        may not be cached yet, so only the server's own role list, read then (GET /guilds/{g}/roles; GET
        /guilds/{g} for a server this process doesn't hold: another shard's, at a connect callback), decides.
        Discord failing says nothing is deleted, so no rank check is ever relaxed on a guess
        (bot/guild_admin/rank.py)."""
        guild = self.client.get_guild(guild_id)
        held = guild is not None and not guild.unavailable
        uncached = frozenset(r for r in role_ids if guild is None or not held or guild.get_role(r) is None)
        if not uncached:
            return uncached
        try:
            if guild is not None and held:
                listed = {role.id for role in await guild.fetch_roles()}
            else:
                listed = {role.id for role in (await self.client.fetch_guild(guild_id, with_counts=False)).roles}
        except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
            log.warning("guild=%s: couldn't list its roles (%s); none counts as deleted", guild_id, error)
            return frozenset()
        return uncached - listed

    async def set_member_roles(
        self, guild_id: int, user_id: int, add: frozenset[int], remove: frozenset[int], reason: str
    ) -> None:
        """One atomic call per changed role (PUT or DELETE of that role), adds first.

        Not one PATCH of the whole role list: that list would come from discord.py's cache, which lags
        behind Discord (a moderator's edit, or our own previous write, arrives later by gateway), and a
        PATCH from a stale list would silently drop a hand-given role. A member whose roles are right
        costs no call at all; the usual change (one tier role) costs one.
        """
        guild = self.client.get_guild(guild_id)
        member = await self._member(guild_id, user_id)
        if guild is None or member is None:
            raise RoleChangeError("the member is no longer in the server", permanent=True)
        applied: set[int] = set()
        try:
            for role_id in sorted(add):
                await member.add_roles(discord.Object(role_id), reason=reason, atomic=True)
                self.role_call_statuses["204"] += 1
                applied.add(role_id)
                self._wrote(guild, user_id, role_id, present=True)
            for role_id in sorted(remove):
                await member.remove_roles(discord.Object(role_id), reason=reason, atomic=True)
                self.role_call_statuses["204"] += 1
                self._wrote(guild, user_id, role_id, present=False)
        except discord.HTTPException as error:
            self.role_call_statuses[str(error.status)] += 1
            raise _role_change_error(error, frozenset(applied)) from error

    def role_name(self, guild_id: int, role_id: int) -> str:
        guild = self.client.get_guild(guild_id)
        role = guild.get_role(role_id) if guild else None
        return role.name if role else f"deleted-role-{role_id}"

    def user_name(self, user_id: int) -> str:
        """From the user cache, else a cached member (a member asked for by id isn't put in the user cache)."""
        user: discord.abc.User | None = self.client.get_user(user_id)
        for guild in self.client.guilds if user is None else ():
            if (user := guild.get_member(user_id)) is not None:
                break
        return user.name if user else str(user_id)

    async def post_log(self, channel_id: int, text: str) -> None:
        """A line to a server's log channel. A channel this process hasn't cached is most likely one of another
        shard's servers (a link's OAuth callback, or a webhook, landed here): posting needs no cache, only the
        channel's id over HTTP (discord.py's `get_partial_messageable`), so the line goes out from here rather than
        being dropped; Discord's own permission check still applies, and its refusal is logged as below. The id is
        the server's own setting (a channel option of its slash command, which Discord limits to that server).
        A process holding every server posts only to channels it has cached, as before."""
        channel: object = self.client.get_channel(channel_id)
        if channel is None and not self._holds_every_server():
            if self._unpostable.get(channel_id, 0.0) > self._monotonic():
                return  # refused a moment ago: logged then
            channel = self.client.get_partial_messageable(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("log channel %s is not a text channel the bot can see", channel_id)
            return
        try:
            await channel.send(text[:2000], allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as error:
            if isinstance(channel, discord.PartialMessageable) and isinstance(
                error, discord.Forbidden | discord.NotFound
            ):
                self._unpostable[channel_id] = self._monotonic() + UNPOSTABLE_SECONDS
                log.warning("could not post to log channel %s: %s; not tried for %.0f s", channel_id, error,
                            UNPOSTABLE_SECONDS)
                return
            log.warning("could not post to log channel %s: %s", channel_id, error)

    def _holds_every_server(self) -> bool:
        """discord.py's own view: an AutoShardedClient running some of its shards holds only their servers."""
        ids = getattr(self.client, "shard_ids", None)
        count = self.client.shard_count
        return ids is None or count is None or set(range(count)) <= set(ids)

    async def _member(self, guild_id: int, user_id: int) -> discord.Member | None:
        guild = self.client.get_guild(guild_id)
        if guild is None:
            return None
        member = guild.get_member(user_id)
        if member is not None:
            return member
        try:
            fetched = await self.linked_members.member(guild, user_id)  # gateway op 8 by id, cached from then on
        except MemberLookupFailed as error:
            raise RoleChangeError(f"Discord failed to look the member up ({error})", permanent=False) from error
        self.pending_writes.forget_member(guild_id, user_id)  # read from Discord just now: nothing is pending
        return fetched

    def _wrote(self, guild: discord.Guild, user_id: int, role_id: int, *, present: bool) -> None:
        cached = guild.get_member(user_id)
        self.pending_writes.record(guild.id, user_id, role_id, present, _role_ids(cached) if cached else frozenset())


def _role_change_error(error: discord.HTTPException, applied: frozenset[int]) -> RoleChangeError:
    """Discord's refusal as the engine's error: a 403 or 404 is permanent, anything else may pass."""
    if isinstance(error, discord.Forbidden):
        detail = error.text or "missing permissions"
        return RoleChangeError(f"Discord refused the change ({detail})", permanent=True, added=applied)
    if isinstance(error, discord.NotFound):
        return RoleChangeError(f"Discord could not find it ({error.text})", permanent=True, added=applied)
    return RoleChangeError(f"Discord failed ({error.status})", permanent=False, added=applied)


def _role_ids(member: discord.Member) -> frozenset[int]:
    return frozenset(role.id for role in member.roles if not role.is_default())


def role_refusal(guild: discord.Guild, role: discord.Role | None) -> str | None:
    """Why the bot may not give or take this role, or None when it may (Discord's own rules)."""
    if role is None:
        return "the role no longer exists"
    if role.is_default():
        return "@everyone cannot be given"
    if role.managed:
        return f"@{role.name} is managed by an integration"
    if guild.owner_id != guild.me.id and role >= guild.me.top_role:
        return f"@{role.name} is above the bot's highest role ({guild.me.top_role.name}); move the bot's role up"
    return None
