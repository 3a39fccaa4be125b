"""The ids every world seeds (a server, its roles, four people, two tiers), so tests read as prose.

Split from fakes/world.py, which seeds them; the world's module re-exports `SEED` and `PATREON_IDS`, as the tests
import them from there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Seed:
    """Ids of everything the world seeds, so tests read as prose."""

    guild_id: int = 710000000000000001
    owner_id: int = 720000000000000001
    gold_role: int = 730000000000000001
    bronze_role: int = 730000000000000002
    vip_role: int = 730000000000000003  # hand-given by a moderator, never ours to touch
    above_bot_role: int = 730000000000000004
    managed_role: int = 730000000000000005
    log_channel: int = 740000000000000001
    alice: int = 750000000000000001  # Gold patron
    bob: int = 750000000000000002  # Bronze patron
    carol: int = 750000000000000003  # former patron
    dave: int = 750000000000000004  # free member
    gold_tier: str = "2001"
    bronze_tier: str = "2002"


SEED = Seed()
PATREON_IDS = {SEED.alice: "p-alice", SEED.bob: "p-bob", SEED.carol: "p-carol", SEED.dave: "p-dave"}
