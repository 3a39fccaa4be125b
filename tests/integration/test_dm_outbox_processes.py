"""Two bot processes' DM senders on one database (issue 11, item 6): each DM goes out once.

Two `PatronDms` over one store stand for two processes' outbox workers (the store contract, on PostgreSQL too, is
tests/store_contract/test_dm_claims.py). Before the claims every process sent every due DM: both passes read the
same pending rows and each sent them all.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.shards import ShardSpec
from bot.store import Store
from bot.store.dm_outbox import DM_PENDING, DM_SENT
from bot.store.leases import Claimer
from bot.sync.participation import Participation
from bot.sync.patron_dms import DmOutcome, PatronDms
from tests.integration.test_shared_state import CAMPAIGN, SHARD0, SHARD1, pair, registry

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
MEMBERS = [750000000000000100 + n for n in range(4)]


class CountingSender:
    """Discord's half, counting every send; each send yields, as a real HTTP call does."""

    def __init__(self, sends: Counter[tuple[int, str]], outcome: DmOutcome = DmOutcome.SENT) -> None:
        self.sends = sends
        self.outcome = outcome
        self.started = asyncio.Event()
        self.release: asyncio.Event | None = None

    def guild_name(self, guild_id: int) -> str:
        return f"Server {guild_id}"

    async def send(self, user_id: int, text: str, nonce: str) -> tuple[DmOutcome, str]:
        self.sends[(user_id, nonce)] += 1
        self.started.set()
        if self.release is not None:
            await self.release.wait()
        await asyncio.sleep(0)
        return self.outcome, "ok"

    async def find_sent(self, user_id: int, text: str, since: datetime) -> bool | None:
        return False


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(tmp_path / "dms.sqlite3")
    yield opened
    await opened.close()


async def outbox(store: Store, clock: Clock, claimer: Claimer) -> PatronDms:
    campaigns = registry(store)
    await campaigns.load()
    participation = Participation(store, lambda: [*SHARD0, *SHARD1], (), campaigns)

    async def campaign_key(_guild_id: int) -> str | None:
        return CAMPAIGN

    async def member_guilds(_user_id: int) -> list[int]:
        return []

    return PatronDms(
        store, clock, participation, campaign_key, lambda g, r: str(r), member_guilds,
        pace_seconds=0, claimer=claimer,
    )


async def seed(store: Store, guilds: list[int]) -> None:
    campaigns = registry(store)
    await campaigns.load()
    await campaigns.add(CAMPAIGN, pair(), "secret")
    for guild_id in guilds:
        await store.save_settings(GuildSettings(guild_id=guild_id, enabled=True, dm_welcome=True))
        await store.bind_guild(guild_id, CAMPAIGN, None)
        for user_id in MEMBERS:
            await store.queue_dm(guild_id, user_id, "welcome", f"link:{guild_id}", {"roles": []}, T0)


async def test_two_processes_draining_the_outbox_at_once_send_each_dm_once(store):
    await seed(store, [SHARD0[0], SHARD0[1]])
    clock, sends = Clock(), Counter[tuple[int, str]]()
    first = await outbox(store, clock, Claimer(owner="a:1:aa"))
    second = await outbox(store, clock, Claimer(owner="b:2:bb"))
    counts = await asyncio.gather(first.drain(CountingSender(sends)), second.drain(CountingSender(sends)))
    assert sum(counts) == 8, counts
    assert {key: n for key, n in sends.items() if n > 1} == {}, "a DM sent twice"
    assert len(sends) == 8
    assert {state for *_rest, state in await store.dm_states()} == {DM_SENT}


async def test_each_shards_process_sends_only_its_own_servers_dms(store):
    """The DM shows the server's name and roles, which only the process holding that server has in its cache."""
    await seed(store, [SHARD0[0], SHARD1[0]])
    clock = Clock()
    sent_by: dict[str, Counter[tuple[int, str]]] = {"zero": Counter(), "one": Counter()}
    zero = await outbox(store, clock, Claimer(owner="a:1:aa", shards=ShardSpec(2, (0,))))
    one = await outbox(store, clock, Claimer(owner="b:2:bb", shards=ShardSpec(2, (1,))))
    assert await zero.drain(CountingSender(sent_by["zero"])) == 4
    assert {state for guild, *_rest, state in await store.dm_states() if guild == SHARD1[0]} == {DM_PENDING}
    assert await one.drain(CountingSender(sent_by["one"])) == 4
    assert not set(sent_by["zero"]) & set(sent_by["one"])
    assert {state for *_rest, state in await store.dm_states()} == {DM_SENT}


async def test_a_process_stalled_mid_send_past_its_lease_does_not_overwrite_its_successors_outcome(store):
    """A stalls inside Discord's call until its lease ran out; B takes the row (its stamp says a send may have
    gone, so B goes by the nonce) and finishes it; A's late outcome is refused, and the DM is done once."""
    await seed(store, [SHARD0[0]])
    for user_id in MEMBERS[1:]:
        await store.finish_dm(
            next(dm.id for dm in await store.due_dms(T0) if dm.discord_user_id == user_id), DM_SENT, T0
        )
    clock, sends = Clock(), Counter[tuple[int, str]]()
    lease = timedelta(seconds=30)
    stalled = CountingSender(sends, outcome=DmOutcome.RETRY)  # A would have put it back for a retry
    stalled.release = asyncio.Event()
    first = await outbox(store, clock, Claimer(owner="a:1:aa", lease=lease))
    second = await outbox(store, clock, Claimer(owner="b:2:bb", lease=lease))
    running = asyncio.create_task(first.drain(stalled))
    await asyncio.wait_for(stalled.started.wait(), 10)
    assert await second.drain(CountingSender(sends)) == 0, "A's claim holds while its lease runs"
    clock.now = T0 + lease + timedelta(seconds=1)  # A's renewals (every 10 s of loop time) never came
    assert await second.drain(CountingSender(sends)) == 1
    stalled.release.set()
    assert await running == 0
    [(_guild, _user, _kind, state)] = [row for row in await store.dm_states() if row[1] == MEMBERS[0]]
    assert state == DM_SENT, "B's outcome stands, not A's retry"
    assert list(sends.values()) == [2], "the same row's nonce twice: Discord makes one message of it"
