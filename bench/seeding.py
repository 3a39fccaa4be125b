"""What the benchmarks ask of the fakes; runs inside the fakes process (`bench.fakes_process`).

The seeded world is in sync before the bot starts: every member's Discord roles and the bot's grant ledger are
what the bot's own pure policy (`plan_member_roles`) gives for the membership our Patreon client reads from the
fake, so the start-up refresh should find nothing to do. Expected figures ("members whose roles differ") come
from the same policy over a fresh listing, compared with the roles the fake Discord really holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sqlite3
import time
from collections import Counter
from typing import Any

import aiohttp

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, Tier, TierRoleMap
from bot.domain.role_plan import RolePlan
from bot.patreon.client import PatreonClient
from bot.store import Store
from bot.sync.member_plan import plan_member_roles
from bot.sync.reconcile import utc_now
from fakes.discord import FakeDiscord
from fakes.discord.crowd import add_crowd
from fakes.patreon import FakePatreon, sign

GUILD_ID = 710000000000000001
OWNER_ID = 720000000000000001
BOT_USER_ID = 900000000000000001
BOT_TOKEN = "bench-bot-token"
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
WEBHOOK_SECRET = "bench-webhook-secret"
TIERS = (("3001", "Bronze", 300), ("3002", "Silver", 500), ("3003", "Gold", 1000))
ROLE_BASE = 730000000000000100
DISCORD_ID_BASE = 10**17
CROWD_ID_BASE = 2 * 10**17  # unlinked members of a big server (never overlaps the linked ones)
USER_AGENT = "patreon-role-sync-bench/0.1 (+loopback)"
ROLE_CALL = re.compile(rf"^/guilds/{GUILD_ID}/members/(\d+)(?:/roles/\d+)?$")


def role_call_user(method: str, path: str) -> int | None:
    """The member a role-changing Discord call targets (PATCH member, PUT/DELETE member role), else None."""
    match = ROLE_CALL.match(path) if method in ("PATCH", "PUT", "DELETE") else None
    return int(match.group(1)) if match else None


def read_ledger(db_path: str, guild_id: int) -> dict[int, frozenset[int]]:
    """The bot's grant ledger, read straight from its SQLite file (WAL lets a reader in while the bot writes)."""
    grants: dict[int, set[int]] = {}
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT discord_user_id, role_id FROM role_grants WHERE guild_id = ?", (guild_id,))
        for user_id, role_id in rows:
            grants.setdefault(int(user_id), set()).add(int(role_id))
    return {user: frozenset(roles) for user, roles in grants.items()}


def _nothing_refused(roles: frozenset[int]) -> dict[int, str]:
    return {}


