"""The convergence state machine: the real bot (a child process) and the fakes, driven by hypothesis.

Every rule is something that happens to a real deployment; after each one the queues are drained and every member
must hold exactly what the independent oracle (tests/convergence/oracle.py) says, hand-given roles included, with
nothing left queued that should have run. The oracle follows each moment the bot looks at a member (a webhook
applied, a refresh, a link, a start-up), because during a hold what a member keeps depends on what they held.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bot.web.webhook_receiver import MEMBER_TRIGGERS
from fakes.discord import RateLimits
from fakes.discord.interactions import InteractionRecord
from fakes.world import PATREON_IDS, SEED
from tests.convergence.oracle import Pledge, RoleModel, Server
from tests.convergence.pledges import (
    CHANGES,
    NEAR_BOUNDARY,
    PledgeChange,
    apply_change,
    cancelled_near_paid_through,
    catalogue,
    declined_near_grace_end,
    pledge_of,
)
from tests.convergence.process_world import (
    ARTIST_ROLE,
    FORMER_ROLE,
    FREE_ROLE,
    HAND_ROLES,
    LIFETIME_ROLE,
    MEMBERS,
    NAMES,
    TRIAL_ROLE,
    ProcessWorld,
    scaled_real_limits,
)
from tests.convergence.trouble import PATREON_API, TroubleRules

T = TypeVar("T")
MEMBER = st.sampled_from(MEMBERS)
#: An outage lasts at most this many rules: the bot gives an event up after 12 attempts (each rule can cost one),
#: and then only a refresh covers it, which the oracle doesn't follow.
MAX_OUTAGE_RULES = 4
CLOCK_STEPS = st.sampled_from([1, 5, 23, 24, 25, 71, 167, 168, 169, 24 * 30])


class ConvergenceMachine(TroubleRules, RuleBasedStateMachine):
    #: Discord's real limits with the member-role window scaled down to this many seconds (None: all real).
    role_window: float | None = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="convergence-"))
        self.world: ProcessWorld | None = None
        self.later: list[tuple[str, str, bytes]] = []  # (patreon id, trigger, body) captured for a late delivery
        self.linked = dict.fromkeys(MEMBERS, True)
        self.known: dict[str, Pledge | None] = {}
        self.waiting: set[str] = set()  # webhooks recorded while Patreon was down, not applied yet
        self.patreon_down = False
        self.outage_left = 0
        self.discord_trouble = False
        self.steps = 0
        self.rules_run: dict[str, int] = {}
        self.broken = False

    # -- plumbing --------------------------------------------------------------------------------------------

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            return self.loop.run_until_complete(coroutine)
        except BaseException:
            self.broken = True  # the example failed here: teardown asks nothing more of this world
            raise

    @staticmethod
    def _rule_name() -> str:
        return sys._getframe(2).f_code.co_name

    def teardown(self) -> None:
        try:
            if self.world is not None and self.world.process is not None and not self.broken:
                self.last_refresh()
        finally:
            self._close()

    def last_refresh(self) -> None:
        """Every example ends as the promise is worded: Patreon answering, one refresh, a drain, the check."""
        self.steps -= 1  # not a step of the example
        if self.patreon_down:
            self.run(self._end_outage())
        self.refresh()
        self.every_member_holds_exactly_the_oracles_roles()

    def _close(self) -> None:
        stats = os.environ.get("CONVERGENCE_STATS")
        if stats:  # the long run by hand counts its examples and steps here
            with open(stats, "a") as out:
                out.write(json.dumps({"steps": self.steps, "rules": self.rules_run}) + "\n")
        try:
            if self.world is not None:
                self.run(self.world.close())
        finally:
            self.loop.close()
            if not os.environ.get("CONVERGENCE_KEEP"):  # set it to keep each example's database and bot logs
                shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def w(self) -> ProcessWorld:
        assert self.world is not None
        return self.world

    def now(self) -> datetime:
        return self.w.clock()

    def truth(self, patreon_id: str) -> Pledge | None:
        return pledge_of(self.w.fake.patreon, patreon_id)

    def look_at(self, discord_id: int) -> None:
        """The bot reconciles this member from what it knows of their pledge."""
        pledge = self.known.get(PATREON_IDS[discord_id]) if self.linked[discord_id] else None
        self.model.observe(discord_id, pledge, self.now())

    def learn(self, patreon_id: str) -> None:
        """The bot fetched this member from Patreon now, and reconciles whoever is linked to it."""
        self.known[patreon_id] = self.truth(patreon_id)
        for discord_id, linked_id in PATREON_IDS.items():
            if linked_id == patreon_id:
                self.look_at(discord_id)

    def learn_everything(self) -> None:
        """A refresh that listed the whole campaign: every member is known afresh and planned."""
        for patreon_id in PATREON_IDS.values():
            self.known[patreon_id] = self.truth(patreon_id)
        self.waiting.clear()  # the refresh supersedes the events still waiting
        for discord_id in MEMBERS:
            self.look_at(discord_id)

    def say(self, text: str) -> None:
        """hypothesis' note, also in the world's steps.txt: a flaky failure prints no steps, the file keeps them."""
        note(text)
        with (self.folder / "steps.txt").open("a") as steps:
            steps.write(text + "\n")

    def tick(self) -> None:
        """Every rule starts here: count it, and end an outage that has lasted long enough."""
        self.steps += 1
        self.rules_run[self._rule_name()] = self.rules_run.get(self._rule_name(), 0) + 1
        caller = sys._getframe(1)
        arguments = {k: v for k, v in caller.f_locals.items() if k not in ("self", "data")}
        self.say(f"step {self.steps}: {caller.f_code.co_name}({arguments}) patreon_down={self.patreon_down}")
        if self.patreon_down:
            self.outage_left -= 1
            if self.outage_left < 0:
                self.run(self._end_outage())

    def calm_discord(self) -> None:
        """Links and unlinks change roles in the request itself (no queue to retry): the burst is over first."""
        if self.discord_trouble:
            self.w.fake.discord.clear_faults()
            self.discord_trouble = False

    async def _drain(self) -> None:
        await self.w.settle(events=not self.patreon_down)

    # -- start ---------------------------------------------------------------------------------------------------

    @initialize(
        grace_days=st.sampled_from([7, 7, 3, 0]),
        keep=st.booleans(),
        highest=st.booleans(),
        specials=st.booleans(),
        gold_gives_both=st.booleans(),
    )
    def start(self, grace_days: int, keep: bool, highest: bool, specials: bool, gold_gives_both: bool) -> None:
        gold_roles = {SEED.gold_role, SEED.bronze_role} if gold_gives_both else {SEED.gold_role}
        server = Server(
            tier_roles={SEED.gold_tier: frozenset(gold_roles), SEED.bronze_tier: frozenset({SEED.bronze_role})},
            grace_days=grace_days,
            keep_until_paid_through=keep,
            highest_only=highest,
            free_role=FREE_ROLE if specials else None,
            trial_role=TRIAL_ROLE if specials else None,
            former_role=FORMER_ROLE if specials else None,
            lifetime_role=LIFETIME_ROLE if specials else None,
            lifetime_cents=1000 if specials else None,
        )
        limits = RateLimits.real() if self.role_window is None else scaled_real_limits(self.role_window)
        self.say(f"world in {self.folder}")
        self.world = ProcessWorld(self.folder, server, limits)
        self.run(self.world.start())
        self.model = RoleModel(server, catalogue(self.w.fake.patreon))
        for discord_id, roles in ((SEED.alice, {SEED.vip_role}),):
            for role in roles:
                self.model.member(discord_id).hand.add(role)
        self.startup_refresh_saw_everyone()
        self.learn_everything()

    def startup_refresh_saw_everyone(self) -> None:
        """The oracle learns everyone at a start only if the bot's start-up refresh did: with Patreon up, it must
        have succeeded (a failed one also ends the start, so /ready says which)."""
        report = self.w.startup_refresh
        assert report is not None and report["ok"], f"the start-up refresh failed with Patreon up: {report}"

    # -- Patreon -------------------------------------------------------------------------------------------------

    @rule(
        member=MEMBER,
        change=CHANGES,
        delivery=st.sampled_from(["now", "twice", "later", "never"]),
        trigger=st.sampled_from(sorted(MEMBER_TRIGGERS)),
    )
    def pledge_changes(self, member: int, change: PledgeChange, delivery: str, trigger: str) -> None:
        self.tick()
        self._change(member, change, delivery, trigger)

    def _change(self, member: int, change: PledgeChange, delivery: str, trigger: str) -> None:
        patreon_id = PATREON_IDS[member]
        apply_change(self.w.fake.patreon, patreon_id, change, self.now())
        self.say(f"{NAMES[member]}: {change}, webhook {delivery}")
        body = self.w.fake.patreon.render_member_webhook_body(trigger, patreon_id)
        if delivery == "later":
            self.later.append((patreon_id, trigger, body))
        elif delivery != "never":
            for _ in range(2 if delivery == "twice" else 1):
                self.run(self._deliver(patreon_id, trigger, body))

    @rule(
        member=MEMBER,
        tiers=st.sampled_from(["gold", "bronze"]),
        hours_past_end=NEAR_BOUNDARY,
        active=st.booleans(),
        delivery=st.sampled_from(["now", "never"]),
    )
    def a_payment_is_declined_near_its_grace_end(
        self, member: int, tiers: str, hours_past_end: int, active: bool, delivery: str
    ) -> None:
        """The states users complain about: roles kept during a decline's grace, and only during it."""
        self.tick()
        change = declined_near_grace_end(tiers, hours_past_end, self.model.server.grace_days, active)
        self._change(member, change, delivery, "members:pledge:update")

    @rule(
        member=MEMBER,
        tiers=st.sampled_from(["none", "gold"]),
        hours_left=NEAR_BOUNDARY,
        charge=st.sampled_from(["Paid", "Deleted"]),
        delivery=st.sampled_from(["now", "never"]),
    )
    def a_pledge_is_cancelled_near_its_paid_through_date(
        self, member: int, tiers: str, hours_left: int, charge: str, delivery: str
    ) -> None:
        self.tick()
        change = cancelled_near_paid_through(tiers, hours_left, charge)
        self._change(member, change, delivery, "members:pledge:delete")

    @precondition(lambda self: bool(self.later))
    @rule(data=st.data())
    def late_webhook_arrives(self, data: st.DataObject) -> None:
        self.tick()
        index = data.draw(st.integers(0, len(self.later) - 1), label="which late delivery")
        patreon_id, trigger, body = self.later.pop(index)
        self.run(self._deliver(patreon_id, trigger, body))

    async def _deliver(self, patreon_id: str, trigger: str, body: bytes) -> None:
        status, text = await self.w.fake.patreon.send_webhook(trigger, None, body_override=body)
        assert 200 <= status < 300, (status, text)
        await self._drain()
        if self.patreon_down:
            self.waiting.add(patreon_id)
        else:
            self.learn(patreon_id)

    @precondition(lambda self: not self.patreon_down)
    @rule(lasting=st.integers(1, MAX_OUTAGE_RULES))
    def patreon_goes_down(self, lasting: int) -> None:
        """Every Patreon API call answers 503 for the next `lasting` rules (webhooks still arrive)."""
        self.tick()
        self._begin_outage(lasting)

    def _begin_outage(self, lasting: int) -> None:
        self.w.fake.patreon.fail_next(PATREON_API, status=503, count=10**9)
        self.patreon_down, self.outage_left = True, lasting

    async def _end_outage(self) -> None:
        self.w.fake.patreon.faults.clear()
        self.patreon_down = False
        await self._drain()  # the waiting events are retried now
        for patreon_id in sorted(self.waiting):
            self.learn(patreon_id)
        self.waiting.clear()

    # -- time ------------------------------------------------------------------------------------------------

    @rule(hours=CLOCK_STEPS)
    def time_passes(self, hours: int) -> None:
        self.tick()
        self.run(self.w.advance(hours))
        self.run(self._drain())

    @rule()
    def refresh(self) -> None:
        self.tick()
        report = self.run(self.w.refresh())
        self.say(f"refresh: {report}")
        if self.patreon_down:
            assert not report["ok"], "a refresh can't succeed while Patreon is down"
            self.run(self._drain())
            return
        assert report["ok"], report
        self.run(self._drain())
        self.learn_everything()

    # -- people --------------------------------------------------------------------------------------------------

    @rule(member=MEMBER, role=st.sampled_from([*HAND_ROLES, SEED.gold_role, SEED.bronze_role, FORMER_ROLE]))
    def moderator_gives_a_role(self, member: int, role: int) -> None:
        self.tick()
        roles = self.model.member(member)
        if role in roles.expected or role in roles.ever_granted:
            return  # see MemberRoles.ever_granted
        self.w.fake.guild.member(member).role_ids.add(role)
        self.model.hand_add(member, role)
        self.run(self.w.bot_has_seen_roles(member))

    @rule(member=MEMBER, data=st.data())
    def moderator_takes_a_role(self, member: int, data: st.DataObject) -> None:
        self.tick()
        held = sorted(self.model.member(member).expected)  # what the invariant just found on Discord
        if not held:
            return
        role = data.draw(st.sampled_from(held), label="role taken")
        self.w.fake.guild.member(member).role_ids.discard(role)
        self.model.hand_remove(member, role)
        self.run(self.w.bot_has_seen_roles(member))

    @precondition(lambda self: not self.patreon_down)
    @rule(member=MEMBER)
    def patron_links_with_oauth(self, member: int) -> None:
        self.tick()
        self.calm_discord()
        status, _html = self.run(self.w.fake.link(member))
        assert status == 200, status
        self.run(self._drain())
        self.linked[member] = True
        self.learn(PATREON_IDS[member])

    @precondition(lambda self: any(self.linked.values()))
    @rule(member=MEMBER)
    def patron_unlinks(self, member: int) -> None:
        self.tick()
        if not self.linked[member]:
            return
        self.calm_discord()
        interaction = self.run(self.w.fake.discord.invoke_slash(SEED.guild_id, member, "patreon", ["unlink"]))
        self.run(self._wait_answer(interaction))
        self.run(self._drain())
        self.linked[member] = False
        self.look_at(member)

    async def _wait_answer(self, interaction: InteractionRecord, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not interaction.content:
            if loop.time() > deadline:
                raise AssertionError(f"/patreon unlink was not answered in {timeout:.0f} s\n{self.w.log_tail()}")
            await asyncio.sleep(0.02)

    # -- the promise ---------------------------------------------------------------------------------------------

    @invariant()
    def every_member_holds_exactly_the_oracles_roles(self) -> None:
        if self.world is None:
            return
        self.run(self._check())

    async def _check(self) -> None:
        queue = await self.w.queue()
        assert queue["pending_jobs"] == 0 and queue["failed_jobs"] == 0, f"role jobs left: {queue}"
        assert queue["failed_events"] == 0, f"webhook events given up: {queue}"
        if not self.patreon_down:
            assert queue["pending_events"] == 0, f"webhook events left: {queue}"
        wrong: dict[str, tuple[set[int], set[int]]] = {}
        for _ in range(100):  # the last role call's gateway echo may still be on its way
            wrong = {}
            for member in MEMBERS:
                want, have = self.model.member(member).expected, self.w.fake.roles_of(member)
                if want != have:
                    wrong[NAMES[member]] = (want, have)
            if not wrong:
                return
            await asyncio.sleep(0.02)
        lines = [
            f"{name}: oracle {sorted(want)}, Discord {sorted(have)}; hand-given {sorted(self.model.member(m).hand)}; "
            f"Patreon now {self.truth(PATREON_IDS[m])}; the bot last saw {self.known.get(PATREON_IDS[m])}; "
            f"linked {self.linked[m]}"
            for m in MEMBERS
            for name, (want, have) in wrong.items()
            if NAMES[m] == name
        ]
        raise AssertionError(
            "roles differ from the oracle:\n" + "\n".join(lines) + f"\nqueue {queue}\nworld in {self.folder}"
        )


__all__ = ["ARTIST_ROLE", "ConvergenceMachine"]
