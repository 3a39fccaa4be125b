"""A whole loopback world: fake Discord, fake Patreon and the real bot, seeded with a campaign and a server.

Shared by the e2e tests, the demo and the benchmarks so they all exercise the same wiring. The seeded ids live in
fakes/seed.py (`SEED` and `PATREON_IDS` are imported from here too), the role-call records in fakes/role_calls.py.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import ClassVar

import aiohttp

from bot.config import Config, load_config
from bot.discord_io.client import PatronBot
from bot.discord_io.endpoint import point_discord_at
from bot.store import Store
from bot.store.opening import open_configured
from bot.store.token_cipher import TokenCipher, new_key
from bot.sync.refresh_report import RefreshReport
from bot.web.webhook_receiver import MEMBER_TRIGGERS
from fakes.browser import Browser
from fakes.discord import FakeDiscord, RateLimits
from fakes.patreon import FakePatreon
from fakes.postgres import drop_database, fresh_database
from fakes.role_calls import RoleCallWatch
from fakes.seed import PATREON_IDS, SEED

BOT_TOKEN = "fake-bot-token"
CLIENT_ID = "fake-client"
CLIENT_SECRET = "fake-secret"
WEBHOOK_SECRET = "fake-webhook-secret"
DISCORD_CLIENT_SECRET = "fake-discord-client-secret"
#: What a deployment that connects its campaigns with `/patreon-admin connect` leaves out of .env.
_ENV_CAMPAIGN_SETTINGS = ("PATREON_CREATOR_ACCESS_TOKEN", "PATREON_CREATOR_REFRESH_TOKEN", "PATREON_WEBHOOK_SECRET")


class Clock:
    """A clock tests can move; by default it follows real time."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def free_port() -> int:
    """A free port for the bot's web server, chosen below Linux's ephemeral range (32768 and up).

    The port must be known before the bot starts (the OAuth redirect URIs name it), so it is picked, released and
    bound again later; a port from the ephemeral range could meanwhile be taken by any outgoing connection.
    """
    for _attempt in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


