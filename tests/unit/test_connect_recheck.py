"""The connect callback's second look at the admin (review 5, R5-12) decides nothing it can't check: no Discord
in the process, or Discord not answering, refuses; only a member who still manages the server reaches the rank
rule, with the rank Discord reports now. Only Discord's own answer ends the attempt: a Discord that didn't answer
says "try again" (review 6, R6-2)."""

from __future__ import annotations

from bot.accounts.connect_refusal import ConnectRefusal
from bot.guild_admin.connect_recheck import (
    GONE,
    NOT_IN_SERVER,
    NOT_MANAGER,
    UNKNOWN,
    AdminLookupFailed,
    AdminStanding,
    BotNotInServer,
    ConnectRecheck,
)
from bot.guild_admin.rank import InvokerRank

RANK = InvokerRank(user_id=7, owner=False, roles_below=frozenset({1}), top_role_name="@Head")


class Lookup:
    def __init__(self, answer: AdminStanding | Exception | None) -> None:
        self.answer = answer

    async def standing(self, guild_id: int, user_id: int) -> AdminStanding | None:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Connections:
    """The rank rule, as CampaignConnections.connect_refusal answers it: records whom it was asked about."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, InvokerRank]] = []

    async def connect_refusal(self, guild_id: int, invoker: InvokerRank) -> str | None:
        self.asked.append((guild_id, invoker))
        return "You can't change who gets @Gold."


async def test_what_cannot_be_checked_is_refused_and_the_rank_rule_is_asked_last():
    for lookup, expected in (
        (None, ConnectRefusal(UNKNOWN)),
        (Lookup(AdminLookupFailed("503 upstream")), ConnectRefusal(UNKNOWN, retry=True)),
        (Lookup(BotNotInServer("404 Unknown Guild")), ConnectRefusal(NOT_IN_SERVER)),
        (Lookup(None), ConnectRefusal(GONE)),
        (Lookup(AdminStanding(RANK, manages_server=False)), ConnectRefusal(NOT_MANAGER)),
    ):
        connections = Connections()
        assert await ConnectRecheck(lookup, connections).refusal(5, 7) == expected
        assert connections.asked == []
    connections = Connections()
    refusal = await ConnectRecheck(Lookup(AdminStanding(RANK, manages_server=True)), connections).refusal(5, 7)
    assert refusal == ConnectRefusal("You can't change who gets @Gold.") and connections.asked == [(5, RANK)]
