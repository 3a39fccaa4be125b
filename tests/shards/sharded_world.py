"""Two processes of one sharded bot (SHARD_COUNT=2, one shard each) on one PostgreSQL database, against the fakes.

The fakes run in this process (fakes/world.py's FakeWorld, its data in a database of its own on the server); each
bot runs in a child of its own (fakes/bot_process.py) so a test can SIGKILL it. Both answer the web endpoints on
their own port, as two instances behind one load balancer: the public URL (the OAuth redirects, the Patreon
webhook) names process 0's port, and a test may deliver to process 1's port directly. Servers sit on both shards
by Discord's formula, and every member is in every server (erin only in one of shard 1's).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bot.domain.guild_settings import GuildSettings
from bot.domain.shards import shard_of
from fakes.bot_process import READY_TIMEOUT, REFRESH_TIMEOUT, SETTLE_TIMEOUT
from fakes.browser import Browser
from fakes.world import PATREON_IDS, SEED, FakeWorld, button_url, free_port

REPO = Path(__file__).resolve().parents[2]
SHARD_COUNT = 2
#: The parent waits this much longer than the child's own deadline, so the child's 504 (saying what it waited for)
#: comes first; a call without a deadline of its own gets QUICK_CALL; a started bot announces its port within
#: ANNOUNCE_TIMEOUT (it imports discord.py first, on a loaded machine).
MARGIN, QUICK_CALL, ANNOUNCE_TIMEOUT = 60.0, 60.0, 120.0
#: How long a killed process's claims hold before the other shard's replacement may take them (BOT_LEASE_SECONDS).
LEASE_SECONDS = 3.0
MEMBERS = {"alice": SEED.alice, "bob": SEED.bob, "carol": SEED.carol, "dave": SEED.dave}
ERIN, ERIN_PATREON = 750000000000000005, "p-erin"


def guild_on(shard: int, n: int) -> int:
    """The n-th server id after the seeded one that Discord's formula puts on `shard`."""
    found = [g for g in (SEED.guild_id + (k << 22) for k in range(1, 64)) if shard_of(g, SHARD_COUNT) == shard]
    return found[n]


@dataclass(frozen=True)
class Server:
    guild_id: int
    gold: int
    bronze: int
    log_channel: int

    @property
    def shard(self) -> int:
        return shard_of(self.guild_id, SHARD_COUNT)


