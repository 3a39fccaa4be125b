"""Which members a refresh plans: only what changed, with a slow full re-plan as the safety net.

A refresh plans, per acting guild, the members whose snapshot Patreon now describes differently, whose roles
time may have changed, who left the campaign, whose link was made or replaced, who hold a grant without a link
that counts there, whose pending webhook the refresh supersedes, and whose roles changed on Discord (`DirtyMembers`,
marked by the Discord adapter on every member update). Everyone else is right already: planning them again would
find nothing to do.

Every member of a guild is planned again (`GuildScope.full_reason`) at start-up, on `/patreon-admin sync`, at least
every `FULL_REPLAN_INTERVAL`, and when what decides the guild's roles besides its members changed (settings, the
tier→role map, the tier catalogue, which roles the bot may touch: `guild_fingerprint`), so anything this list
misses is fixed within a day.

State lives in memory: a restart starts with a full re-plan anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: However little changed, every member is planned again at least this often.
FULL_REPLAN_INTERVAL = timedelta(days=1)
#: Beyond this many members marked in one guild, the next refresh plans the whole guild instead.
DIRTY_LIMIT = 50_000


class DirtyMembers:
    """Members whose roles changed on Discord since a refresh last planned them (a moderator's hand, another
    bot, our own writes): the Discord adapter `mark`s them, the refresh `take`s them and, when it fails before
    planning them, `restore`s them."""

    def __init__(self, limit: int = DIRTY_LIMIT) -> None:
        self.limit = limit
        self._members: dict[int, set[int]] = {}
        self._overflowed: set[int] = set()

    def mark(self, guild_id: int, user_id: int) -> None:
        if guild_id in self._overflowed:
            return
        members = self._members.setdefault(guild_id, set())
        members.add(user_id)
        if len(members) > self.limit:  # a mass change: plan the guild in full rather than hold every id
            self._overflowed.add(guild_id)
            del self._members[guild_id]

    def take(self) -> tuple[dict[int, set[int]], set[int]]:
        """Everything marked so far, by guild, and the guilds that overflowed; the marks start over."""
        taken = (self._members, self._overflowed)
        self._members, self._overflowed = {}, set()
        return taken

    def restore(self, members: dict[int, set[int]], overflowed: set[int]) -> None:
        for guild_id, users in members.items():
            for user_id in users:
                self.mark(guild_id, user_id)
        self._overflowed |= overflowed
        for guild_id in overflowed:
            self._members.pop(guild_id, None)


@dataclass(frozen=True)
class GuildPlanState:
    """What the last successful refresh planned a guild against."""

    fingerprint: str
    #: The engine's clock when that refresh planned (time boundaries are checked from here).
    planned_at: datetime
    #: The store's (wall) clock when that refresh started: links made since are planned.
    started_wall: datetime
    #: When the guild was last planned in full (engine clock).
    full_at: datetime


class GuildScope:
    """Per guild: the state of its last plan and whether the next must be full."""

    def __init__(self) -> None:
        self._states: dict[int, GuildPlanState] = {}
        self._full_requested: set[int] = set()

    def request_full(self, guild_id: int) -> None:
        """The next refresh plans every member of this guild (`/patreon-admin sync` asks for it)."""
        self._full_requested.add(guild_id)

    def keep_only(self, guild_ids: list[int]) -> None:
        """Forget the guilds that don't act now: changes they skipped meanwhile are found by a full plan when
        they act again."""
        for guild_id in set(self._states) - set(guild_ids):
            del self._states[guild_id]

    def state(self, guild_id: int) -> GuildPlanState | None:
        return self._states.get(guild_id)

    def full_reason(self, guild_id: int, fingerprint: str, now: datetime, overflowed: bool) -> str | None:
        """Why the guild must be planned in full now, or None when its changes suffice."""
        state = self._states.get(guild_id)
        if state is None:
            return "first plan since start-up"
        if guild_id in self._full_requested:
            return "asked for by a sync"
        if state.fingerprint != fingerprint:
            return "settings, tier map, tiers or role order changed"
        if overflowed:
            return "too many members changed on Discord"
        if now - state.full_at >= FULL_REPLAN_INTERVAL:
            return "daily full re-plan"
        return None

    def planned(self, guild_id: int, fingerprint: str, now: datetime, started_wall: datetime, full: bool) -> None:
        """Record a successful plan of the guild."""
        previous = self._states.get(guild_id)
        full_at = now if full or previous is None else previous.full_at
        self._states[guild_id] = GuildPlanState(fingerprint, now, started_wall, full_at)
        if full:
            self._full_requested.discard(guild_id)
