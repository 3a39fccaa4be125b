"""Which bot process owns a server: Discord's shard formula, as a pure rule every layer can apply.

Discord routes a server's gateway events to shard `(guild_id >> 22) % shard_count` ("Sharding" in Discord's
gateway documentation, https://discord.com/developers/docs/events/gateway#sharding). A process running some of the
shards owns exactly those servers: it changes their roles, runs their role jobs and plans them at a refresh;
every other server belongs to another process, and its work waits in the shared database for that process.
"""

from __future__ import annotations

from dataclasses import dataclass


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends this server's events to."""
    return (guild_id >> 22) % shard_count


@dataclass(frozen=True)
class ShardSpec:
    """The shards one process runs: `ids` of `count` (all of them when the bot isn't sharded: count 1, id 0)."""

    count: int = 1
    ids: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if self.count < 1 or not self.ids or any(not 0 <= shard < self.count for shard in self.ids):
            raise ValueError(f"shards {self.ids} of {self.count} are not a set of shard ids below the count")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"shard ids {self.ids} repeat one")

    @property
    def every_shard(self) -> bool:
        """This process runs every shard, so it owns every server (and may share the database with nobody)."""
        return len(self.ids) == self.count

    def owns(self, guild_id: int) -> bool:
        return shard_of(guild_id, self.count) in self.ids

    def owned(self, guild_ids: list[int]) -> list[int]:
        return [guild_id for guild_id in guild_ids if self.owns(guild_id)]

    def describe(self) -> str:
        """For log lines: `shards 0,2 of 4`, or `one shard` unsharded."""
        if self.count == 1:
            return "one shard"
        return f"shard{'s' if len(self.ids) > 1 else ''} {','.join(map(str, self.ids))} of {self.count}"
