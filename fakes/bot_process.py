"""The real bot in a process of its own, so a test can `kill -9` it: `python -m fakes.bot_process`.

Why a process: a crash must lose nothing, and only the kernel ends a bot without running any of its shutdown code
(no `close()`, no `finally`, no last commit; sockets, the SQLite connection and the database lock dropped as they
are). The parent (tests/convergence/) runs the fakes and starts this with the world's .env in the environment, plus:

- `BOT_CONTROL_FILE`: where to write the loopback port of the small control API below (the parent's only window
  into the bot), once it listens;
- `BOT_CLOCK_OFFSET_SECONDS`: where the injected clock starts (real time plus this offset, as `fakes.world.Clock`);
- `BOT_LEASE_SECONDS` (optional): how long this process's claims on queued work hold (bot/store/leases.py), so a
  test can show a killed process's claims taken over within seconds instead of a deployment's minute;
- `BOT_SHARD_LOCK_WAIT` (optional): how long a start waits for its shards to be free (bot/discord_io/runner.py).

The .env may name a PostgreSQL database (`DATABASE_URL`, then no lock file: several processes share it) and shards
(`SHARD_COUNT`, `SHARD_IDS`): the bot is built as `python -m bot` builds it (`make_bot`), so two of these on one
database with one shard each are two processes of one sharded bot (tests/shards/).

Control API (loopback only, no secrets in it):
`GET /ready` waits until discord.py is ready and the start-up refresh and what it queued are done;
`POST /clock?offset=<seconds>` moves the clock; `POST /refresh` runs one refresh and answers its report;
`GET /pending-events` answers the Patreon users whose webhook events are pending; `GET /cached-roles?guild=&user=`
answers a member's roles as discord.py's cache has them (null: not cached); `GET /guilds` answers the servers
discord.py holds (this process's shards') and the shards it runs;
`POST /settle?events=0|1` waits until no role job of this process's servers (and, with `events=1`, no webhook
event) is pending, even one waiting out a back-off, and answers the queue's counts; `GET /queue` answers them at
once (`pending_jobs` counts this process's servers, `pending_jobs_elsewhere` the other shards').
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

from bot.__main__ import keep_secrets_out_of_logs
from bot.config import Config, load_config
from bot.discord_io.client import PatronBot, make_bot
from bot.discord_io.endpoint import point_discord_at
from bot.discord_io.log_redaction import secrets_of
from bot.discord_io.runner import SHARD_LOCK_WAIT, setup_logging, shards_held
from bot.store import Store
from bot.store.files import exclusive_use
from bot.store.leases import Claimer
from bot.store.opening import open_configured
from bot.store.token_cipher import TokenCipher
from fakes.world import Clock

#: Each wait's own deadline, in seconds: generous, as CI runs the whole suite on 2 loaded cores, and each under the
#: parent's (tests/convergence/process_world.py adds a margin), so a wait that runs out answers 504 with what it
#: waited for instead of the parent's connection timing out without a word.
READY_WAITS = (("discord.py ready", 90.0), ("the start-up refresh", 120.0), ("the start-up queue", 120.0))
READY_TIMEOUT = sum(seconds for _what, seconds in READY_WAITS)
SETTLE_TIMEOUT = 150.0
REFRESH_TIMEOUT = 150.0


async def queue_counts(bot: PatronBot) -> dict[str, int]:
    """The shared database's queues as this process sees them: its own servers' jobs apart from the others'."""
    store, shards = bot.services.store, bot.config.shards
    events = await store.webhook_event_counts()
    pending = await store.pending_role_jobs()
    return {
        "pending_jobs": sum(1 for job in pending if shards.owns(job.guild_id)),
        "pending_jobs_elsewhere": sum(1 for job in pending if not shards.owns(job.guild_id)),
        "failed_jobs": sum(1 for job in await store.failed_role_jobs() if shards.owns(job.guild_id)),
        "pending_events": int(events.get("pending", 0)),
        "failed_events": int(events.get("failed", 0)),
    }


