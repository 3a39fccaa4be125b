"""The start-up warning that ALLOWED_GUILD_IDS is empty comes only when the `.env` campaign exists and the ownership
rule (bot/sync/participation.py) really leaves servers out: two or more servers not bound to a connected campaign.
Without a `.env` campaign, or with every other server bound, it was a false alarm telling the owner no server acts.
(The warning itself: tests/e2e/test_trust_servers.py, two unbound servers and the `.env` campaign.)"""

import logging

import pytest

from tests.e2e.connect_world import no_env_world
from tests.e2e.polling import wait_for
from tests.e2e.test_campaign_two_servers import two_campaigns  # noqa: F401

CLIENT_LOG = "bot.discord_io.client"


def lines(caplog: pytest.LogCaptureFixture, level: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CLIENT_LOG and r.levelname == level]


def warned(caplog: pytest.LogCaptureFixture) -> bool:
    return any("ALLOWED_GUILD_IDS is empty" in line for line in lines(caplog, "WARNING"))


async def test_no_env_campaign_no_warning(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=CLIENT_LOG)
    world = await no_env_world(tmp_path, start=False)
    try:
        await world.start_bot()
        assert len(world.bot.guilds) == 2
        await wait_for(lambda: warned(caplog) or any(x.startswith("no .env campaign") for x in lines(caplog, "INFO")))
        assert not warned(caplog)
    finally:
        await world.close()


async def test_env_campaign_and_every_other_server_bound_no_warning(two_campaigns, caplog):  # noqa: F811
    world = two_campaigns
    await world.stop_bot()
    caplog.clear()
    caplog.set_level(logging.INFO, logger=CLIENT_LOG)
    await world.start_bot()
    assert len(world.bot.guilds) == 2
    await wait_for(lambda: warned(caplog) or any("ALLOWED_GUILD_IDS is not needed" in x for x in lines(caplog, "INFO")))
    assert not warned(caplog)
