"""A bot with no campaign connected (no `.env` creator tokens, no webhook secret) starts and answers (issue 10,
item 3): every command says to connect a campaign, no webhook is accepted, and nothing changes anywhere."""

import json

from bot.web.webhook_receiver import sign
from fakes.world import SEED, WEBHOOK_SECRET, FakeWorld
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_servers import first_line

NO_CAMPAIGN_START = "⚠️ This server doesn't follow a Patreon campaign yet"


async def test_without_creator_tokens_the_bot_starts_and_says_to_connect_a_campaign(tmp_path):
    world = FakeWorld(tmp_path / "bot.sqlite3")
    world.extra_environment.update(
        {"PATREON_CREATOR_ACCESS_TOKEN": "", "PATREON_CREATOR_REFRESH_TOKEN": "", "PATREON_WEBHOOK_SECRET": ""}
    )
    await world.start()
    try:
        services = world.bot.services
        assert services.campaigns.services() == []
        assert (await services.refresh.run("scheduled")).ok, "a refresh of no campaign is a quiet no-op"
        check = await admin(world, ["check"])
        assert first_line(check).startswith(NO_CAMPAIGN_START) and "/patreon-admin connect" in check
        tiers = await admin(world, ["tiers"])
        assert "/patreon-admin connect" in tiers
        link = await world.discord.invoke_slash(SEED.guild_id, SEED.alice, "patreon", ["link"])
        await link.wait_response(timeout=5)
        assert link.link_buttons() == [], "no server follows a campaign, so no link starts"

        body = json.dumps({"data": {"type": "member", "id": "m-alice"}}).encode()
        assert world._session is not None
        url = f"http://127.0.0.1:{world.web_port}/patreon/webhook"
        headers = {"X-Patreon-Event": "members:update", "X-Patreon-Signature": sign(body, WEBHOOK_SECRET)}
        async with world._session.post(url, data=body, headers=headers) as response:
            assert response.status == 401
        async with world._session.post(url + "/" + world.patreon.campaign.id, data=body, headers=headers) as answer:
            assert answer.status == 401
        assert await world.store.webhook_event_counts() == {}
        assert world.role_calls(SEED.alice) == [], "no role was changed"
        assert not [path for _m, path, _q in world.patreon.calls if "/campaigns" in path or "/members" in path]
    finally:
        await world.close()