class BotChild:
    """One bot process: started with its .env, asked through its control API, ended with SIGKILL."""

    def __init__(self, folder: Path, name: str, environment: dict[str, str], web_port: int) -> None:
        self.folder, self.name, self.environment, self.web_port = folder, name, environment, web_port
        self.process: asyncio.subprocess.Process | None = None
        self.control_port = 0
        self.starts = 0
        self.http = aiohttp.ClientSession()
        self.startup_refresh: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def log_path(self) -> Path:
        return self.folder / f"{self.name}-{self.starts}.log"

    def log_tail(self, lines: int = 30) -> str:
        path = self.log_path()
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    async def start(self) -> None:
        """Start the process and wait until discord.py is ready and its start-up refresh and queue are done."""
        self.starts += 1
        control_file = self.folder / f"{self.name}-{self.starts}.port"
        keep = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
        env = {**keep, "PYTHONPATH": str(REPO), **self.environment, "BOT_CONTROL_FILE": str(control_file)}
        with self.log_path().open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fakes.bot_process", cwd=self.folder, env=env, stdout=log, stderr=log
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ANNOUNCE_TIMEOUT
        while not control_file.exists():
            if self.process.returncode is not None or loop.time() > deadline:
                raise AssertionError(f"{self.name} never announced its control port:\n{self.log_tail()}")
            await asyncio.sleep(0.05)
        self.control_port = int(control_file.read_text())
        self.startup_refresh = (await self.call("GET", "/ready", timeout=READY_TIMEOUT + MARGIN))["startup_refresh"]

    async def run_until_exit(self, timeout: float = ANNOUNCE_TIMEOUT) -> int:
        """Start a process that is expected to refuse to run: its exit code."""
        self.starts += 1
        keep = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
        env = {**keep, "PYTHONPATH": str(REPO), **self.environment, "BOT_CONTROL_FILE": str(self.folder / "none")}
        with self.log_path().open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fakes.bot_process", cwd=self.folder, env=env, stdout=log, stderr=log
            )
        try:
            return await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(f"{self.name} kept running:\n{self.log_tail()}") from None

    async def call(self, method: str, path: str, *, timeout: float = QUICK_CALL, **params: Any) -> dict[str, Any]:
        """One control call; a failure says which, what the bot answered and its log's tail."""
        url = f"http://127.0.0.1:{self.control_port}{path}"
        query = {key: str(value) for key, value in params.items()}
        try:
            async with self.http.request(
                method, url, params=query, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                body = await response.json()
        except TimeoutError:
            answer = f"{self.name} {method} {path}: no answer in {timeout:.0f} s"
            raise AssertionError(f"{answer}\n{self.log_tail()}") from None
        if response.status != 200:
            raise AssertionError(f"{self.name} {method} {path}: {response.status} {body}\n{self.log_tail()}")
        return dict(body)

    async def settle(self) -> dict[str, Any]:
        return await self.call("POST", "/settle", timeout=SETTLE_TIMEOUT + MARGIN, events=1)

    async def refresh(self) -> dict[str, Any]:
        return await self.call("POST", "/refresh", timeout=REFRESH_TIMEOUT + MARGIN)

    async def kill(self) -> None:
        """SIGKILL: none of the bot's shutdown runs; the kernel drops its sockets and database connections."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self.process = None

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.kill()
        await self.http.close()


class ShardedWorld:
    def __init__(self, folder: Path, postgres_server: str) -> None:
        self.folder = folder
        self.fake = FakeWorld(folder / "unused.sqlite3", postgres_server=postgres_server)
        self.servers: list[Server] = []
        self.bots: list[BotChild] = []

    async def start(self) -> None:
        fake = self.fake
        await fake.start(start_bot=False)
        self.servers.append(Server(SEED.guild_id, SEED.gold_role, SEED.bronze_role, SEED.log_channel))
        for index, guild_id in enumerate([guild_on(0, 0), guild_on(1, 0), guild_on(1, 1)], start=1):
            base = 731000000000000000 + index * 100
            server = Server(guild_id, base + 1, base + 2, base + 3)
            guild = fake.discord.add_guild(guild_id, name=f"Server {index}", owner_id=SEED.owner_id)
            guild.add_role(server.gold, "Gold Patron", position=10)
            guild.add_role(server.bronze, "Bronze Patron", position=9)
            guild.add_text_channel(server.log_channel, name="patreon-log")
            guild.add_member(SEED.owner_id, username="creator")
            for name, discord_id in MEMBERS.items():
                guild.add_member(discord_id, username=name)
            self.servers.append(server)
        self.erins_server = next(s for s in self.servers if s.shard == 1)
        fake.discord.guild(self.erins_server.guild_id).add_member(ERIN, username="erin")
        fake.patreon.add_user(user_id=ERIN_PATREON, full_name="Erin", discord_id=None)
        assert sorted(s.shard for s in self.servers) == [0, 0, 1, 1]
        await self._seed_store()
        ports = [fake.web_port, free_port()]
        for shard, port in enumerate(ports):
            environment = fake.environment() | {
                "SHARD_COUNT": str(SHARD_COUNT),
                "SHARD_IDS": str(shard),
                "PORT": str(port),
                "PUBLIC_URL": fake.bot_url,  # the load balancer's address: process 0's port
                "ALLOWED_GUILD_IDS": ",".join(str(s.guild_id) for s in self.servers),
                "REFRESH_INTERVAL_MINUTES": "100000",
                "BOT_LEASE_SECONDS": repr(LEASE_SECONDS),
            }
            self.bots.append(BotChild(self.folder, f"shard{shard}", environment, port))
        await asyncio.gather(*(bot.start() for bot in self.bots))

    async def _seed_store(self) -> None:
        store = await self.fake.open_store()
        try:
            for server in self.servers:
                await store.map_tier_role(server.guild_id, SEED.gold_tier, server.gold)
                await store.map_tier_role(server.guild_id, SEED.bronze_tier, server.bronze)
                await store.save_settings(  # Erin's server sends the opt-in welcome DM
                    GuildSettings(
                        guild_id=server.guild_id, enabled=True, log_channel_id=server.log_channel,
                        dm_welcome=server is self.erins_server,
                    )
                )
            for discord_id in MEMBERS.values():
                await store.save_link(discord_id, PATREON_IDS[discord_id], None, "oauth")
        finally:
            await store.close()

    async def close(self) -> None:
        for bot in self.bots:
            await bot.close()
        await self.fake.close()

    # -- what happens at Patreon ------------------------------------------------------------------------

    def pledge(self, patreon_id: str, tier_id: str | None) -> None:
        """The patron now pays for `tier_id` (None: a former patron, who paid long ago)."""
        now = datetime.now(UTC)
        if tier_id is None:
            self.fake.patreon.set_membership(
                patreon_id, patron_status="former_patron", tier_ids=[], last_charge_status="Paid",
                last_charge_date=now - timedelta(days=90),
            )
            return
        self.fake.patreon.set_membership(
            patreon_id, patron_status="active_patron", tier_ids=[tier_id], last_charge_status="Paid",
            last_charge_date=now - timedelta(days=1),
        )

    async def webhook_to(self, bot: BotChild, patreon_id: str) -> None:
        """Patreon's signed delivery (the campaign's one webhook) reaches this process: the load balancer chose it."""
        status, text = await self.fake.patreon.send_webhook(
            "members:pledge:update", patreon_id, uri=f"{bot.url}/patreon/webhook", secret=self.fake.webhook.secret
        )
        assert 200 <= status < 300, (status, text)

    async def link_erin(self) -> tuple[int, str]:
        """Erin runs /patreon link in her server (shard 1, so process 1 answers), and her browser follows the
        button to the public URL: the sign-in and both OAuth callbacks land on process 0."""
        fake = self.fake
        fake.patreon.next_authorizing_user = ERIN_PATREON
        interaction = await fake.discord.invoke_slash(self.erins_server.guild_id, ERIN, "patreon", ["link"])
        await interaction.wait_response(timeout=30)
        url = button_url(interaction.components)
        assert url.startswith(fake.bot_url), url
        browser = Browser(fake.discord.base_url, "erin")
        try:
            return await browser.open(url)
        finally:
            await browser.close()

    # -- what Discord saw ------------------------------------------------------------------------------

    def roles(self, server: Server, discord_id: int) -> set[str]:
        held = self.fake.discord.guild(server.guild_id).member(discord_id).role_ids
        names = {server.gold: "gold", server.bronze: "bronze"}
        return {names[role] for role in held if role in names}

    def dm_posts(self, user_id: int) -> list[str]:
        """The text of every DM Discord accepted for this user, one per accepted POST (a resend with the same
        nonce counts again, though Discord makes no second message of it)."""
        dms = self.fake.discord.dm_channels
        channels = {channel_id for channel_id, channel in dms.channels.items() if channel.user_id == user_id}
        return [
            str(call.json.get("content", "")) if isinstance(call.json, dict) else ""
            for call in self.fake.discord.calls_matching("POST", r"^/channels/\d+/messages$")
            if call.status < 300 and int(call.path.split("/")[2]) in channels
        ]

    async def dm_states(self, user_id: int) -> list[tuple[str, str]]:
        """(kind, state) of each DM queued for this user, from the shared database."""
        store = await self.fake.open_store()
        try:
            return [(kind, state) for _guild, _user, kind, state in await store.dm_states(user_id)]
        finally:
            await store.close()

    def log_lines(self, server: Server) -> list[str]:
        """What the bot posted to the server's log channel."""
        return [str(message.get("content", "")) for message in self.fake.discord.messages(server.log_channel)]

    def role_calls(self) -> Counter[tuple[int, int, str, int]]:
        """Every member-role change Discord accepted: (guild, member, PUT or DELETE, role) → how many times."""
        counts: Counter[tuple[int, int, str, int]] = Counter()
        for method in ("PUT", "DELETE"):
            for call in self.fake.discord.calls_matching(method, r"^/guilds/\d+/members/\d+/roles/\d+$"):
                if call.status < 300:
                    _, _, guild, _, member, _, role = call.path.split("/")
                    counts[(int(guild), int(member), method, int(role))] += 1
        return counts
