"""The start-up line about ALLOWED_GUILD_IDS tells the truth once the `.env` campaign was connected through OAuth.

After the creator connected his server to the `.env` campaign (the env-campaign-connected fact, commit ff391a3), the
one-server rule no longer admits an unbound server: Eve's never-connected server follows nothing until she connects
a campaign there or the owner lists it in ALLOWED_GUILD_IDS. The bot still said "ALLOWED_GUILD_IDS is not needed: 1
server(s) not bound", which read as if that server acted for the `.env` campaign.
"""

from __future__ import annotations

import logging

import pytest

from bot.sync.participation import NO_CAMPAIGN
from tests.e2e.polling import wait_for
from tests.e2e.test_env_campaign_connected import env_connected  # noqa: F401 (fixture)
from tests.e2e.test_ownership_warning import CLIENT_LOG, lines, warned
from tests.e2e.test_trust_servers import OTHER


async def test_after_the_env_campaign_is_connected_the_unbound_server_is_said_to_follow_none(
    env_connected, caplog: pytest.LogCaptureFixture  # noqa: F811
):
    world = env_connected
    await world.stop_bot()
    caplog.clear()
    caplog.set_level(logging.INFO, logger=CLIENT_LOG)
    await world.start_bot()
    await wait_for(lambda: any("ALLOWED_GUILD_IDS" in line for line in lines(caplog, "INFO")) or warned(caplog))
    said = lines(caplog, "INFO")
    assert not any("ALLOWED_GUILD_IDS is not needed" in line for line in said), said
    assert any("1 server(s) not bound to a campaign follow none" in line for line in said), said
    assert await world.bot.services.admin.participation.ownership_refusal(OTHER) == NO_CAMPAIGN  # what it says