class FakeWorld(RoleCallWatch):
    """The fakes and the bot, seeded (fakes/seed.py); what a test reads of the bot's role calls is `RoleCallWatch`
    (fakes/role_calls.py)."""

    #: PostgreSQL databases made by worlds in this process so far: how a test runner tells which tests ran on one.
    postgres_databases_made: ClassVar[int] = 0

    def __init__(
        self,
        db_path: Path,
        web_port: int | None = None,
        *,
        bot_host: str = "127.0.0.1",
        rate_limits: RateLimits | None = None,
        postgres_server: str | None = None,
    ) -> None:
        """`rate_limits` None raises the fake Discord's limits (`RateLimits.relaxed()`): e2e tests need speed. The
        demo passes `RateLimits.real()`; one e2e test about the limits can call `discord.set_rate_limits(...)`.
        The bot paces its role calls to the same member-role window (`ROLE_CALLS_PER_GUILD`/`ROLE_WINDOW_SECONDS`,
        as a deployment would set them), so a test with a short window stays fast without lying to the bot.
        `postgres_server` (a PostgreSQL server's DSN): the bot's data goes to a database of the world's own there
        (made by `start`, dropped by `close`; DATABASE_URL and TOKEN_ENCRYPTION_KEY) instead of the file `db_path`."""
        self.rate_limits = rate_limits or RateLimits.relaxed()
        self.db_path = db_path
        self.web_port = web_port or free_port()
        #: Where browsers reach the bot (`bot_host` "localhost" puts it on another site than the fakes' 127.0.0.1).
        self.bot_url = f"http://{bot_host}:{self.web_port}"
        self.redirect_uri = f"{self.bot_url}/patreon/callback"
        self.discord = FakeDiscord(
            application_id=900000000000000001,
            bot_user_id=900000000000000001,
            bot_token=BOT_TOKEN,
            interaction_ack_timeout=15.0,  # Discord allows 3 s; a busy CI machine must not turn that into a flake
            rate_limits=self.rate_limits,
        )
        self.patreon = FakePatreon(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=(self.redirect_uri,))
        self.clock = Clock()
        self.bot: PatronBot | None = None
        self.store: Store | None = None
        self._session: aiohttp.ClientSession | None = None
        self._bot_task: asyncio.Task[None] | None = None
        self.browser: aiohttp.ClientSession | None = None
        #: Each person's own browser (cookie jar, Discord sign-in), made when first used.
        self.browsers: dict[int, Browser] = {}
        self._link_user: int | None = None
        #: Patreon and queue retries back off in milliseconds instead of seconds, so failure tests stay fast.
        self.fast_retries = True
        #: `start_bot` returns once the start-up refresh and the jobs it queued are done.
        self.wait_for_startup_refresh = True
        #: More .env settings for the bot (e.g. ALLOWED_GUILD_IDS), read when it starts.
        self.extra_environment: dict[str, str] = {}
        #: False: no creator tokens nor webhook secret in .env, so campaigns come only from `/patreon-admin connect`.
        self.env_campaign = True
        self.postgres_server = postgres_server
        #: This world's own PostgreSQL database (empty: the SQLite file), and the key its tokens are sealed with.
        self.database_url = ""
        self._key = new_key() if postgres_server else ""

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self, *, start_bot: bool = True) -> FakeWorld:
        if self.postgres_server and not self.database_url:
            self.database_url = await fresh_database(self.postgres_server, "e2e")
            FakeWorld.postgres_databases_made += 1
        await self.discord.start()
        await self.patreon.start()
        self._seed_discord()
        self._seed_patreon()
        self.browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.discord.oauth.register(DISCORD_CLIENT_SECRET, (f"{self.bot_url}/discord/callback",))
        if start_bot:
            await self.seed_store()
            await self.start_bot()
        return self

    async def close(self) -> None:
        await self.stop_bot()
        if self.browser is not None:
            await self.browser.close()
        for browser in self.browsers.values():
            await browser.close()
        await self.patreon.close()
        await self.discord.close()
        if self.postgres_server and self.database_url:
            await drop_database(self.postgres_server, self.database_url)
            self.database_url = ""

    def environment(self) -> dict[str, str]:
        """The settings a deployment would put in .env, pointing at the fakes."""
        return {
            "DISCORD_TOKEN": BOT_TOKEN,
            "PATREON_CLIENT_ID": CLIENT_ID,
            "PATREON_CLIENT_SECRET": CLIENT_SECRET,
            "PATREON_REDIRECT_URI": self.redirect_uri,
            "PATREON_CREATOR_ACCESS_TOKEN": self.patreon.creator_access_token,
            "PATREON_CREATOR_REFRESH_TOKEN": self.patreon.creator_refresh_token,
            "PATREON_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "DISCORD_CLIENT_ID": str(self.discord.application_id),
            "DISCORD_CLIENT_SECRET": DISCORD_CLIENT_SECRET,
            "DATABASE_PATH": str(self.db_path),
            "WEB_HOST": "127.0.0.1",
            "PORT": str(self.web_port),
            "PATREON_BASE_URL": self.patreon.base_url,
            "DISCORD_BASE_URL": self.discord.base_url,
            "ROLE_CALLS_PER_GUILD": str(self.rate_limits.member_role.limit),
            "ROLE_WINDOW_SECONDS": repr(self.rate_limits.member_role.seconds),
            **({"DATABASE_URL": self.database_url, "TOKEN_ENCRYPTION_KEY": self._key} if self.database_url else {}),
            **self.extra_environment,
        } | ({} if self.env_campaign else dict.fromkeys(_ENV_CAMPAIGN_SETTINGS, ""))

    @property
    def config(self) -> Config:
        return load_config(self.environment(), env_file=None)

    async def open_store(self) -> Store:
        """The bot's database, opened as `python -m bot` opens it: the SQLite file, or this world's PostgreSQL
        database. Tests and helpers that change the store behind the bot's back use this, never the file."""
        config = self.config
        cipher = TokenCipher.from_setting(config.token_encryption_key) if config.token_encryption_key else None
        return await open_configured(config.database_url, config.database_path, cipher)

    async def start_bot(self) -> PatronBot:
        point_discord_at(self.discord.base_url)
        self.store = await self.open_store()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        bot = PatronBot(self.config, self.store, self._session, self.clock, guild_ready_timeout=0.05)
        await bot.login(BOT_TOKEN)
        self._bot_task = asyncio.create_task(bot.connect(reconnect=False))
        await asyncio.wait_for(bot.wait_until_ready(), timeout=15)
        self.bot = bot
        if self.fast_retries:
            bot.services.patreon.retry_base_delay = 0.01
            bot.services.jobs.retry_base = 0.05
            bot.services.webhook_applier.retry_base = 0.05
        if self.wait_for_startup_refresh:
            await asyncio.wait_for(bot.services.scheduler.first_run_done.wait(), timeout=15)
            await self.settle()
        return bot

    async def stop_bot(self) -> None:
        if self.bot is not None:
            await self.bot.close()
            self.bot = None
        if self._bot_task is not None:
            await asyncio.gather(self._bot_task, return_exceptions=True)
            self._bot_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.store is not None:
            await self.store.close()
            self.store = None

    # -- seeding ---------------------------------------------------------------------------------------

    def _seed_discord(self) -> None:
        guild = self.guild = self.discord.add_guild(SEED.guild_id, name="Creator's Server", owner_id=SEED.owner_id)
        guild.add_role(SEED.gold_role, "Gold Patron", position=10)
        guild.add_role(SEED.bronze_role, "Bronze Patron", position=9)
        guild.add_role(SEED.vip_role, "VIP", position=8)
        guild.add_role(SEED.above_bot_role, "Moderator", position=60)
        guild.add_role(SEED.managed_role, "Server Booster", position=5, managed=True)
        guild.add_text_channel(SEED.log_channel, name="patreon-log")
        guild.add_member(SEED.owner_id, username="creator")
        guild.add_member(SEED.alice, username="alice", roles=[SEED.vip_role])
        guild.add_member(SEED.bob, username="bob")
        guild.add_member(SEED.carol, username="carol")
        guild.add_member(SEED.dave, username="dave")

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/patreon/webhook"

    def _seed_patreon(self) -> None:
        now = datetime.now(UTC)
        self.webhook = self.patreon.add_webhook(self.webhook_url, sorted(MEMBER_TRIGGERS), secret=WEBHOOK_SECRET)
        self.patreon.add_tier(tier_id=SEED.gold_tier, title="Gold", amount_cents=1000)
        self.patreon.add_tier(tier_id=SEED.bronze_tier, title="Bronze", amount_cents=500)
        for discord_id, name in ((SEED.alice, "Alice"), (SEED.bob, "Bob"), (SEED.carol, "Carol"), (SEED.dave, "Dave")):
            self.patreon.add_user(user_id=PATREON_IDS[discord_id], full_name=name, discord_id=None)
        paid_at = now - timedelta(days=3)
        for user_id, tier_id in (("p-alice", SEED.gold_tier), ("p-bob", SEED.bronze_tier)):
            self.patreon.set_membership(
                user_id, patron_status="active_patron", tier_ids=[tier_id], last_charge_status="Paid",
                last_charge_date=paid_at,
            )
        self.patreon.set_membership(
            "p-carol",
            patron_status="former_patron",
            tier_ids=[],
            last_charge_status="Paid",
            last_charge_date=now - timedelta(days=90),
        )
        self.patreon.set_membership("p-dave", patron_status=None, tier_ids=[], last_charge_status=None)

    async def seed_store(self) -> None:
        """The admin's choices (the bot turned on, tier→role map, log channel) as if made with the admin commands."""
        from bot.domain.guild_settings import GuildSettings

        store = await self.open_store()
        try:
            await store.map_tier_role(SEED.guild_id, SEED.gold_tier, SEED.gold_role)
            await store.map_tier_role(SEED.guild_id, SEED.bronze_tier, SEED.bronze_role)
            await store.save_settings(
                GuildSettings(guild_id=SEED.guild_id, enabled=True, log_channel_id=SEED.log_channel)
            )
        finally:
            await store.close()

    # -- what a person does ------------------------------------------------------------------------------

    async def run_link_command(self, discord_id: int) -> str:
        """Run `/patreon link` as this user and return the URL behind the button."""
        interaction = await self.discord.invoke_slash(SEED.guild_id, discord_id, "patreon", ["link"])
        await interaction.wait_response(timeout=5)
        assert interaction.ephemeral, "the link must be shown only to the user who asked"
        self._link_user = discord_id
        return button_url(interaction.components)

    def browser_of(self, discord_id: int) -> Browser:
        """This person's browser, which signs in to (fake) Discord as them when Discord asks."""
        if discord_id not in self.browsers:
            self.browsers[discord_id] = Browser(self.discord.base_url, self.guild.member(discord_id).username)
        return self.browsers[discord_id]

    async def open_in_browser(self, url: str, *, as_user: int | None = None) -> tuple[int, str]:
        """Open `url` in a person's browser (by default that of whoever last ran `/patreon link`) and go through
        every redirect and Discord page they would: the bot's start page, Discord's sign-in and consent, Patreon's
        authorize (auto-approving) and the bot's callback."""
        user = as_user if as_user is not None else self._link_user
        if user is None:
            assert self.browser is not None
            async with self.browser.get(url, allow_redirects=True) as response:
                return response.status, await response.text()
        return await self.browser_of(user).open(url)

    async def link(self, discord_id: int) -> tuple[int, str]:
        """The whole flow: `/patreon link`, sign in on (fake) Discord and Patreon as that user, land on the bot."""
        self.patreon.next_authorizing_user = PATREON_IDS[discord_id]
        url = await self.run_link_command(discord_id)
        return await self.open_in_browser(url, as_user=discord_id)

    def roles_of(self, discord_id: int) -> set[int]:
        return set(self.guild.member(discord_id).role_ids)

    async def send_webhook(self, trigger: str, patreon_user_id: str, **options: object) -> tuple[int, str]:
        """Fake Patreon delivers `trigger` for this user's membership to the bot, signed with the secret."""
        return await self.patreon.send_webhook(trigger, patreon_user_id, **options)  # type: ignore[arg-type]

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until no webhook event or role job is due or running (back-offs still waiting don't count)."""
        assert self.bot is not None
        services = self.bot.services
        for _ in range(3):  # applying events queues jobs; jobs never queue events
            await services.webhook_applier.wait_idle(timeout)
            await services.jobs.wait_idle(timeout)

    async def refresh(self, cause: str = "test") -> RefreshReport:
        """Run one full refresh now and wait for the role jobs it queued."""
        assert self.bot is not None
        report = await self.bot.services.refresh.run(cause)
        await self.settle()
        return report


def button_url(components: list[dict]) -> str:
    for row in components:
        for component in row.get("components", []):
            if component.get("url"):
                return str(component["url"])
    raise AssertionError(f"no link button in {components!r}")


def page_text(html: str) -> str:
    """The visible text of a page, for assertions that read like what a person sees."""
    html = re.sub(r"<(style|title)>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()