async def settle(bot: PatronBot, *, events: bool, timeout: float = SETTLE_TIMEOUT) -> dict[str, int]:
    """Until nothing is due, running or waiting out a back-off (the workers' own `wait_idle` skips back-offs).

    One deadline for the whole wait (each worker's wait gets what is left of it), so the answer always comes
    within `timeout`, and a timeout says which signal never came: a worker that stayed busy, or work still queued.
    """
    services = bot.services
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    async def idle() -> None:
        for worker in (services.webhook_applier, services.jobs):
            try:
                await worker.wait_idle(max(0.0, deadline - loop.time()))
            except TimeoutError as error:
                counts = await queue_counts(bot)
                raise TimeoutError(f"{worker.name} stayed busy for {timeout:.0f} s: {counts}") from error

    while True:
        await idle()
        counts = await queue_counts(bot)
        if counts["pending_jobs"] == 0 and (not events or counts["pending_events"] == 0):
            await idle()  # what the last pass queued (a job from an event) is done too
            return await queue_counts(bot)
        if loop.time() > deadline:
            raise TimeoutError(f"work still queued (or backing off) after {timeout:.0f} s: {counts}")
        await asyncio.sleep(0.02)


def announce_control_port(path: Path, port: int) -> None:
    """Where the parent finds the control API: a port the kernel chose, so no other process can hold it."""
    partial = path.with_suffix(".partial")
    partial.write_text(str(port))
    partial.replace(path)


def control_app(bot: PatronBot, clock: Clock) -> web.Application:
    async def ready(_request: web.Request) -> web.Response:
        """Each wait has its own deadline, together under the parent's, so a start that hangs says where."""
        waits = {
            "discord.py ready": bot.wait_until_ready,
            "the start-up refresh": bot.services.scheduler.first_run_done.wait,
            "the start-up queue": lambda: settle(bot, events=False, timeout=READY_WAITS[2][1] - 1),
        }
        for what, seconds in READY_WAITS:
            try:
                await asyncio.wait_for(waits[what](), timeout=seconds)
            except TimeoutError as error:
                detail = f": {error}" if str(error) else ""
                return web.json_response({"error": f"{what} not done in {seconds:.0f} s{detail}"}, status=504)
        report = bot.services.refresh.last_report  # the start-up refresh's: a failed one is done too
        refreshed = {"ok": report.ok, "detail": report.detail} if report is not None else None
        return web.json_response({"ok": True, "startup_refresh": refreshed})

    async def set_clock(request: web.Request) -> web.Response:
        clock.offset = timedelta(seconds=float(request.query["offset"]))
        for worker in (bot.services.jobs, bot.services.webhook_applier):
            worker.wake()  # what waited out a back-off by the old clock may be due now
        return web.json_response({"ok": True})

    async def refresh(_request: web.Request) -> web.Response:
        try:
            report = await asyncio.wait_for(bot.services.refresh.run("convergence test"), REFRESH_TIMEOUT)
        except TimeoutError:
            return web.json_response({"error": f"the refresh did not finish in {REFRESH_TIMEOUT:.0f} s"}, status=504)
        return web.json_response({"ok": report.ok, "detail": report.detail})

    async def settle_view(request: web.Request) -> web.Response:
        events = request.query.get("events", "1") == "1"
        try:
            return web.json_response(await settle(bot, events=events))
        except TimeoutError as error:
            return web.json_response({"error": str(error), **await queue_counts(bot)}, status=504)

    async def queue(_request: web.Request) -> web.Response:
        return web.json_response(await queue_counts(bot))

    async def pending_events(_request: web.Request) -> web.Response:
        """The Patreon users whose webhook events are still pending (not applied yet, or retrying)."""
        users = await bot.services.store.pending_webhook_patreon_ids(datetime(9999, 1, 1, tzinfo=UTC))
        return web.json_response({"patreon_ids": sorted(users)})

    async def cached_roles(request: web.Request) -> web.Response:
        """The member's roles in discord.py's own cache (no overlay of the bot's writes); null when not cached."""
        guild = bot.get_guild(int(request.query["guild"]))
        member = guild.get_member(int(request.query["user"])) if guild is not None else None
        roles = None if member is None else sorted(role.id for role in member.roles if not role.is_default())
        return web.json_response({"roles": roles})

    async def guilds(_request: web.Request) -> web.Response:
        shards = bot.config.shards
        held = sorted(guild.id for guild in bot.guilds)
        return web.json_response({"guilds": [str(g) for g in held], "shard_ids": list(shards.ids),
                                  "shard_count": shards.count})

    app = web.Application()
    app.router.add_get("/ready", ready)
    app.router.add_get("/guilds", guilds)
    app.router.add_post("/clock", set_clock)
    app.router.add_post("/refresh", refresh)
    app.router.add_post("/settle", settle_view)
    app.router.add_get("/queue", queue)
    app.router.add_get("/cached-roles", cached_roles)
    app.router.add_get("/pending-events", pending_events)
    return app


