"""The fakes of bench/campaigns_bench.py, in a child process: many creators on one fake Patreon (its real client
limit, 100 requests per 2 s), one server per campaign on one fake Discord, driven over a pipe.

Each campaign is connected as the connect flow leaves it (its creator's token pair and webhook secret stored, its
server bound to it), and its server is in sync before the bot starts: a linked member's roles and the bot's grant
ledger are what the bot's own policy gives for the membership our client reads, so the start-up refresh changes
nothing. The child's own Patreon reads (seeding, the final check) happen while the bot is idle, with a window's
pause after them, so they never share a window of Patreon's limit with the bot's requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bench.fakes_process import FakesProcess
from bench.seeding import BOT_TOKEN, BOT_USER_ID, CLIENT_ID, CLIENT_SECRET, OWNER_ID, TIERS, USER_AGENT
from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, Tier, TierRoleMap, TokenPair
from bot.patreon.client import PatreonClient
from bot.store import Store
from bot.store.campaigns import OAUTH_SOURCE, campaign_token_subject
from bot.sync.member_plan import plan_member_roles
from bot.sync.reconcile import utc_now
from fakes.discord import FakeDiscord
from fakes.patreon import CREATOR_SCOPES, FakePatreon, sign

GUILD_BASE = 710000000000001000
ROLE_BASE = 730000000000010000
DISCORD_BASE = 3 * 10**17
CAMPAIGN_BASE = 9_000_000
#: The fake's limit counts every request in a 2 s window: the child waits this long after its own.
QUIET = 2.2


def _nothing_refused(roles: frozenset[int]) -> dict[int, str]:
    return {}


class CampaignsWorld:
    def __init__(self) -> None:
        self.discord = FakeDiscord(application_id=BOT_USER_ID, bot_user_id=BOT_USER_ID, bot_token=BOT_TOKEN)
        self.patreon: FakePatreon | None = None
        self.session: aiohttp.ClientSession | None = None
        #: Per campaign: its server, creator token, webhook secret, tier roles, and its linked patrons.
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.tiers: dict[str, dict[str, Tier]] = {}
        self.db_path = ""
        self._mark = (0, 0, 0)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.patreon is not None:
            await self.patreon.close()
        await self.discord.close()

    def _client(self) -> PatreonClient:
        assert self.patreon is not None and self.session is not None
        return PatreonClient(
            self.session,
            base_url=self.patreon.base_url,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri=self.patreon.redirect_uris[0],
            user_agent=USER_AGENT,
        )

    async def seed(self, campaigns: int, members: int, linked: int, web_port: int, db_path: str) -> dict[str, Any]:
        started = time.monotonic()
        redirect = f"http://127.0.0.1:{web_port}/patreon/callback"
        self.patreon = FakePatreon(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=(redirect,))
        await self.patreon.start()
        await self.discord.start()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        for index in range(campaigns):
            campaign_id = str(CAMPAIGN_BASE + index)
            state = self.patreon.add_creator(f"creator-{index}", f"Creator {index}", campaign_id)
            guild_id = GUILD_BASE + index
            guild = self.discord.add_guild(guild_id, name=f"Server {index}", owner_id=OWNER_ID)
            guild.add_member(OWNER_ID, username="creator")
            tier_roles: dict[str, frozenset[int]] = {}
            for number, (tier_id, title, cents) in enumerate(TIERS):
                tier = f"{campaign_id}-{tier_id}"
                state.add_tier(tier, title, cents)
                role = ROLE_BASE + index * 10 + number
                guild.add_role(role, f"{title} Patron", position=10 + number)
                tier_roles[tier] = frozenset({role})
            users = state.seed_members(members, list(tier_roles), rng_seed=index + 1)
            links = {}
            for number, user_id in enumerate(users[:linked]):
                discord_id = DISCORD_BASE + index * 10**6 + number
                links[user_id] = discord_id
                guild.add_member(discord_id, username=f"patron{index}-{number}")
            token = self.patreon.issue_tokens(state.creator.id, CREATOR_SCOPES)
            self.campaigns[campaign_id] = {
                "guild": guild_id,
                "token": token,
                "secret": f"bench-secret-{campaign_id}",
                "tier_roles": TierRoleMap(tier_roles),
                "links": links,
            }
        await self._sync_roles_and_store(db_path)
        await asyncio.sleep(QUIET)
        env = {
            "DISCORD_TOKEN": BOT_TOKEN,
            "PATREON_CLIENT_ID": CLIENT_ID,
            "PATREON_CLIENT_SECRET": CLIENT_SECRET,
            "PATREON_REDIRECT_URI": redirect,
            "DATABASE_PATH": db_path,
            "WEB_HOST": "127.0.0.1",
            "PORT": str(web_port),
            "PATREON_BASE_URL": self.patreon.base_url,
            "DISCORD_BASE_URL": self.discord.base_url,
            "REFRESH_INTERVAL_MINUTES": "1440",
        }
        return {"env": env, "seconds": time.monotonic() - started, "calls": len(self.patreon.calls)}

    async def _listing(self, campaign_id: str) -> dict[str, MembershipSnapshot]:
        client, token = self._client(), self.campaigns[campaign_id]["token"].access_token
        assert self.patreon is not None
        # Unmetered: the bench's reads are not the bot's traffic and must not spend the token's window (Patreon
        # counts 100 requests a minute per token) that the bot's budget keeps the bot under.
        limit, self.patreon.rate_limit = self.patreon.rate_limit, None
        try:
            tiers = (await client.get_campaign(token, campaign_id)).tiers
            self.tiers[campaign_id] = {tier.id: tier for tier in tiers}
            listing: dict[str, MembershipSnapshot] = {}
            async for page in client.iter_member_pages(token, campaign_id):
                listing.update((m.patreon_user_id, m) for m in page.members if m.patreon_user_id is not None)
        finally:
            self.patreon.rate_limit = limit
        return listing

    async def _sync_roles_and_store(self, db_path: str) -> None:
        self.db_path = db_path
        store = await Store.open(db_path)
        grants: list[tuple[int, int, int, str, str]] = []
        try:
            for campaign_id, info in self.campaigns.items():
                listing, now = await self._listing(campaign_id), utc_now()
                settings = GuildSettings(guild_id=info["guild"], enabled=True)
                guild = self.discord.guild(info["guild"])
                for patreon_id, discord_id in info["links"].items():
                    _decision, plan = plan_member_roles(
                        listing.get(patreon_id), settings, info["tier_roles"], self.tiers[campaign_id], now,
                        frozenset(), frozenset(), _nothing_refused,
                    )  # fmt: skip
                    guild.member(discord_id).role_ids.replace(plan.add, notify=False)
                    grants += [(info["guild"], discord_id, role, now.isoformat(), "bench seed") for role in plan.add]
                token = info["token"]
                pair = TokenPair(token.access_token, token.refresh_token, datetime.now(UTC) + timedelta(days=30))
                subject = campaign_token_subject(campaign_id)
                await store.save_tokens(subject, pair)
                await store.save_campaign(
                    campaign_id, token_subject=subject, source=OAUTH_SOURCE, webhook_secret=info["secret"]
                )
                await store.bind_guild(info["guild"], campaign_id, OWNER_ID)
                await store.save_settings(settings)
                await store.save_tiers(campaign_id, self.tiers[campaign_id].values())
                for tier_id, roles in info["tier_roles"].roles_by_tier.items():
                    for role in roles:
                        await store.map_tier_role(info["guild"], tier_id, role)
                rows = ((d, p, info["guild"], "bench") for p, d in info["links"].items())
                await store.add_links(rows, now)
        finally:
            await store.close()
        with contextlib.closing(sqlite3.connect(db_path)) as db, db:
            db.executemany("INSERT INTO role_grants VALUES (?, ?, ?, ?, ?)", grants)

    async def change(self, percent: float, rng_seed: int = 1) -> dict[str, Any]:
        """Move `percent`% of all linked patrons (of every campaign together) to another tier: what the refresh
        must find. Counted over all of them, not per campaign: 1% of each campaign's 10 rounds to none."""
        assert self.patreon is not None
        rng = random.Random(rng_seed)
        linked = [(campaign_id, user_id) for campaign_id, info in self.campaigns.items() for user_id in info["links"]]
        picked = rng.sample(sorted(linked), round(len(linked) * percent / 100))
        for campaign_id, user_id in picked:
            info, state = self.campaigns[campaign_id], self.patreon.campaigns[campaign_id]
            member = state.live_member_for(user_id)
            others = [t for t in info["tier_roles"].roles_by_tier if member is None or t not in member.tier_ids]
            state.set_membership(user_id, patron_status="active_patron", tier_ids=[rng.choice(others)])
        return {"changed": len(picked)}

    async def mark(self) -> None:
        assert self.patreon is not None
        self._mark = (len(self.patreon.calls), len(self.discord.calls), self.patreon.http_429)

    async def fire_webhooks(self, base_url: str, count: int, interval: float, rng_seed: int = 2) -> dict[str, Any]:
        """One signed `members:pledge:update` every `interval` s, each for a linked patron of a random campaign
        moved to another tier; returns when each was sent and the answers."""
        assert self.patreon is not None
        rng = random.Random(rng_seed)
        sent: list[tuple[int, int, float]] = []  # (guild, discord id, sent at)
        statuses: Counter[int] = Counter()
        async with aiohttp.ClientSession() as http:
            for _ in range(count):
                campaign_id = rng.choice(sorted(self.campaigns))
                info, state = self.campaigns[campaign_id], self.patreon.campaigns[campaign_id]
                user_id = rng.choice(sorted(info["links"]))
                member = state.live_member_for(user_id)
                others = [t for t in info["tier_roles"].roles_by_tier if member is None or t not in member.tier_ids]
                state.set_membership(user_id, patron_status="active_patron", tier_ids=[rng.choice(others)])
                body = self.patreon.render_member_webhook_body("members:pledge:update", user_id, campaign_id)
                headers = {
                    "Content-Type": "application/json",
                    "X-Patreon-Event": "members:pledge:update",
                    "X-Patreon-Signature": sign(body, info["secret"]),
                    "User-Agent": "Patreon HTTP Robot",
                }
                at = time.monotonic()
                async with http.post(f"{base_url}/{campaign_id}", data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1
                sent.append((info["guild"], info["links"][user_id], at))
                await asyncio.sleep(max(0.0, at + interval - time.monotonic()))
        return {"sent": sent, "statuses": dict(statuses)}

    async def observed(self) -> dict[str, Any]:
        """Since `mark`: Patreon requests by kind, the 429s, the fake's peak window, role calls with their times."""
        assert self.patreon is not None and self.patreon.rate_limit is not None
        calls = self.patreon.calls[self._mark[0] :]
        kinds = Counter(
            "listing page" if path.endswith("/members") else "member look-up" if "/members/" in path else path
            for _m, path, _q in calls
        )
        role_calls = [
            (call.path, call.at, call.status)
            for call in self.discord.calls[self._mark[1] :]
            if call.method in ("PUT", "DELETE", "PATCH") and "/members/" in call.path
        ]
        return {
            "patreon": dict(kinds),
            "patreon_total": len(calls),
            "http_429": self.patreon.http_429 - self._mark[2],
            "peak_window": self.patreon.rate_limit.peak,
            "role_calls": role_calls,
        }

    async def verify(self) -> dict[str, Any]:
        """Linked members whose Discord roles are not what the policy gives for a fresh listing (should be 0)."""
        await asyncio.sleep(QUIET)
        wrong, checked = 0, 0
        ledger: dict[int, set[int]] = {}
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as db:
            for _guild, user_id, role_id in db.execute("SELECT guild_id, discord_user_id, role_id FROM role_grants"):
                ledger.setdefault(int(user_id), set()).add(int(role_id))
        for campaign_id, info in self.campaigns.items():
            listing, now = await self._listing(campaign_id), utc_now()
            settings = GuildSettings(guild_id=info["guild"], enabled=True)
            guild = self.discord.guild(info["guild"])
            for patreon_id, discord_id in info["links"].items():
                actual = frozenset(guild.member(discord_id).role_ids)
                _decision, plan = plan_member_roles(
                    listing.get(patreon_id), settings, info["tier_roles"], self.tiers[campaign_id], now,
                    actual, frozenset(ledger.get(discord_id, set())), _nothing_refused,
                )  # fmt: skip
                checked += 1
                wrong += not plan.is_empty
        return {"checked": checked, "wrong": wrong}


def campaigns_fakes() -> FakesProcess:
    """The fakes in a child process, as bench/fakes_process.py runs them, holding this world."""
    return FakesProcess(CampaignsWorld, name="bench-campaigns-fakes")
