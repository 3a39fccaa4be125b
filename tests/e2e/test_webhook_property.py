"""Property: whatever webhooks arrive (duplicated, reordered, dropped), after one refresh every member holds
exactly the roles the policy gives for what Patreon says now, and hand-given roles are untouched.

One started world is shared by all examples (hypothesis reuses the fixture), so the examples stay fast.
"""

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.policy import decide_roles
from bot.sync.member_plan import plan_member_roles
from fakes.patreon.rate_limit import ClientRateLimit
from fakes.world import PATREON_IDS, SEED

MEMBERS = (SEED.alice, SEED.bob, SEED.carol, SEED.dave)
HAND_GIVEN = {SEED.alice: {SEED.vip_role}}
STATES = ("gold", "bronze", "both", "free", "former", "declined_long_ago", "gone")
TRIGGERS = {
    "gold": "members:pledge:create",
    "bronze": "members:pledge:update",
    "both": "members:pledge:update",
    "free": "members:create",
    "former": "members:pledge:delete",
    "declined_long_ago": "members:update",
    "gone": "members:delete",
}


def shared_world_property(max_examples: int) -> settings:
    """Hypothesis settings for properties that reuse one started world across examples."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


#: How long an example may take to settle: the fakes keep Discord's member-role bucket (10 calls per 10 s) and
#: Patreon's client window on, so an example whose changes queue more than a window's worth waits for it; the
#: properties are about what the roles converge to, not how fast (under load one took more than 10 s).
SETTLE = 60.0

#: A short history of Patreon changes: which member moves to which state, in order.
STEPS = st.lists(st.tuples(st.sampled_from(MEMBERS), st.sampled_from(STATES)), min_size=1, max_size=6)


async def link_everyone(world) -> None:
    # Relaxed on purpose: every example of one shared world looks members up with the one creator token, and at
    # Patreon's 100 a minute per token (on by default in the fake and the bot's budget) the examples would wait
    # minutes for its window. These properties are about convergence; the token's limit has its own tests
    # (tests/e2e/test_webhook_flood.py, tests/integration/test_fake_patreon_token_limit.py).
    if world.patreon.rate_limit is not None and world.patreon.rate_limit.per_token is not None:
        world.patreon.rate_limit = ClientRateLimit(per_token=None)
        world.bot.services.patreon.budget.token_limit = None
    for discord_id in MEMBERS:
        if await world.store.get_link_by_discord(discord_id) is None:
            await world.store.save_link(discord_id, PATREON_IDS[discord_id], SEED.guild_id, "admin")


def apply_state(world, patreon_id: str, state: str) -> None:
    """Change the member at fake Patreon; every state here is one the policy doesn't hold roles for."""
    fake = world.patreon
    long_ago = datetime.now(UTC) - timedelta(days=40)
    if state == "gone":
        fake.remove_membership(patreon_id)
    elif state == "free":
        fake.set_membership(patreon_id, None, tier_ids=[])
    elif state == "former":
        fake.set_membership(patreon_id, "former_patron", tier_ids=[])
    elif state == "declined_long_ago":
        fake.set_membership(patreon_id, "declined_patron", tier_ids=[SEED.gold_tier], last_charge_date=long_ago)
    else:
        tiers = {"gold": [SEED.gold_tier], "bronze": [SEED.bronze_tier], "both": [SEED.gold_tier, SEED.bronze_tier]}
        fake.set_membership(patreon_id, "active_patron", tier_ids=tiers[state])


async def expected_roles(world, discord_id: int) -> set[int]:
    """What the policy gives for Patreon's truth right now, plus the roles someone else gave."""
    services = world.bot.services
    store = services.store
    member = world.patreon.campaign.live_member_for(PATREON_IDS[discord_id])
    truth = None
    if member is not None:
        token = await services.campaign.creator_access_token()
        truth = await services.patreon.get_member(token, member.id)
    settings_ = await store.get_settings(SEED.guild_id)
    tier_roles = await store.get_tier_roles(SEED.guild_id)
    decision = decide_roles(truth, settings_, tier_roles, await store.get_tiers(), world.clock())
    assert not decision.hold, f"state chosen for the property must not hold roles: {decision.summary}"
    actual = frozenset(world.roles_of(discord_id))
    granted = await store.granted_roles(SEED.guild_id, discord_id)
    _, plan = plan_member_roles(
        truth, settings_, tier_roles, await store.get_tiers(), world.clock(), actual, granted, lambda roles: {}
    )
    assert plan.is_empty, f"<@{discord_id}> still needs {plan}"
    return set(decision.desired) | HAND_GIVEN.get(discord_id, set())


@shared_world_property(max_examples=25)
@given(data=st.data())
async def test_any_webhook_history_then_one_refresh_gives_exactly_the_policy_roles(world, data):
    await link_everyone(world)
    steps = data.draw(STEPS, label="steps")
    deliveries: list[tuple[str, bytes]] = []
    for discord_id, state in steps:
        patreon_id = PATREON_IDS[discord_id]
        apply_state(world, patreon_id, state)
        deliveries.append((TRIGGERS[state], world.patreon.render_member_webhook_body(TRIGGERS[state], patreon_id)))
    schedule = data.draw(
        st.lists(st.tuples(st.integers(0, len(deliveries) - 1), st.booleans()), max_size=10), label="schedule"
    )
    for index, settle_after in schedule:  # any order, any repeats; unlisted deliveries are dropped
        trigger, body = deliveries[index]
        status, _ = await world.patreon.send_webhook(trigger, None, body_override=body)
        assert 200 <= status < 300
        if settle_after:
            await world.settle(SETTLE)
    report = await world.refresh("property")
    assert report.ok, report.detail
    await world.settle(SETTLE)
    for discord_id in MEMBERS:
        assert world.roles_of(discord_id) == await expected_roles(world, discord_id), steps


@shared_world_property(max_examples=20)
@given(data=st.data())
async def test_webhooks_alone_converge_when_each_member_gets_a_delivery_after_its_last_change(world, data):
    """No refresh: duplicated and reordered deliveries of old states can't win over a later one, because the bot
    re-reads the member from Patreon; so one delivery after each member's last change is enough."""
    await link_everyone(world)
    steps = data.draw(STEPS, label="steps")
    stale: list[tuple[str, bytes]] = []
    for discord_id, state in steps:
        apply_state(world, PATREON_IDS[discord_id], state)
        trigger = TRIGGERS[state]
        stale.append((trigger, world.patreon.render_member_webhook_body(trigger, PATREON_IDS[discord_id])))
    last_state = {discord_id: state for discord_id, state in steps}
    final = [
        (TRIGGERS[state], world.patreon.render_member_webhook_body(TRIGGERS[state], PATREON_IDS[discord_id]))
        for discord_id, state in last_state.items()
    ]
    replays = data.draw(st.lists(st.sampled_from(stale), max_size=6), label="replays of old deliveries")
    order = data.draw(st.permutations(final + replays), label="delivery order")
    for trigger, body in [*order, *final]:  # old states replayed in any order, then one current delivery each
        status, _ = await world.patreon.send_webhook(trigger, None, body_override=body)
        assert 200 <= status < 300
    await world.settle(SETTLE)
    for discord_id in last_state:
        assert world.roles_of(discord_id) == await expected_roles(world, discord_id), steps