class World:
    def __init__(self) -> None:
        self.discord = FakeDiscord(application_id=BOT_USER_ID, bot_user_id=BOT_USER_ID, bot_token=BOT_TOKEN)
        self.patreon: FakePatreon | None = None
        self.session: aiohttp.ClientSession | None = None
        self.links: dict[str, int] = {}
        self.settings = GuildSettings(guild_id=GUILD_ID, enabled=True)  # the bench's one server acts for the campaign
        self.tier_roles = TierRoleMap({tier_id: frozenset({ROLE_BASE + i}) for i, (tier_id, _, _) in enumerate(TIERS)})
        self.tiers: dict[str, Tier] = {}
        self.expected: dict[int, frozenset[int]] = {}
        self.db_path = ""
        self._marks = (0, 0)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.patreon is not None:
            await self.patreon.close()
        await self.discord.close()

    # -- seeding --------------------------------------------------------------------------------------

    async def seed(self, members: int, web_port: int, db_path: str | None) -> dict[str, Any]:
        """N patrons, each linked to a member of one guild with the tier roles mapped; returns the bot's env."""
        started = time.monotonic()
        redirect = f"http://127.0.0.1:{web_port}/patreon/callback"
        self.patreon = FakePatreon(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=(redirect,))
        await self.patreon.start()
        await self.discord.start()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        guild = self.discord.add_guild(GUILD_ID, name="Bench Server", owner_id=OWNER_ID)
        guild.add_member(OWNER_ID, username="creator")
        for index, (tier_id, title, cents) in enumerate(TIERS):
            self.patreon.add_tier(tier_id, title, cents)
            guild.add_role(ROLE_BASE + index, f"{title} Patron", position=10 + index)
        for index, user_id in enumerate(self.patreon.seed_members(members, [tier[0] for tier in TIERS])):
            self.links[user_id] = DISCORD_ID_BASE + index
            guild.add_member(DISCORD_ID_BASE + index, username=f"patron{index}")
        if db_path is not None:
            await self._sync_roles_and_store(db_path)
        env = {
            "DISCORD_TOKEN": BOT_TOKEN,
            "PATREON_CLIENT_ID": CLIENT_ID,
            "PATREON_CLIENT_SECRET": CLIENT_SECRET,
            "PATREON_REDIRECT_URI": redirect,
            "PATREON_CREATOR_ACCESS_TOKEN": self.patreon.creator_access_token,
            "PATREON_CREATOR_REFRESH_TOKEN": self.patreon.creator_refresh_token,
            "PATREON_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PATREON_CAMPAIGN_ID": self.patreon.campaign.id,
            "DATABASE_PATH": db_path or ":memory:",
            "WEB_HOST": "127.0.0.1",
            "PORT": str(web_port),
            "PATREON_BASE_URL": self.patreon.base_url,
            "DISCORD_BASE_URL": self.discord.base_url,
            "REFRESH_INTERVAL_MINUTES": "1440",
        }
        return {"env": env, "guild_id": GUILD_ID, "seconds": time.monotonic() - started}

    async def _listing(self) -> dict[str, MembershipSnapshot]:
        """Every membership as our client parses it (the child's own calls; benches mark the logs after)."""
        assert self.patreon is not None and self.session is not None
        client = PatreonClient(
            self.session,
            base_url=self.patreon.base_url,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri=self.patreon.redirect_uris[0],
            user_agent=USER_AGENT,
        )
        token, campaign_id = self.patreon.creator_access_token, self.patreon.campaign.id
        # Unmetered: Patreon counts 100 requests a minute per token (per grant, in the fake), and the bot's budget
        # keeps the bot's own traffic under it; the bench's reads are not the bot's and must not spend its window.
        limit, self.patreon.rate_limit = self.patreon.rate_limit, None
        try:
            self.tiers = {tier.id: tier for tier in (await client.get_campaign(token, campaign_id)).tiers}
            listing: dict[str, MembershipSnapshot] = {}
            async for page in client.iter_member_pages(token, campaign_id):
                listing.update((m.patreon_user_id, m) for m in page.members if m.patreon_user_id is not None)
        finally:
            self.patreon.rate_limit = limit
        return listing

    async def _sync_roles_and_store(self, db_path: str) -> None:
        """Give every member the roles the policy wants, record them as the bot's grants, store links and map."""
        assert self.patreon is not None
        self.db_path = db_path
        listing, now, guild = await self._listing(), utc_now(), self.discord.guild(GUILD_ID)
        grants: list[tuple[int, int, int, str, str]] = []
        for patreon_id, discord_id in self.links.items():
            _decision, plan = plan_member_roles(
                listing.get(patreon_id), self.settings, self.tier_roles, self.tiers, now,
                frozenset(), frozenset(), _nothing_refused,
            )  # fmt: skip
            guild.member(discord_id).role_ids.replace(plan.add, notify=False)
            grants += [(GUILD_ID, discord_id, role, now.isoformat(), "bench seed") for role in plan.add]
        store = await self.open_store(db_path)
        try:
            for tier_id, roles in self.tier_roles.roles_by_tier.items():
                for role in roles:
                    await store.map_tier_role(GUILD_ID, tier_id, role)
            await store.save_tiers(self.patreon.campaign.id, self.tiers.values())
            await store.save_settings(self.settings)
            await store.add_links(((d, p, GUILD_ID, "bench") for p, d in self.links.items()), now)
        finally:
            await store.close()
        await self.store_grants(db_path, grants)

    async def open_store(self, db_path: str) -> Store:
        """The bot's store, for seeding (bench/backends_bench.py opens PostgreSQL instead)."""
        return await Store.open(db_path)

    async def store_grants(self, db_path: str, grants: list[tuple[int, int, int, str, str]]) -> None:
        """The seeded grant ledger, in one statement straight into the SQLite file."""
        with contextlib.closing(sqlite3.connect(db_path)) as db, db:
            db.executemany("INSERT INTO role_grants VALUES (?, ?, ?, ?, ?)", grants)

    async def read_ledger(self, guild_id: int) -> dict[int, frozenset[int]]:
        """The bot's grant ledger as it is now (`read_ledger` on the SQLite file)."""
        return read_ledger(self.db_path, guild_id)

    # -- changing pledges -----------------------------------------------------------------------------

    async def change(self, percent: float, rng_seed: int = 1) -> dict[str, Any]:
        """Change `percent`% of memberships; return what changed and how many members' roles now differ."""
        assert self.patreon is not None
        rng, state = random.Random(rng_seed), self.patreon.campaign
        picked = rng.sample(sorted(self.links), round(len(self.links) * percent / 100))
        kinds: Counter[str] = Counter()
        for user_id in picked:
            member = state.live_member_for(user_id)
            if member is None:
                continue
            roll = rng.random()
            if member.patron_status != "active_patron":
                self.patreon.set_membership(user_id, "active_patron", tier_ids=[rng.choice(TIERS)[0]])
                kinds["new pledge"] += 1
            elif roll < 0.5:
                others = [tier[0] for tier in TIERS if tier[0] not in member.tier_ids]
                self.patreon.set_membership(user_id, "active_patron", tier_ids=[rng.choice(others)])
                kinds["tier change"] += 1
            elif roll < 0.8:
                # Patreon's pledge delete keeps next_charge_date: the policy keeps the roles until then.
                paid_until = member.next_charge_date
                self.patreon.set_membership(user_id, "former_patron", tier_ids=[], next_charge_date=paid_until)
                kinds["cancelled, paid through"] += 1
            else:
                self.patreon.remove_membership(user_id)
                kinds["deleted"] += 1
        differ = role_changes = 0
        for discord_id, actual, plan in await self.plans_now():
            differ += not plan.is_empty
            role_changes += len(plan.add) + len(plan.remove)
            self.expected[discord_id] = plan.final_roles(actual)
        return {"changed": len(picked), "kinds": dict(kinds), "differ": differ, "role_changes": role_changes}

    async def verify(self) -> dict[str, Any]:
        """Members whose Discord roles are not what the policy gives (after `change`): should be none."""
        guild = self.discord.guild(GUILD_ID)
        wrong = [d for d, roles in self.expected.items() if frozenset(guild.member(d).role_ids) != roles]
        return {"checked": len(self.expected), "mismatches": len(wrong), "examples": wrong[:5]}

    # -- a big server (bench/big_guild_bench.py) -------------------------------------------------------

    async def add_crowd(self, count: int) -> dict[str, Any]:
        """`count` more members who aren't linked, made only when touched (fakes/discord/crowd.py)."""
        guild = self.discord.guild(GUILD_ID)
        add_crowd(guild, CROWD_ID_BASE, count)
        return {"member_count": len(guild.members)}

    async def ask_status(self, discord_id: int, timeout: float = 60) -> dict[str, Any]:
        """`/patreon status` as this member; seconds to the bot's answer (None when it didn't answer)."""
        started = time.monotonic()
        interaction = await self.discord.invoke_slash(GUILD_ID, discord_id, "patreon", ["status"])
        try:
            await interaction.wait_response(timeout=timeout)
        except TimeoutError:
            return {"seconds": None}
        return {"seconds": time.monotonic() - started}

    async def member_requests(self) -> dict[str, Any]:
        """What the bot asked the gateway for with op 8."""
        requests = self.discord.member_requests
        return {
            "requests": len(requests),
            "by_id": sum(1 for r in requests if r.user_ids is not None),
            "ids": sum(len(r.user_ids or ()) for r in requests),
            "whole_list": sum(1 for r in requests if r.all_members),
            "other": sum(1 for r in requests if r.user_ids is None and not r.all_members),
        }

    # -- observing --------------------------------------------------------------------------------------

    async def mark(self) -> None:
        assert self.patreon is not None
        self._marks = (len(self.patreon.calls), len(self.discord.calls))

    async def calls_since_mark(self) -> dict[str, list[tuple[str, str, int]]]:
        assert self.patreon is not None
        patreon_calls = self.patreon.calls[self._marks[0] :]
        discord_calls = self.discord.calls[self._marks[1] :]
        return {
            "patreon": [(method, path, 0) for method, path, _query in patreon_calls],
            "discord": [(call.method, call.path, call.status) for call in discord_calls],
        }

    # -- webhooks ---------------------------------------------------------------------------------------

    def drain_seconds(self, role_calls: int) -> float:
        """How long `role_calls` member-role calls in one server take at the fake's member-role bucket, with a
        margin: the longest a bench should wait for them."""
        window = self.discord.rate_limits.member_role
        return 1.5 * role_calls * window.seconds / window.limit

    async def drain_estimate(self, role_calls: int) -> dict[str, float]:
        return {"seconds": self.drain_seconds(role_calls)}

    async def plans_now(self) -> list[tuple[int, frozenset[int], RolePlan]]:
        """(member, roles held on fake Discord, the policy's plan) for every linked member, over a fresh listing
        and the bot's ledger as they are now."""
        listing, now, guild = await self._listing(), utc_now(), self.discord.guild(GUILD_ID)
        ledger = await self.read_ledger(GUILD_ID)
        plans = []
        for patreon_id, discord_id in self.links.items():
            actual = frozenset(guild.member(discord_id).role_ids)
            _decision, plan = plan_member_roles(
                listing.get(patreon_id), self.settings, self.tier_roles, self.tiers, now,
                actual, ledger.get(discord_id, frozenset()), _nothing_refused,
            )  # fmt: skip
            plans.append((discord_id, actual, plan))
        return plans

    def move_active_patrons(self, count: int, rng_seed: int) -> list[str]:
        """Move `count` linked active patrons (picked by `rng_seed`) to another tier on fake Patreon; their ids."""
        assert self.patreon is not None
        rng, state = random.Random(rng_seed), self.patreon.campaign
        active = [
            user_id
            for user_id in sorted(self.links)
            if (member := state.live_member_for(user_id)) is not None and member.patron_status == "active_patron"
        ]
        picked = rng.sample(active, min(count, len(active)))
        for user_id in picked:
            current = state.live_member_for(user_id)
            others = [tier[0] for tier in TIERS if current is None or tier[0] not in current.tier_ids]
            self.patreon.set_membership(user_id, "active_patron", tier_ids=[rng.choice(others)])
        return picked

    async def fire_webhooks(self, url: str, count: int, concurrency: int, rate: float, rng_seed: int = 2) -> dict:
        """Move `count` active patrons to another tier, POST one signed `members:pledge:update` each, and time
        each from its send to the first role call for that member that fake Discord records."""
        assert self.patreon is not None
        deliveries = []
        for user_id in self.move_active_patrons(count, rng_seed):
            body = self.patreon.render_member_webhook_body("members:pledge:update", user_id)
            deliveries.append((self.links[user_id], body, sign(body, WEBHOOK_SECRET)))
        calls_before = len(self.discord.calls)
        sent_at: dict[int, float] = {}
        statuses: Counter[int] = Counter()
        gate = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            started = time.monotonic()

            async def deliver(index: int, discord_id: int, body: bytes, signature: str) -> None:
                if rate > 0:
                    await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
                async with gate:
                    headers = {
                        "Content-Type": "application/json",
                        "X-Patreon-Event": "members:pledge:update",
                        "X-Patreon-Signature": signature,
                        "User-Agent": "Patreon HTTP Robot",
                    }
                    sent_at[discord_id] = time.monotonic()
                    async with http.post(url, data=body, headers=headers) as response:
                        await response.read()
                        statuses[response.status] += 1

            await asyncio.gather(*(deliver(i, *delivery) for i, delivery in enumerate(deliveries)))
            send_seconds = time.monotonic() - started
        first_call: dict[int, float] = {}
        deadline = time.monotonic() + 60 + self.drain_seconds(2 * len(deliveries))
        while len(first_call) < len(deliveries) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            for call in self.discord.calls[calls_before:]:
                user = role_call_user(call.method, call.path)
                if user in sent_at and user not in first_call and call.at >= sent_at[user]:
                    first_call[user] = call.at
        return {
            "sent": len(deliveries),
            "statuses": dict(statuses),
            "send_seconds": send_seconds,
            "latencies": sorted(first_call[user] - sent_at[user] for user in first_call),
            "settle_seconds": max(first_call.values(), default=started) - started,
        }
