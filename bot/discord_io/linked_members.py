"""Which server members the bot holds in memory: the linked ones, asked for by id, never a whole big server.

Why: a server can have 1,000,000 members of whom 5,000 are patrons, and the bot needs the roles of linked members
only. So discord.py doesn't chunk servers at start-up and keeps no member it wasn't asked for or told about
(`MemberCacheFlags.none()`: no member is cached from GUILD_CREATE or GUILD_MEMBER_ADD). At each fresh READY the bot
asks each server for the linked members whose link can matter there (patrons of the campaign it follows, hand links
made there, anyone holding a role it gave: `PatronBot._members_to_ask_for`) with gateway op 8 REQUEST_GUILD_MEMBERS by
`user_ids`, at most 100 per request (Discord's cap), cached as they arrive; discord.py then keeps them current from
GUILD_MEMBER_UPDATE/REMOVE. A member nobody asked about yet (a new link) is asked for the first time it is needed.

Costs: discord.py sends at most 110 gateway frames a minute (Discord closes a connection that sends more than 120),
so 5,000 linked members take 50 requests, answered within a second or two; 100,000 take 1,000 requests, about 9
minutes. A smaller server whose linked members would need more than `FULL_LIST_MIN_REQUESTS` requests is asked for
its whole member list instead (one request, answered in chunks of 1000; Discord allows one per server per 30 s):
cheaper than hundreds of id requests, and it holds at most `FULL_LIST_MAX_MEMBERS` members.

Once those were all asked for (`knows_all`), a member asked for and not in memory is not a member of that server;
anyone not asked for is asked on first use (`requested` is False for them). That says nothing about people who
aren't linked (auto-match must ask).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import discord
from discord.ext import commands

log = logging.getLogger(__name__)

#: Discord answers at most 100 `user_ids` per op 8.
IDS_PER_REQUEST = 100
#: Past this many id requests a whole-list request is cheaper (discord.py's budget is 110 frames a minute).
FULL_LIST_MIN_REQUESTS = 100
#: Never ask for the whole member list of a server larger than this (it would all sit in memory).
FULL_LIST_MAX_MEMBERS = 150_000
#: How long a lookup waits for the start-up request to be under way before asking on its own.
LOAD_WAIT_S = 60.0


class MemberLookupFailed(Exception):
    """Discord didn't answer a member request (not connected, or no answer within discord.py's 30 s)."""


class LinkedMembers:
    """The linked members of each server: asked for at start-up and on first use, kept current by discord.py."""

    def __init__(self, client: commands.Bot) -> None:
        self.client = client
        #: Servers whose linked members were all asked for since the last READY.
        self._known: set[int] = set()
        #: Per server, the ids asked for that weren't members (until they join).
        self._absent: dict[int, set[int]] = {}
        #: (server, user) → the start-up request that will answer for them, so a lookup meanwhile waits for it.
        self._pending: dict[tuple[int, int], asyncio.Future[None]] = {}
        #: Per server, set once the start-up requests are under way (`_pending` filled) or over. A lookup that
        #: comes first (the start-up refresh can) waits for it instead of spending a gateway request of its own.
        self._under_way: dict[int, asyncio.Event] = {}
        client.add_listener(self._joined, "on_member_join")
        client.add_listener(self._left, "on_raw_member_remove")

    def knows_all(self, guild_id: int) -> bool:
        """True once every linked member of this server was asked for: not in memory means not a member."""
        return guild_id in self._known

    def requested(self, guild_id: int, user_id: int) -> bool:
        """True when Discord answered for this user since the last READY (cached, or known not to be a member)."""
        guild = self.client.get_guild(guild_id)
        cached = guild is not None and guild.get_member(user_id) is not None
        return cached or user_id in self._absent.get(guild_id, ())

    def expect(self, guild_id: int) -> None:
        """A load of this server is coming (a READY or a join): lookups wait for it to be under way."""
        self._known.discard(guild_id)
        event = self._under_way.get(guild_id)
        if event is None or event.is_set():
            self._under_way[guild_id] = asyncio.Event()

    async def load(self, guild: discord.Guild, user_ids: Iterable[int]) -> None:
        """Ask Discord for these members of `guild` (after each READY: the cache starts empty)."""
        self.expect(guild.id)
        under_way = self._under_way[guild.id]
        try:
            await self._load(guild, user_ids, under_way)
        finally:
            under_way.set()

    async def _load(self, guild: discord.Guild, user_ids: Iterable[int], under_way: asyncio.Event) -> None:
        absent = self._absent[guild.id] = set()
        wanted = sorted({u for u in user_ids if guild.get_member(u) is None})
        requests = -(-len(wanted) // IDS_PER_REQUEST)
        whole_list = requests > FULL_LIST_MIN_REQUESTS and (guild.member_count or 0) <= FULL_LIST_MAX_MEMBERS
        if whole_list and await self._load_whole_list(guild, wanted, absent):
            return
        loop = asyncio.get_running_loop()
        batches = [wanted[i : i + IDS_PER_REQUEST] for i in range(0, len(wanted), IDS_PER_REQUEST)]
        futures = [loop.create_future() for _ in batches]
        for batch, future in zip(batches, futures, strict=True):
            self._pending.update(dict.fromkeys(((guild.id, u) for u in batch), future))
        under_way.set()
        failed = 0
        for batch, future in zip(batches, futures, strict=True):
            try:
                members = await guild.query_members(user_ids=batch, limit=IDS_PER_REQUEST, cache=True)
            except (TimeoutError, discord.DiscordException, OSError) as error:
                failed += 1
                log.warning("member request for %d id(s) in guild=%s failed: %s", len(batch), guild.id, error)
            else:
                absent.update(set(batch) - {member.id for member in members})
            finally:
                for user_id in batch:
                    self._pending.pop((guild.id, user_id), None)
                future.set_result(None)
        if failed:
            log.warning(
                "guild=%s: %d of %d member request(s) failed; those members are asked for on use",
                guild.id,
                failed,
                len(batches),
            )
            return
        self._known.add(guild.id)
        log.info(
            "guild=%s: asked for %d linked member(s) in %d request(s): %d in the server, %d not",
            guild.id,
            len(wanted),
            len(batches),
            len(wanted) - len(absent),
            len(absent),
        )

    async def member(self, guild: discord.Guild, user_id: int) -> discord.Member | None:
        """The member from memory, from the start-up request under way, or asked for now; None if not a member."""
        member = guild.get_member(user_id)
        if member is not None:
            return member
        under_way = self._under_way.get(guild.id)  # `expect`ed at READY, before the start-up refresh can ask
        if under_way is not None and not under_way.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(under_way.wait(), LOAD_WAIT_S)
            if (member := guild.get_member(user_id)) is not None:
                return member
        pending = self._pending.get((guild.id, user_id))
        if pending is not None:
            await asyncio.shield(pending)
            member = guild.get_member(user_id)
            if member is not None or self.requested(guild.id, user_id):
                return member
        if user_id in self._absent.get(guild.id, ()):
            return None
        try:
            found = await guild.query_members(user_ids=[user_id], limit=1, cache=True)
        except (TimeoutError, discord.DiscordException, OSError) as error:
            raise MemberLookupFailed(str(error) or type(error).__name__) from error
        if not found:
            self._absent.setdefault(guild.id, set()).add(user_id)
            return None
        return guild.get_member(user_id) or found[0]

    async def _load_whole_list(self, guild: discord.Guild, wanted: list[int], absent: set[int]) -> bool:
        timeout = max(30.0, (guild.member_count or 0) / 5000)
        try:
            await asyncio.wait_for(guild.chunk(cache=True), timeout=timeout)
        except (TimeoutError, discord.DiscordException, OSError) as error:
            log.warning("guild=%s: whole member list not received (%s); asking by id instead", guild.id, error)
            return False
        absent.update(u for u in wanted if guild.get_member(u) is None)
        self._known.add(guild.id)
        log.info(
            "guild=%s: asked for the whole member list (%d linked would take %d id requests): %d cached",
            guild.id,
            len(wanted),
            -(-len(wanted) // IDS_PER_REQUEST),
            len(guild.members),
        )
        return True

    async def _joined(self, member: discord.Member) -> None:
        self._absent.get(member.guild.id, set()).discard(member.id)

    async def _left(self, payload: discord.RawMemberRemoveEvent) -> None:
        if payload.guild_id in self._absent and isinstance(payload.user, discord.Member):  # was in memory
            self._absent[payload.guild_id].add(payload.user.id)