async def serve() -> int:
    config = load_config(dict(os.environ), env_file=None)
    keep_secrets_out_of_logs(secrets_of(config))
    setup_logging(config.log_level)
    clock = Clock()
    clock.offset = timedelta(seconds=float(os.environ.get("BOT_CLOCK_OFFSET_SECONDS", "0")))
    # The SQLite file's lock, as `python -m bot` takes it; PostgreSQL is shared by design (shards).
    with contextlib.nullcontext() if config.database_url else exclusive_use(config.database_path):
        cipher = TokenCipher.from_setting(config.token_encryption_key) if config.token_encryption_key else None
        store = await open_configured(config.database_url, config.database_path, cipher)
        try:
            wait = float(os.environ.get("BOT_SHARD_LOCK_WAIT", SHARD_LOCK_WAIT))
            async with shards_held(store, config, wait) as refusal:
                if refusal is not None:  # as `python -m bot` refuses it: exit code 2 and one line
                    print(f"error: {refusal}", file=sys.stderr)
                    return 2
                await run_bot(config, store, clock)
        finally:
            await store.close()
    return 0


async def run_bot(config: Config, store: Store, clock: Clock) -> None:
    point_discord_at(config.discord_base_url)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        lease = os.environ.get("BOT_LEASE_SECONDS")
        claimer = Claimer(lease=timedelta(seconds=float(lease)), shards=config.shards) if lease else None
        bot = make_bot(config, store, session, clock, claimer=claimer, guild_ready_timeout=0.05)
        services = bot.services
        # Retries back off in milliseconds instead of seconds, as FakeWorld.fast_retries does in-process.
        services.patreon.retry_base_delay = 0.01
        services.jobs.retry_base = 0.05
        services.webhook_applier.retry_base = 0.05
        # With back-offs that short, 12 attempts span 100 s instead of a deployment's hours: more attempts, so a
        # test's Patreon outage can't use up an event's attempts while a real one of that length wouldn't.
        services.webhook_applier.max_attempts = 40
        services.webhook_applier.retry_cap = 2.0
        services.jobs.retry_cap = 2.0
        runner = web.AppRunner(control_app(bot, clock), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        announce_control_port(Path(os.environ["BOT_CONTROL_FILE"]), runner.addresses[0][1])
        async with bot:
            await bot.start(config.discord_token)


def main() -> None:
    """Exit whatever happened: a start that failed (its web port taken, say) left the store's thread and
    discord.py's behind, and a process they keep alive answers nothing, so the parent couldn't tell it from a
    hang (it waited out its HTTP timeout, then replayed the example into a flaky failure)."""
    code = 1
    try:
        code = asyncio.run(serve())
    except BaseException:
        traceback.print_exc()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
