"""The fakes in this process, the real bot in a child (fakes/bot_process.py) that can be SIGKILLed and started
again on the same SQLite file. Each hypothesis example gets a fresh one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from bot.domain.guild_settings import GuildSettings, RoleMode
from bot.store import Store
from fakes.bot_process import READY_TIMEOUT, REFRESH_TIMEOUT, SETTLE_TIMEOUT
from fakes.discord import RateLimits
from fakes.discord.rate_limits import Window
from fakes.world import PATREON_IDS, SEED, Clock, FakeWorld
from tests.convergence.oracle import Server

REPO = Path(__file__).resolve().parents[2]
MEMBERS = (SEED.alice, SEED.bob, SEED.carol, SEED.dave)
NAMES = {SEED.alice: "alice", SEED.bob: "bob", SEED.carol: "carol", SEED.dave: "dave"}
ARTIST_ROLE = 730000000000000011  # a second hand-given role
FORMER_ROLE = 730000000000000012
FREE_ROLE = 730000000000000013
TRIAL_ROLE = 730000000000000014
LIFETIME_ROLE = 730000000000000015
HAND_ROLES = (SEED.vip_role, ARTIST_ROLE)
#: The parent waits this much longer than the child's own deadline for a call, so the child's 504 (which says what
#: it waited for) always comes first; a call with no deadline of its own in the child gets QUICK_CALL.
MARGIN = 60.0
QUICK_CALL = 60.0
#: How long a started bot may take to announce its control port (it imports discord.py first, on a loaded machine).
ANNOUNCE_TIMEOUT = 120.0
#: A taken web port is waited for this long before each start, and a start that lost the race tried this often.
PORT_WAIT = 60.0
PORT_ATTEMPTS = 5
#: How long a bot whose control API dropped /ready may take to exit before it counts as broken, not exiting.
EXIT_GRACE = 15.0


def port_is_free(port: int) -> bool:
    """Whether a listener could bind the port now (with SO_REUSEADDR, as asyncio's server does)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listeners_on(port: int) -> str:
    """`ss`'s line for whoever listens on the port now (which process took it), or why it can't say."""
    try:
        found = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as error:
        return f"(ss failed: {error})"
    return found.stdout.strip() or "(nobody listens now)"


def scaled_real_limits(window_seconds: float) -> RateLimits:
    """Discord's real limits with only the member-role window shortened (10 calls per window, fixed, PUT and
    DELETE in one bucket, every other route and the global limit as they are)."""
    return replace(RateLimits.real(), member_role=Window(10, window_seconds, fixed=True))


class ProcessWorld:
    def __init__(self, folder: Path, server: Server, rate_limits: RateLimits) -> None:
        self.folder = folder
        self.server = server
        self.fake = FakeWorld(folder / "bot.sqlite3", rate_limits=rate_limits)
        self.fake.extra_environment = {"REFRESH_INTERVAL_MINUTES": "100000", "LOG_LEVEL": "INFO"}
        self.process: asyncio.subprocess.Process | None = None
        self.control_port = 0
        self.http: aiohttp.ClientSession | None = None
        self.starts = 0
        self.port_retries = 0
        #: The last start's refresh report ({"ok", "detail"}), as /ready answered it.
        self.startup_refresh: dict[str, Any] | None = None
        #: Who listened on the web port when a start lost it (`ss -ltnp`), for the failure's note.
        self.port_clashes: list[str] = []
        self.exit_code: int | None = None

    @property
    def clock(self) -> Clock:
        return self.fake.clock

    async def start(self) -> None:
        await self.fake.start(start_bot=False)
        guild = self.fake.guild
        guild.add_role(ARTIST_ROLE, "Artist", position=7)
        guild.add_role(FORMER_ROLE, "Former Patron", position=6)
        guild.add_role(FREE_ROLE, "Free Member", position=4)
        guild.add_role(TRIAL_ROLE, "Trial", position=3)
        guild.add_role(LIFETIME_ROLE, "Supporter", position=2)
        await self._seed_store()
        self.http = aiohttp.ClientSession()  # each call has its own timeout (`call`)
        await self.spawn()

    async def _seed_store(self) -> None:
        server = self.server
        store = await Store.open(self.fake.db_path)
        try:
            for tier_id, roles in server.tier_roles.items():
                for role in roles:
                    await store.map_tier_role(SEED.guild_id, tier_id, role)
            await store.save_settings(
                GuildSettings(
                    guild_id=SEED.guild_id,
                    enabled=True,
                    log_channel_id=SEED.log_channel,
                    decline_grace_days=server.grace_days,
                    keep_until_paid_through=server.keep_until_paid_through,
                    role_mode=RoleMode.HIGHEST if server.highest_only else RoleMode.STACK,
                    free_member_role_id=server.free_role,
                    free_trial_role_id=server.trial_role,
                    former_patron_role_id=server.former_role,
                    lifetime_role_id=server.lifetime_role,
                    lifetime_threshold_cents=server.lifetime_cents,
                )
            )
            for discord_id in MEMBERS:  # everyone starts linked by hand; the machine unlinks and relinks
                await store.save_link(discord_id, PATREON_IDS[discord_id], SEED.guild_id, "admin")
        finally:
            await store.close()

    async def spawn(self) -> None:
        """Start a bot on the database and wait until its start-up refresh and queue are done.

        The web port must stay the same (the fakes' OAuth redirects and the webhook name it), but other test runs
        on this machine pick ports from the same range and may hold it for a while: the start waits until the port
        can be bound (as the real entry point checks it), and a start that still lost the race is tried again.
        A bot that doesn't release its port fails them all, saying so.
        """
        for attempt in range(1, PORT_ATTEMPTS + 1):
            await self._wait_for_port()
            if await self._start_once():
                return
            if "address already in use" not in self.log_tail(10) or attempt == PORT_ATTEMPTS:
                clashes = f"; the port's listeners at each clash: {self.port_clashes}" if self.port_clashes else ""
                raise AssertionError(f"the bot exited with {self.exit_code}{clashes}: {self.log_tail()}")
            self.port_retries += 1
            self.port_clashes.append(listeners_on(self.fake.web_port))
            clash = f"web port {self.fake.web_port} taken at start {self.starts}: {self.port_clashes[-1]}"
            print(clash, file=sys.stderr)
            await asyncio.sleep(1.0)

    async def _wait_for_port(self, timeout: float = PORT_WAIT) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not port_is_free(self.fake.web_port):
            if loop.time() > deadline:
                raise AssertionError(f"the bot's web port {self.fake.web_port} stayed taken for {timeout:.0f} s")
            self.port_retries += 1
            await asyncio.sleep(0.5)

    async def _start_once(self) -> bool:
        """True once the bot is ready; False when it exited first."""
        self.starts += 1
        self.control_file = self.folder / f"control-{self.starts}.port"
        keep = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
        env = {
            **keep,
            "PYTHONPATH": str(REPO),
            **self.fake.environment(),
            "BOT_CONTROL_FILE": str(self.control_file),
            "BOT_CLOCK_OFFSET_SECONDS": repr(self.clock.offset.total_seconds()),
        }
        with (self.folder / f"bot-{self.starts}.log").open("wb") as log:  # the child keeps its own copy open
            process = self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fakes.bot_process", cwd=self.folder, env=env, stdout=log, stderr=log
            )
        exited = asyncio.ensure_future(process.wait())
        ready = asyncio.ensure_future(self._wait_ready())
        try:
            done, _ = await asyncio.wait({exited, ready}, return_when=asyncio.FIRST_COMPLETED)
            if ready in done and ready.exception() is not None and exited not in done:
                # The control API dropped /ready: the bot is exiting (a failed start), or it broke. Which one
                # decides whether the start is tried again, so give its exit a moment to show.
                await asyncio.wait({exited}, timeout=EXIT_GRACE)
            if exited.done():
                self.exit_code = process.returncode
                self.process = None
                return False
            ready.result()
            return True
        finally:
            for task in (exited, ready):
                if not task.done():
                    task.cancel()

    async def _wait_ready(self) -> None:
        assert self.http is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ANNOUNCE_TIMEOUT
        while not self.control_file.exists():
            if loop.time() > deadline:
                raise AssertionError(f"the bot never announced its control port in {ANNOUNCE_TIMEOUT:.0f} s")
            await asyncio.sleep(0.05)
        self.control_port = int(self.control_file.read_text())
        answer = await self.call("GET", "/ready", timeout=READY_TIMEOUT + MARGIN)
        self.startup_refresh = answer.get("startup_refresh")

    def log_tail(self, lines: int = 40) -> str:
        path = self.folder / f"bot-{self.starts}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def call(self, method: str, path: str, *, timeout: float = QUICK_CALL, **params: Any) -> dict[str, Any]:
        """One control call; a failure or a timeout says which call, what the bot answered and its log's tail."""
        assert self.http is not None
        url = f"http://127.0.0.1:{self.control_port}{path}"
        query = {k: str(v) for k, v in params.items()}
        try:
            async with self.http.request(
                method, url, params=query, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                body = await response.json()
        except TimeoutError:
            raise AssertionError(f"{method} {path}: no answer in {timeout:.0f} s\n{self.log_tail()}") from None
        if response.status != 200:
            raise AssertionError(f"{method} {path}: {response.status} {body}\n{self.log_tail()}")
        return dict(body)

    async def kill(self) -> None:
        """SIGKILL: nothing of the bot's shutdown runs; the kernel closes its sockets, database and lock."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self.process = None

    async def restart(self) -> None:
        await self.kill()
        await self.spawn()

    async def advance(self, hours: int) -> None:
        self.clock.advance(hours=hours)
        await self.call("POST", "/clock", offset=self.clock.offset.total_seconds())

    async def settle(self, *, events: bool = True) -> dict[str, Any]:
        return await self.call("POST", "/settle", timeout=SETTLE_TIMEOUT + MARGIN, events=1 if events else 0)

    async def refresh(self) -> dict[str, Any]:
        return await self.call("POST", "/refresh", timeout=REFRESH_TIMEOUT + MARGIN)

    async def queue(self) -> dict[str, Any]:
        return await self.call("GET", "/queue")

    async def pending_event_users(self) -> set[str]:
        return set((await self.call("GET", "/pending-events"))["patreon_ids"])

    async def bot_has_seen_roles(self, discord_id: int, timeout: float = 60.0) -> None:
        """Until the bot's member cache shows this member's roles as the fake Discord has them: a moderator's edit
        reaches the bot by the gateway, and a refresh (or a job) planned before it arrives plans from the old roles
        (the next refresh would fix that, but the oracle holds the bot to having seen it). A member the bot doesn't
        cache (unlinked, holding none of its grants) is never planned, so there is nothing to wait for."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            cached = (await self.call("GET", "/cached-roles", guild=SEED.guild_id, user=discord_id))["roles"]
            actual = sorted(self.fake.roles_of(discord_id))
            if cached is None or cached == actual:
                return
            if loop.time() > deadline:
                raise AssertionError(
                    f"the bot's cache still shows {discord_id} with {cached}, Discord {actual}, after {timeout:.0f} s"
                )
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.kill()
        if self.http is not None:
            await self.http.close()
        await self.fake.close()
