"""A patron of a connected campaign (not the OAuth client owner's): Patreon's /identity shows that membership only
with `identity.memberships` (docs/patreon-api.md, "Creators and campaigns"), so a link asks for it, and a token
without it never makes the bot forget a membership it can't see."""

from __future__ import annotations

from bot.domain.models import TokenPair
from bot.store import patron_subject
from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.connect_world import B_ROLE, B_TIER, BEN, CAMPAIGN_B, EVE, OTHER, connect, link_in, no_env_world
from tests.e2e.test_admin import admin
from tests.e2e.test_campaign_two_servers import roles_in
from tests.e2e.test_self_refresh import patron_command


async def _eve_connected(tmp_path) -> FakeWorld:
    """Eve's server follows her connected campaign B, tier mapped, and the connect's listing stored Ben."""
    world = await no_env_world(tmp_path)
    status, html = await connect(world, EVE, "eve", "p-eve", OTHER)
    assert status == 200, page_text(html)
    assert "✅" in await admin(world, ["map"], {"tier": B_TIER, "role": B_ROLE}, EVE, OTHER)
    await world.refresh()
    stored = await world.store.get_membership("p-ben", CAMPAIGN_B)
    assert stored is not None and stored.member_id is not None, "the creator's listing has Ben"
    return world


async def test_a_patron_of_a_connected_campaign_gets_its_role_on_linking_and_keeps_it_on_refresh(tmp_path):
    world = await _eve_connected(tmp_path)
    try:
        status, html = await link_in(world, OTHER, BEN, "ben", "p-ben")
        assert status == 200, page_text(html)
        assert B_ROLE in roles_in(world, OTHER, BEN), "the role comes with the link, no refresh needed"
        assert await world.store.get_membership("p-ben", CAMPAIGN_B) is not None

        _, text = await patron_command(world, BEN, ["refresh"], OTHER)
        assert B_ROLE in roles_in(world, OTHER, BEN), text
        assert await world.store.get_membership("p-ben", CAMPAIGN_B) is not None
    finally:
        await world.close()


async def test_a_token_without_identity_memberships_never_forgets_a_stored_membership(tmp_path):
    world = await _eve_connected(tmp_path)
    try:
        status, html = await link_in(world, OTHER, BEN, "ben", "p-ben")
        assert status == 200, page_text(html)
        assert B_ROLE in roles_in(world, OTHER, BEN)
        # Ben's stored pair is replaced by one granted `identity` only (an older link's, before the bot asked for more)
        narrow = world.patreon.issue_tokens("p-ben", ("identity",))
        expires = (await world.store.get_tokens(patron_subject("p-ben"))).expires_at
        await world.store.save_tokens(
            patron_subject("p-ben"), TokenPair(narrow.access_token, narrow.refresh_token, expires, ("identity",))
        )
        members_reads = world.patreon.count("/api/oauth2/v2/members/")

        _, text = await patron_command(world, BEN, ["refresh"], OTHER)
        assert await world.store.get_membership("p-ben", CAMPAIGN_B) is not None, text
        assert B_ROLE in roles_in(world, OTHER, BEN), text
        assert world.patreon.count("/api/oauth2/v2/members/") > members_reads, "the creator's read answered"
        assert SEED.gold_role not in world.roles_of(BEN)
    finally:
        await world.close()
