"""The role calls' global bucket leaves room under Discord's 50 requests/s for the bot's other calls.

A full burst plus a second's rate once reached exactly 50, so one log line or DM in the same second drew a global
429 (seen in tests/e2e/test_rate_limits.py under load).
"""

from __future__ import annotations

import asyncio

from bot.sync.role_pacing import TokenBucket

DISCORD_GLOBAL_PER_SECOND = 50
ROOM_FOR_OTHER_CALLS = 5


def test_role_calls_leave_five_of_discords_fifty_per_second_to_other_calls() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def count_in_first_second() -> int:
        bucket = TokenBucket(monotonic=lambda: now[0], sleep=sleep)
        taken = 0
        while True:
            await bucket.acquire()
            if now[0] >= 1.0:
                return taken
            taken += 1

    taken = asyncio.run(count_in_first_second())
    assert 0 < taken <= DISCORD_GLOBAL_PER_SECOND - ROOM_FOR_OTHER_CALLS
