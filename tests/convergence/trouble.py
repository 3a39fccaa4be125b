"""The machine's rules for trouble: Discord failing or rate limiting role calls, its gateway running late, and the
bot killed with SIGKILL while role jobs wait. A mixin of `ConvergenceMachine` (tests/convergence/machine.py), whose
plumbing (`tick`, `run`, `learn`, the world `w`) these use."""

from __future__ import annotations

import asyncio

from hypothesis import strategies as st
from hypothesis.stateful import rule

from fakes.world import PATREON_IDS
from tests.convergence.pledges import CHANGES, PledgeChange, apply_change
from tests.convergence.process_world import HAND_ROLES, MEMBERS, NAMES

ROLE_CALL = r"^/guilds/\d+/members/\d+/roles/\d+$"
PATREON_API = r"^/api/oauth2/"
MEMBER = st.sampled_from(MEMBERS)


class TroubleRules:
    # -- trouble -------------------------------------------------------------------------------------------------

    @rule(kind=st.sampled_from([503, 429]), count=st.integers(1, 3))
    def discord_has_a_bad_moment(self, kind: int, count: int) -> None:
        """The next role calls fail (503) or are rate limited (429): at most 3 PUTs and 3 DELETEs, so no job meets as
        many failures as its 8 attempts."""
        self.tick()
        discord = self.w.fake.discord
        discord.clear_faults()
        for method in ("PUT", "DELETE"):
            if kind == 503:
                discord.fail_next(method, ROLE_CALL, status=503, count=count)
            else:
                discord.inject_rate_limit(method, ROLE_CALL, count=count, retry_after=0.2)
        self.discord_trouble = True

    @rule(
        changes=st.lists(st.tuples(MEMBER, CHANGES), min_size=1, max_size=4, unique_by=lambda pair: pair[0]),
        failures=st.integers(1, 3),
        patreon_dies_too=st.booleans(),
    )
    def bot_is_killed_mid_queue(
        self, changes: list[tuple[int, PledgeChange]], failures: int, patreon_dies_too: bool
    ) -> None:
        """Pledges change and their webhooks are applied, but Discord fails the first role calls, so the jobs
        wait out a back-off; then the bot gets SIGKILL and a new one starts on the same database (with Patreon
        down too, perhaps, so that only the surviving queue can finish the work, not the start-up refresh)."""
        self.tick()
        discord = self.w.fake.discord
        discord.clear_faults()
        for method in ("PUT", "DELETE"):
            discord.fail_next(method, ROLE_CALL, status=503, count=failures)
        self.discord_trouble = True
        for member, change in changes:
            apply_change(self.w.fake.patreon, PATREON_IDS[member], change, self.now())
            self.say(f"{NAMES[member]}: {change}, then the bot is killed")
        self.run(self._kill_mid_queue([member for member, _ in changes], patreon_dies_too))

    async def _kill_mid_queue(self, members: list[int], patreon_dies_too: bool) -> None:
        """What the oracle learns follows what the bot did, asked of the bot after the restart: with Patreon up,
        the start-up refresh saw everyone; with it down, the events applied before the kill were seen then (nothing
        changed since), and the ones still pending wait for the outage's end, as any event recorded during one."""
        fake = self.w.fake
        sent: list[str] = []
        for member in members:
            patreon_id = PATREON_IDS[member]
            if fake.patreon.campaign.member_by_user.get(patreon_id) is None:
                continue
            body = fake.patreon.render_member_webhook_body("members:pledge:update", patreon_id)
            status, _ = await fake.patreon.send_webhook("members:pledge:update", None, body_override=body)
            assert 200 <= status < 300
            sent.append(patreon_id)
        if not self.patreon_down:
            await self._events_applied()  # their jobs may still wait out Discord's 503s: that is the point
        self.say(f"killed with {await self.w.queue()}")
        if patreon_dies_too and not self.patreon_down:
            self._begin_outage(2)
        await self.w.restart()
        await self._drain()
        if not self.patreon_down:
            self.startup_refresh_saw_everyone()
            self.learn_everything()
            return
        pending = await self.w.pending_event_users()
        for patreon_id in sent:
            if patreon_id in pending:
                self.waiting.add(patreon_id)
            else:
                self.learn(patreon_id)

    async def _events_applied(self, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        polls = 0
        while (queued := await self.w.queue())["pending_events"]:
            polls += 1
            if loop.time() > deadline:
                raise AssertionError(f"webhook events not applied in {timeout:.0f} s: {queued}\n{self.w.log_tail()}")
            await asyncio.sleep(0.02)
        self.say(f"events applied after {polls} poll(s): {queued}")

    @rule(member=MEMBER, change=CHANGES, data=st.data())
    def gateway_lags_while_a_moderator_and_a_webhook_act(
        self, member: int, change: PledgeChange, data: st.DataObject
    ) -> None:
        """Discord's member events for one member are late (discord.py's cache shows old roles): a moderator
        changes a hand-given role, then the member's pledge changes and its webhook is applied. Whole-list
        writes from the stale cache would undo the moderator; per-role PUT/DELETE can't."""
        self.tick()
        fake = self.w.fake
        fake.hold_member_updates(member)
        try:
            roles = self.model.member(member)
            role = data.draw(st.sampled_from(HAND_ROLES), label="hand-given role")
            if role in roles.hand:
                fake.guild.member(member).role_ids.discard(role)
                self.model.hand_remove(member, role)
            elif role not in roles.expected:
                fake.guild.member(member).role_ids.add(role)
                self.model.hand_add(member, role)
            patreon_id = PATREON_IDS[member]
            apply_change(fake.patreon, patreon_id, change, self.now())
            self.say(f"{NAMES[member]} (gateway late): moderator toggles {role}; {change}, webhook now")
            body = fake.patreon.render_member_webhook_body("members:pledge:update", patreon_id)
            self.run(self._deliver(patreon_id, "members:pledge:update", body))
        finally:
            fake.release_member_updates()
        self.run(self.w.bot_has_seen_roles(member))  # the late events have reached the bot's cache
