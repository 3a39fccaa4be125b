"""The real bot in a process of its own, so a test can `kill -9` it: `python -m fakes.bot_process`.

Why a process: a crash must lose nothing, and only the kernel ends a bot without running any of its shutdown code
(no `close()`, no `finally`, no last commit; sockets, the SQLite connection and the database lock dropped as they
are). The parent (tests/convergence/) runs the fakes and starts this with the world's .env in the environment, plus:

- `BOT_CONTROL_FILE`: where to write the loopback port of the small control API below (the parent's only window
  into the bot), once it listens;
- `BOT_CLOCK_OFFSET_SECONDS`: where the injected clock starts (real time plus this offset, as `fakes.world.Clock`).

Control API (loopback only, no secrets in it):
`GET /ready` waits until discord.py is ready and the start-up refresh and what it queued are done;
`POST /clock?offset=<seconds>` moves the clock; `POST /refresh` runs one refresh and answers its report;
`GET /pending-events` answers the Patreon users whose webhook events are pending; `GET /cached-roles?guild=&user=`
answers a member's roles as discord.py's cache has them (null: not cached);
`POST /settle?events=0|1` waits until no role job (and, with `events=1`, no webhook event) is pending, even one
waiting out a back-off, and answers the queue's counts; `GET /queue` answers them at once.
"""

from __future__ import annotations

import asyncio
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
from bot.discord_io.client import PatronBot
from bot.discord_io.endpoint import point_discord_at
from bot.discord_io.log_redaction import secrets_of
from bot.discord_io.runner import setup_logging
from bot.store import Store
from bot.store.files import exclusive_use
from fakes.world import Clock

#: Each wait's own deadline, in seconds: generous, as CI runs the whole suite on 2 loaded cores, and each under the
#: parent's (tests/convergence/process_world.py adds a margin), so a wait that runs out answers 504 with what it
#: waited for instead of the parent's connection timing out without a word.
READY_WAITS = (("discord.py ready", 90.0), ("the start-up refresh", 120.0), ("the start-up queue", 120.0))
READY_TIMEOUT = sum(seconds for _what, seconds in READY_WAITS)
SETTLE_TIMEOUT = 150.0
REFRESH_TIMEOUT = 150.0


async def queue_counts(bot: PatronBot) -> dict[str, int]:
    store = bot.services.store
    events = await store.webhook_event_counts()
    return {
        "pending_jobs": len(await store.pending_role_jobs()),
        "failed_jobs": len(await store.failed_role_jobs()),
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

    app = web.Application()
    app.router.add_get("/ready", ready)
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
    with exclusive_use(config.database_path):
        store = await Store.open(config.database_path)
        try:
            await run_bot(config, store, clock)
        finally:
            await store.close()
    return 0


async def run_bot(config: Config, store: Store, clock: Clock) -> None:
    point_discord_at(config.discord_base_url)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        bot = PatronBot(config, store, session, clock, guild_ready_timeout=0.05)
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
