"""A crowd: a guild's members plus many synthetic ones that exist only as an id range until something touches them.

Why: a benchmark needs a server of 1,000,000 members, and a million FakeMember objects (each with its observed role
set) would cost the fake gigabytes. The crowd's members are real members in every way that matters to Discord's
rules (they count in `member_count`, op 8 finds them, REST answers for them, they can be removed); one becomes a
stored FakeMember the first time it is read or changed, named `crowd<n>` with no roles. Reading the whole list
(a whole-list op 8) yields transient members without storing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping, ValuesView

from .guild import FakeGuild
from .models import FakeMember


class CrowdMembers(MutableMapping[int, FakeMember]):
    """`guild.members` with `count` synthetic members from `first_id` on."""

    def __init__(
        self, real: dict[int, FakeMember], first_id: int, count: int, make: Callable[[int], FakeMember]
    ) -> None:
        self._real = real
        self.first_id, self.count = first_id, count
        self._make = make
        #: Synthetic ids that were stored in `_real` or removed: no longer synthetic.
        self._taken: set[int] = set()

    def _synthetic(self, user_id: object) -> bool:
        return (
            isinstance(user_id, int)
            and self.first_id <= user_id < self.first_id + self.count
            and user_id not in self._taken
        )

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._real or self._synthetic(user_id)

    def __getitem__(self, user_id: int) -> FakeMember:
        member = self._real.get(user_id)
        if member is not None:
            return member
        if not self._synthetic(user_id):
            raise KeyError(user_id)
        self._taken.add(user_id)
        member = self._real[user_id] = self._make(user_id)
        return member

    def __setitem__(self, user_id: int, member: FakeMember) -> None:
        if self._synthetic(user_id):
            self._taken.add(user_id)
        self._real[user_id] = member

    def __delitem__(self, user_id: int) -> None:
        if self._synthetic(user_id):
            self._taken.add(user_id)
            return
        del self._real[user_id]

    def __len__(self) -> int:
        return len(self._real) + self.count - len(self._taken)

    def __iter__(self) -> Iterator[int]:
        yield from list(self._real)
        yield from (u for u in range(self.first_id, self.first_id + self.count) if u not in self._taken)

    def values(self) -> ValuesView[FakeMember]:
        return _TransientValues(self)

    def iter_values(self) -> Iterator[FakeMember]:
        """Stored members, then transient ones for the ids nobody touched (never stored)."""
        yield from list(self._real.values())
        for user_id in range(self.first_id, self.first_id + self.count):
            if user_id not in self._taken:
                yield self._make(user_id)


class _TransientValues(ValuesView[FakeMember]):
    def __init__(self, crowd: CrowdMembers) -> None:
        super().__init__(crowd)
        self._crowd = crowd

    def __iter__(self) -> Iterator[FakeMember]:
        return self._crowd.iter_values()


def add_crowd(guild: FakeGuild, first_id: int, count: int) -> CrowdMembers:
    """Give `guild` `count` more members (ids `first_id` on) without making them; no GUILD_MEMBER_ADD is sent,
    as for members who were there before the bot connected."""

    def make(user_id: int) -> FakeMember:
        return guild._watch(FakeMember(user_id, guild.id, f"crowd{user_id - first_id}"))

    crowd = CrowdMembers(guild.members, first_id, count, make)
    guild.members = crowd  # type: ignore[assignment]
    return crowd
