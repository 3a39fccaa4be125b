"""The fakes in this process, the real bot in a child (fakes/bot_process.py) that can be SIGKILLed and started
again on the same SQLite file. Each hypothesis example gets a fresh one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from bot.domain.models import GuildSettings, RoleMode
from bot.store import Store
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
        # Above the child's own deadlines (fakes/bot_process.py), so a hang reports where it is.
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=150))
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

        A start that finds its web port taken is tried again (up to 5 times, half a second apart): other test
        runs share this machine and pick ports from the same range, and the port must stay the same, since the
        fakes' OAuth redirects and the webhook name it. A bot that doesn't release its port fails all 5.
        """
        for attempt in range(1, 6):
            if await self._start_once():
                return
            note_text = self.log_tail(3)
            if "address already in use" not in note_text or attempt == 5:
                raise AssertionError(f"the bot exited with {self.exit_code}: {self.log_tail()}")
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
            if ready in done:
                ready.result()
                return True
            self.exit_code = process.returncode
            self.process = None
            return False
        finally:
            for task in (exited, ready):
                if not task.done():
                    task.cancel()

    async def _wait_ready(self) -> None:
        assert self.http is not None
        while not self.control_file.exists():
            await asyncio.sleep(0.05)
        self.control_port = int(self.control_file.read_text())
        await self.call("GET", "/ready")

    def log_tail(self, lines: int = 40) -> str:
        path = self.folder / f"bot-{self.starts}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def call(self, method: str, path: str, **params: Any) -> dict[str, Any]:
        assert self.http is not None
        url = f"http://127.0.0.1:{self.control_port}{path}"
        async with self.http.request(method, url, params={k: str(v) for k, v in params.items()}) as response:
            body = await response.json()
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
        return await self.call("POST", "/settle", events=1 if events else 0)

    async def refresh(self) -> dict[str, Any]:
        return await self.call("POST", "/refresh")

    async def queue(self) -> dict[str, Any]:
        return await self.call("GET", "/queue")

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.kill()
        if self.http is not None:
            await self.http.close()
        await self.fake.close()
