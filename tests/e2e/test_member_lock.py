"""One member is reconciled by one caller at a time: the race the reconcile engine's per-member lock prevents.

The role queue never runs two jobs for one member, but a sign-in (OAuth callback), a join, an admin's sync or
link-user reconcile a member directly, while a webhook's job may be changing that member's roles. Discord is made
slow for the job's call, so the second reconcile arrives while the first is still in Discord's hands.
"""

from datetime import UTC, datetime, timedelta

from fakes.world import SEED
from tests.e2e.polling import wait_for

GOLD_OF_DAVE = rf"/guilds/{SEED.guild_id}/members/{SEED.dave}/roles/{SEED.gold_role}$"


async def dave_with_gold(world) -> None:
    """Dave linked, then pledged Gold; the bot gave him the role (and recorded the grant)."""
    await world.link(SEED.dave)
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.gold_tier])
    await world.send_webhook("members:pledge:create", "p-dave")
    await wait_for(lambda: world.roles_of(SEED.dave) == {SEED.gold_role})
    await world.settle()
    assert await world.store.granted_roles(SEED.guild_id, SEED.dave) == frozenset({SEED.gold_role})


async def test_a_sign_in_while_a_webhook_takes_a_role_back_does_not_take_it_twice(world):
    await dave_with_gold(world)
    world.patreon.set_membership(
        "p-dave",
        "former_patron",
        tier_ids=[],
        last_charge_status="Paid",
        last_charge_date=datetime.now(UTC) - timedelta(days=90),  # the last paid month is long over
    )
    world.patreon.next_authorizing_user = "p-dave"
    button = await world.run_link_command(SEED.dave)  # Dave asks for a fresh sign-in button
    # Discord takes its time over the webhook job's removal; the job holds the member until Discord answers.
    slow = world.discord.hold_next("DELETE", GOLD_OF_DAVE, seconds=1.0)
    await world.send_webhook("members:pledge:delete", "p-dave")
    await wait_for(lambda: slow.held == 1)

    status, _ = await world.open_in_browser(button)  # meanwhile Dave signs in again: the link reconciles him too
    await world.settle()

    assert status == 200
    assert world.roles_of(SEED.dave) == set()
    removals = world.discord.calls_matching("DELETE", GOLD_OF_DAVE)
    assert len(removals) == 1, "the sign-in planned while the job's removal was in flight and sent it again"
    assert "webhook members:pledge:delete" in (removals[0].reason or "")
    assert await world.store.granted_roles(SEED.guild_id, SEED.dave) == frozenset()
    assert await world.store.pending_role_jobs() == [] and await world.store.failed_role_jobs() == []
