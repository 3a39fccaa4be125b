"""An abandoned campaign picker forgets the creator's tokens (issue 10 leftovers, item 2).

A creator with several campaigns gets a picker; their token pair waits in the store (`connect-pending:…`) until
they pick. An admin who never finishes left those creator tokens there for good. Now the pair lives no longer than
its attempt (15 minutes): the sweeper forgets it at start-up and every 5 minutes, and the next connect button too.
The bot's clock is the world's, moved by the tests.
"""

from datetime import UTC, datetime

from bot.store import Store
from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.connect_world import browser, connect_button, no_env_world, picker
from tests.e2e.polling import wait_for

FAR = datetime(2100, 1, 1, tzinfo=UTC)


async def pending_pairs(store: Store) -> list[str]:
    return [subject for subject, _ in await store.tokens_expiring("connect-pending:", FAR)]


async def none_pending(world: FakeWorld) -> bool:
    return await pending_pairs(world.bot.services.store) == []


async def open_picker(world: FakeWorld) -> tuple[str, dict[str, str]]:
    """The owner's connect, approved by Eve, who has two campaigns: the picker, left open."""
    world.patreon.add_campaign("9100002", "p-eve")
    _, url = await connect_button(world, SEED.owner_id)
    world.patreon.approve_next_as("p-eve")
    status, html = await browser(world, "creator").open(url)
    assert status == 200
    action, fields, _ = picker(html)
    assert len(await pending_pairs(world.bot.services.store)) == 1, "the creator's pair waits for the pick"
    return action, fields


async def test_the_sweeper_forgets_an_abandoned_pickers_creator_tokens_once_its_attempt_ended(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        action, fields = await open_picker(world)
        flow = world.bot.services.connect_flow
        world.clock.advance(minutes=14)
        assert await flow.forget_abandoned() == 0, "a picker still open keeps its pair"
        assert len(await pending_pairs(world.bot.services.store)) == 1

        world.clock.advance(minutes=6)  # past the attempt's 15 minutes, and the sweeper's 5 since start-up
        flow.sweeper.wake()
        await wait_for(lambda: none_pending(world))
        form = {**fields, "campaign": "9100002"}
        status, html = await browser(world, "creator").post_form(world.bot_url + action, form)
        assert status == 400 and "expired" in page_text(html)
        assert await world.bot.services.store.guild_binding(SEED.guild_id) is None
    finally:
        await world.close()


async def test_a_restart_and_the_next_connect_forget_abandoned_pickers(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        await open_picker(world)
        await world.stop_bot()
        world.clock.advance(minutes=16)
        await world.start_bot()
        await wait_for(lambda: none_pending(world))  # the start-up sweep

        _, url = await connect_button(world, SEED.owner_id)
        world.patreon.approve_next_as("p-eve")
        status, html = await browser(world, "creator").open(url)
        assert status == 200 and picker(html)  # a second picker, abandoned; then the next connect button
        world.clock.advance(minutes=16)
        _, url = await connect_button(world, SEED.owner_id)
        assert url and await pending_pairs(world.bot.services.store) == []
    finally:
        await world.close()

