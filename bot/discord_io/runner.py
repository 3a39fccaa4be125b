"""Run the real bot process: open the store and HTTP session, start discord.py, close it all cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from datetime import datetime

import aiohttp
import discord

from bot.config import Config
from bot.discord_io.client import PatronBot
from bot.discord_io.endpoint import point_discord_at
from bot.store import Store
from bot.sync.reconcile import utc_now

log = logging.getLogger(__name__)


def setup_logging(level: str) -> None:
    discord.utils.setup_logging(level=getattr(logging, level), root=True)


async def run_bot(config: Config, clock: Callable[[], datetime] = utc_now) -> int:
    """Returns the process exit code: 0 on a clean stop, 2 when Discord rejects the token."""
    if not config.uses_real_discord:
        point_discord_at(config.discord_base_url)
    store = await Store.open(config.database_path)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            bot = PatronBot(config, store, session, clock)
            stopping = set()
            # Hosts stop processes with SIGTERM: close the Discord session and the web server cleanly.
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGTERM, lambda: stopping.add(asyncio.create_task(bot.close()))
            )
            async with bot:
                await bot.start(config.discord_token)
    except discord.LoginFailure:
        print("error: Discord rejected DISCORD_TOKEN (check the bot token in .env)", file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print(
            "error: enable Server Members Intent for the bot (Developer Portal → Bot → Privileged Gateway Intents)",
            file=sys.stderr,
        )
        return 2
    finally:
        await store.close()
    return 0
