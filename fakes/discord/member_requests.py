"""Gateway op 8 REQUEST_GUILD_MEMBERS as Discord answers it: by `user_ids`, by name prefix, or the whole list.

What Discord does (docs "Gateway Events > Request Guild Members", and the Gateway Intents PR discord-api-docs#1307):
- `user_ids`: the members found, at most 100 ("requesting user_ids will continue to be limited to returning 100
  members"); the ids asked for that aren't members come back in `not_found`. The docs don't say what happens to
  ids past the 100th; this fake answers the first 100 and drops the rest silently (neither members nor
  not_found), so a client that sends more loses them, as it would with a truncating Discord.
- `query` + `limit`: members whose username (or nick) starts with the query, case-insensitive; a non-empty
  query returns at most 100 ("requesting a prefix will return a maximum of 100 members").
- `query: ""` with `limit: 0` is the entire member list, which needs the GUILD_MEMBERS intent; without it Discord
  sends nothing at all (discord-api-docs#5855: a request without the intent got no answer).
- Since 2025-08-14 a request for the entire list is limited to one per guild per 30 s; another within the window
  gets no chunks but a `RATE_LIMITED` dispatch: `{opcode: 8, retry_after, meta: {guild_id, nonce}}` (Discord
  changelog "Introducing Rate Limit When Requesting All Guild Members", discord-api-docs#7760).
- Chunks hold up to 1000 members, each with `chunk_index`/`chunk_count`, and echo the request's `nonce`.

Every request is recorded (`MemberRequest`), so a test can check exactly which ids a bot asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .guild import FakeGuild
from .models import FakeMember

CHUNK_SIZE = 1000
MAX_USER_IDS = 100
MAX_QUERY_LIMIT = 100
ALL_MEMBERS_WINDOW_S = 30.0

Dispatch = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class MemberRequest:
    """One op 8 as the bot sent it, and what the fake did with it."""

    guild_id: int
    user_ids: tuple[int, ...] | None
    query: str | None
    limit: int
    nonce: str | None
    #: "chunks", "rate_limited" or "ignored" (no intent, unknown guild).
    outcome: str

    @property
    def all_members(self) -> bool:
        """A request for the whole member list (`query: ""`, `limit: 0`)."""
        return self.user_ids is None and self.query == "" and self.limit == 0


class MemberRequestDesk:
    """Answers op 8 for all sessions; the whole-list window is per guild, as Discord keys it."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._last_full: dict[int, float] = {}
        self.requests: list[MemberRequest] = []

    def answer(self, guild: FakeGuild | None, data: dict[str, Any], *, has_members_intent: bool) -> list[Dispatch]:
        """The dispatches (GUILD_MEMBERS_CHUNK or RATE_LIMITED) Discord sends back for this op 8 payload."""
        nonce = data.get("nonce")
        raw_ids = data.get("user_ids")
        user_ids = tuple(int(u) for u in ([raw_ids] if isinstance(raw_ids, (int, str)) else raw_ids or ()))
        query = data.get("query")
        limit = int(data.get("limit") or 0)
        guild_id = int(data.get("guild_id") or 0)
        by_ids = bool(user_ids)
        whole = not by_ids and query == "" and limit == 0

        def record(outcome: str) -> None:
            self.requests.append(
                MemberRequest(guild_id, user_ids if by_ids else None, None if by_ids else query, limit, nonce, outcome)
            )

        if guild is None or (not by_ids and query == "" and not has_members_intent):
            record("ignored")
            return []
        if whole:
            now = self._monotonic()
            last = self._last_full.get(guild.id)
            if last is not None and now - last < ALL_MEMBERS_WINDOW_S:
                record("rate_limited")
                retry_after = round(ALL_MEMBERS_WINDOW_S - (now - last), 3)
                meta: dict[str, Any] = {"guild_id": str(guild.id)}
                if nonce is not None:
                    meta["nonce"] = nonce
                return [("RATE_LIMITED", {"opcode": 8, "retry_after": retry_after, "meta": meta})]
            self._last_full[guild.id] = now
        record("chunks")
        not_found: list[str] = []
        if by_ids:
            members: list[FakeMember] = []
            for user_id in dict.fromkeys(user_ids[:MAX_USER_IDS]):
                member = guild.members.get(user_id)
                if member is None:
                    not_found.append(str(user_id))
                else:
                    members.append(member)
            return _chunks(guild, members, not_found, nonce, bool(data.get("presences")))
        prefix = (query or "").lower()
        if prefix:
            limit = min(limit or MAX_QUERY_LIMIT, MAX_QUERY_LIMIT)
        found = _matching(guild.members.values(), prefix, limit)
        return _chunks(guild, found, not_found, nonce, bool(data.get("presences")))


def _matching(members: Iterable[FakeMember], prefix: str, limit: int) -> list[FakeMember]:
    found: list[FakeMember] = []
    for member in members:
        if limit and len(found) >= limit:
            break
        names = (member.username.lower(), (member.nick or "").lower())
        if not prefix or any(name.startswith(prefix) for name in names if name):
            found.append(member)
    return found


def _chunks(
    guild: FakeGuild, members: list[FakeMember], not_found: list[str], nonce: str | None, presences: bool
) -> list[Dispatch]:
    groups = [members[i : i + CHUNK_SIZE] for i in range(0, len(members), CHUNK_SIZE)] or [[]]
    out: list[Dispatch] = []
    for index, group in enumerate(groups):
        payload: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.to_payload() for m in group],
            "chunk_index": index,
            "chunk_count": len(groups),
            "not_found": not_found if index == 0 else [],
            "nonce": nonce,
        }
        if presences:
            payload["presences"] = []
        out.append(("GUILD_MEMBERS_CHUNK", payload))
    return out
