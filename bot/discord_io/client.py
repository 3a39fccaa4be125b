"""The discord.py Bot: builds the services, loads the cogs, syncs the slash commands.

Sharded (`SHARD_COUNT`, bot/domain/shards.py), `make_bot` builds an `AutoShardedBot` that runs this process's
`SHARD_IDS`: discord.py then holds only those shards' servers, so everything that walks `guilds` (the refresh's
plan, the linked-member requests, stats, weekly reports, kick sweeps) touches only the servers this process owns,
and role jobs for any other server wait in the shared database for the process that owns it. Every process
answers the web endpoints. What a process keeps in memory about the shared database (the connected campaigns and
their webhook secrets, the store's server-to-campaign bindings) is re-read every `SHARED_STATE_RELOAD_SECONDS`
when other processes share it, so a campaign connected, re-hooked or disconnected through another process's web
endpoint is served here within that time (no cross-process events: a periodic re-read is simple and bounded).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from datetime import datetime

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Config
from bot.discord_io.admin_lookup import DiscordAdminLookup
from bot.discord_io.roles import DiscordRoleGateway
from bot.guild_admin.service import AdminError
from bot.services import Services, build_services
from bot.store import Store
from bot.store.leases import Claimer
from bot.sync.reconcile import FOLLOWS_NOTHING, utc_now

log = logging.getLogger(__name__)

#: With other processes on the database: how often the connected campaigns (and bindings) are read again, and
#: how often the queue workers look for work another process handed over (no cross-process wake-up signal).
SHARED_STATE_RELOAD_SECONDS = 5.0
HANDED_WORK_POLL_SECONDS = 1.0

#: Loaded in this order by setup_hook; cogs.panel attaches `panel` to cogs.admin's group and registers the panel's
#: persistent view (`add_view`) and its unlink answers (`add_dynamic_items`), so old panels work after a restart.
EXTENSIONS = (
    "cogs.web_server",
    "cogs.patron",
    "cogs.admin",
    "cogs.panel",
    "cogs.member_events",
    "cogs.sync_tasks",
)


class PatronBot(commands.Bot):
    def __init__(
        self,
        config: Config,
        store: Store,
        session: aiohttp.ClientSession,
        clock: Callable[[], datetime] = utc_now,
        *,
        claimer: Claimer | None = None,
        **options: object,
    ) -> None:
        """`claimer`: how this process claims queued work (bot/store/leases.py; None: the configured shards, a
        fresh owner id and the default lease). `options` go to discord.py."""
        intents = discord.Intents.default()
        intents.members = True  # GUILD_MEMBER_ADD/UPDATE/REMOVE keep the linked members current
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            # Never the whole server: only the linked members, asked for by id (bot/discord_io/linked_members.py).
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,  # type: ignore[arg-type]
        )
        self.config = config
        self.role_gateway = DiscordRoleGateway(self)
        self.services: Services = build_services(
            config,
            store,
            session,
            self.role_gateway,
            clock,
            discord=self.role_gateway,
            claimer=claimer,
            admins=DiscordAdminLookup(self),
            members=DiscordAdminLookup(self),
        )
        self._member_loads: set[asyncio.Task[None]] = set()
        self._shared_state_reload: asyncio.Task[None] | None = None
        self.web_port: int | None = None
        self.tree.error(self.on_app_command_error)

    async def setup_hook(self) -> None:
        await self.services.campaigns.load()  # before the web server: webhooks need each campaign's secret
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        for guild_id in self.config.dev_guild_ids:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        await self.tree.sync()
        log.info("slash commands synced")
        self._warm_up_task = asyncio.create_task(self._load_campaign_tiers())
        if not self.config.shards.every_shard:
            self._shared_state_reload = asyncio.create_task(self._reload_shared_state(), name="shared state reload")

    async def _reload_shared_state(self) -> None:
        """What another process changed in the shared database (campaign_registry.reload says what), and the work
        it handed over: a role job for a server of this shard, or a webhook event whose process died before it
        applied it. A woken worker that finds nothing due costs one query and sleeps again."""
        polls_per_reload = round(SHARED_STATE_RELOAD_SECONDS / HANDED_WORK_POLL_SECONDS)
        for poll in itertools.count(1):
            await asyncio.sleep(HANDED_WORK_POLL_SECONDS)
            self.services.jobs.wake()
            self.services.webhook_applier.wake()
            if poll % polls_per_reload:
                continue
            try:
                await self.services.campaigns.reload()
            except Exception:  # a database hiccup: the next round tries again, the served state stays
                log.warning("could not re-read the connected campaigns; trying again soon", exc_info=True)

    async def close(self) -> None:
        if self._shared_state_reload is not None:
            self._shared_state_reload.cancel()
        await super().close()

    async def _load_campaign_tiers(self) -> None:
        """Tier titles and amounts for autocomplete, status and the policy; stale ones stay on failure."""
        if not self.services.campaigns.services():
            log.info("no campaign is connected yet; an admin connects one with /patreon-admin connect")
        for campaign in self.services.campaigns.services():
            try:
                tiers = await campaign.refresh_tiers()
            except Exception as error:  # start-up must survive Patreon being down
                log.warning("could not load campaign tiers at start-up: %s", error)
            else:
                log.info("campaign %s has %d tier(s)", campaign.known_campaign_id(), len(tiers))

    async def on_ready(self) -> None:
        log.info("ready as %s in %d server(s)", self.user, len(self.guilds))
        self._start_member_load(list(self.guilds))
        await self._check_ownership_rule()

    async def _check_ownership_rule(self) -> None:
        """Warn when the `.env` campaign's ownership rule (bot/sync/participation.py) leaves servers out: no
        ALLOWED_GUILD_IDS and two or more servers not bound to a connected campaign, so none of those acts. Not
        when there is no `.env` campaign, or at most one server is unbound (every other one follows its binding)."""
        if self.services.campaigns.env is None:
            log.info("no .env campaign: every server acts only for the campaign it is bound to")
            return
        if self.config.allowed_guild_ids:
            log.info(
                "the .env campaign acts in the %d server(s) of ALLOWED_GUILD_IDS", len(self.config.allowed_guild_ids)
            )
            return
        bound = await self.services.store.guild_bindings()
        unbound = [guild.id for guild in self.guilds if guild.id not in bound]
        if unbound and self.services.campaigns.env_connected:  # the one-server rule ended (campaign_registry.py)
            log.info(
                "the .env campaign was connected through OAuth, so only servers bound to it act for it; %d "
                "server(s) not bound to a campaign follow none until /patreon-admin connect there or ALLOWED_GUILD_IDS",
                len(unbound),
            )
        elif len(unbound) > 1:
            log.warning(
                "the bot is in %d servers not bound to a connected campaign and ALLOWED_GUILD_IDS is empty, so none "
                "of them acts for the .env campaign; list the creator's servers in ALLOWED_GUILD_IDS",
                len(unbound),
            )
        else:
            log.info("ALLOWED_GUILD_IDS is not needed: %d server(s) not bound to a connected campaign", len(unbound))

    async def on_guild_join(self, guild: discord.Guild) -> None:
        self._start_member_load([guild])

    def _start_member_load(self, guilds: list[discord.Guild]) -> None:
        for guild in guilds:  # before any await: a lookup from now on waits for its server's requests
            self.role_gateway.linked_members.expect(guild.id)
        task = asyncio.create_task(self._load_linked_members(guilds), name="load linked members")
        self._member_loads.add(task)
        task.add_done_callback(self._member_loads.discard)

    async def _load_linked_members(self, guilds: list[discord.Guild]) -> None:
        """After each READY (the member cache starts empty) or a join: ask Discord for each server's linked
        members and the holders of roles the bot gave, by id; slash commands are answered meanwhile."""
        for guild in guilds:
            try:
                wanted = await self._members_to_ask_for(guild.id)
                await self.role_gateway.load_linked_members(guild.id, wanted)
            except Exception:  # one server failing must not stop the others; lookups then happen on use
                log.exception("could not load the linked members of guild=%s", guild.id)

    async def _members_to_ask_for(self, guild_id: int) -> set[int]:
        """Only members whose link can matter in this server: the patrons of the campaign it follows, hand links
        made here, and holders of the bot's grants here. Not every link of the install: with 50 servers of 200
        links each that was 100 requests a server, about 90 minutes of gateway frames at start-up. Anyone else is
        asked for on first use (`LinkedMembers.member`). Before the campaign's first listing (no membership stored)
        any link counting here could be its patron, so all of those are asked for."""
        store = self.services.store
        grants = set(await store.users_with_grants(guild_id))
        key = await self.services.reconcile.campaign_key(guild_id)
        if key is None or (key != FOLLOWS_NOTHING and await store.membership_count(key) == 0):
            return set(await store.links_counting_in(guild_id)) | grants
        return await store.links_of_patrons_in(guild_id, key) | grants

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """One friendly line to the user, the traceback to the log, never the other way round."""
        original = getattr(error, "original", None)
        if isinstance(original, AdminError):
            message = f"❌ {original}"
        elif isinstance(error, app_commands.CheckFailure):
            message = str(error) or "You can't use this command here."
        else:
            log.error("command %s failed", interaction.command and interaction.command.qualified_name, exc_info=error)
            message = "Something went wrong on our side; nothing was changed. Please try again."
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)


class ShardedPatronBot(PatronBot, commands.AutoShardedBot):
    """PatronBot over discord.py's AutoShardedClient: `shard_ids` of `shard_count`, one gateway session each."""


def make_bot(
    config: Config,
    store: Store,
    session: aiohttp.ClientSession,
    clock: Callable[[], datetime] = utc_now,
    *,
    claimer: Claimer | None = None,
    **options: object,
) -> PatronBot:
    """The bot for this config: unsharded (one gateway session, every server), or this process's shards."""
    if config.shard_count is None:
        return PatronBot(config, store, session, clock, claimer=claimer, **options)
    shards = config.shards
    log.info("gateway: %s", shards.describe())
    return ShardedPatronBot(
        config, store, session, clock, claimer=claimer, shard_count=shards.count, shard_ids=list(shards.ids),
        **options,
    )
