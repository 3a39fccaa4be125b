"""The Linked Roles home's choice on a process that holds only some of the install's servers (review 6, R6-4).

Why not the sharded world: tests/shards runs whole bot processes, and an in-process FakeWorld bot doesn't shard its
gateway (it holds every server whatever SHARD_IDS says), so neither gives a process that takes the callback without
holding the patron's server in a Linked Roles test here. This is the choice itself, over what the process sees:
this process holds only Eve's server (campaign B); the store binds the creator's server A1 (campaign A) too.
"""

from __future__ import annotations

from types import SimpleNamespace

from bot.accounts.link_home import LinkHomes
from bot.domain.models import Identity, PatreonUser, PatronStatus

A1, EVES, FAY = 11 << 22, 10 << 22, 901


class Campaign:
    def __init__(self, key: str) -> None:
        self.key = key

    async def storage_key(self) -> str:
        return self.key

    async def campaign_id(self) -> str:
        return self.key


A, B = Campaign("A"), Campaign("B")


class Reconcile:
    """What this process sees: only Eve's server, where Fay is a member."""

    async def acting_guild_ids(self) -> list[int]:
        return [EVES]

    async def member_guilds(self, user_id: int) -> list[int]:
        return [EVES]

    async def plan_member(self, guild_id: int, user_id: int, *, explain: bool = True) -> object:
        return object()

    async def campaign_for(self, guild_id: int, fallback: object = None) -> Campaign:
        return A if guild_id == A1 else B


class Store:
    """The shared database: both servers bound; Fay's membership of A stored by the creator's side."""

    async def guild_bindings(self) -> dict[int, str]:
        return {A1: "A", EVES: "B"}

    async def get_membership(self, patreon_user_id: str, campaign_key: str) -> object | None:
        return SimpleNamespace(patron_status=PatronStatus.ACTIVE) if campaign_key == "A" else None


class Participation:
    async def refusal(self, guild_id: int) -> str | None:
        return None


class Members:
    """Discord over REST: Fay is in A1 (shard 1), and asked about only there."""

    def __init__(self, answer: bool | None = True) -> None:
        self.answer = answer
        self.asked: list[tuple[int, int]] = []

    async def is_member(self, guild_id: int, user_id: int) -> bool | None:
        self.asked.append((guild_id, user_id))
        return self.answer if guild_id == A1 else False


def homes(members: Members) -> LinkHomes:
    return LinkHomes(Reconcile(), Store(), Participation(), members)  # type: ignore[arg-type]


FAYS = Identity(PatreonUser("p-fay", "Fay"))


async def test_a_patron_of_a_is_linked_in_a_s_server_of_another_shard_not_in_eves_of_this_one() -> None:
    members = Members()
    choice = homes(members)
    servers = await choice.servers_with(FAY)
    assert servers == [EVES, A1], "the store's server counts though this process doesn't hold it"
    home = await choice.home_of(FAY, servers, FAYS, A)  # type: ignore[arg-type]
    assert home is not None and home.guild_id == A1
    assert members.asked == [(A1, FAY)]


async def test_two_campaigns_in_the_install_give_no_fallback_to_eves_server_when_discord_says_no_or_nothing() -> None:
    for answer in (False, None):
        home = await homes(Members(answer)).home_of(FAY, [EVES, A1], FAYS, A)  # type: ignore[arg-type]
        assert home is None, "Eve's campaign doesn't hold Fay, and the install serves two campaigns"
