"""A replaced link by hand on a real SQLite file: a log channel that can't be reached stops neither step.

bot/sync/replaced_hand_link.py runs after the new link is stored (an admin's confirmed `link-user`, auto-match, the
patron's sign-in), so whoever held the old link must lose what it gave even when posting to the old server's log
channel fails outright (a connection reset, not a Discord refusal, which the adapter logs and swallows), and that
failure must not escape into the link that was already made.
"""

from datetime import UTC, datetime

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, PatronStatus
from bot.store import Store
from bot.store.links import ADMIN_SOURCE
from bot.sync.reconcile import ReconcileService
from bot.sync.replaced_hand_link import settle_replaced_hand_link
from fakes.memory_gateway import MemoryGateway

GUILD, ROLE, LOG = 1, 11, 21
SOCK, PATRON = 101, 102
LINE = "it replaced the link by hand of the sock made in this server."


class UnreachableLogChannel(MemoryGateway):
    """Discord's connection drops on every post to the log channel (discord.py raises, the adapter re-raises)."""

    def __init__(self) -> None:
        super().__init__()
        self.tried: list[str] = []

    async def post_log(self, channel_id: int, text: str) -> None:
        self.tried.append(text)
        raise ConnectionResetError("Connection reset by peer")


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(tmp_path / "bot.sqlite3")
    yield opened
    await opened.close()


async def test_an_unreachable_log_channel_neither_keeps_the_old_holders_roles_nor_breaks_the_link(store):
    gateway = UnreachableLogChannel()
    gateway.add_guild(GUILD).members[SOCK] = {ROLE}
    await store.save_settings(GuildSettings(guild_id=GUILD, enabled=True, log_channel_id=LOG))
    await store.save_membership(MembershipSnapshot("m-1", "c-1", "p-1", patron_status=PatronStatus.ACTIVE))
    await store.save_link(SOCK, "p-1", GUILD, ADMIN_SOURCE)
    await store.record_grants(GUILD, SOCK, [ROLE], "linked by an admin")
    old = await store.save_link(PATRON, "p-1", GUILD, "oauth")  # the patron's own sign-in, stored first
    assert old is not None and old.by_hand
    reconcile = ReconcileService(store, gateway, lambda: datetime.now(UTC), limiter=None, channel_log=None)

    await settle_replaced_hand_link(store, reconcile, old, (PATRON, "p-1"), "patron sign-in", LINE)

    assert gateway.guilds[GUILD].members[SOCK] == set(), "the sock loses what the replaced link gave"
    assert await store.granted_roles(GUILD, SOCK) == frozenset()
    assert LINE in gateway.tried, "the old server's line was still tried after the roles' own line failed"
    link = await store.get_link_by_patreon("p-1")
    assert link is not None and link.discord_user_id == PATRON
