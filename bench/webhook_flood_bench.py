"""Benchmark a charge day's webhook flood for one campaign under Patreon's real limits (run by hand).

    python -m bench.webhook_flood_bench [--flood 3000] [--members 5000] [--concurrency 50] [--verify-roles]

The bot runs here for real (PatronBot, web server, webhook receiver and applier, the durable role-job queue,
discord.py), the fakes in a child process (`bench.fakes_process`) with their defaults: Patreon's 100 requests per
2 s per client and 100 per minute per token. F linked active patrons move to another tier on fake Patreon, then
one signed `members:pledge:update` each is POSTed, C at a time. One creator token serves the campaign, so looked up
one by one the flood would take F/100 minutes; the bot answers it with listings (bot/sync/webhook_flood.py).

Printed: Patreon requests (look-ups and listing pages), 429s from the fake Patreon, flooded patrons whose stored
tiers are not Patreon's once every event is applied (with `--verify-roles` also members whose Discord roles are not
what the bot's policy gives, after the role calls drained at Discord's pace), and seconds from the first delivery
until every event is applied. Last line:
`RESULT patreon_calls=… http_429=… wrong=… flood=… applied_s=…`.

Measured (2 shared cores, December 2026): 3,000 deliveries into 5,000 patrons, two runs: 21 and 61 Patreon
requests (no look-up and 3 listings; 50 look-ups before the flood showed, then 1 listing), 0 x 429, 0 wrong,
every event applied 7.4 s and 7.2 s after the first delivery; one by one they would have been 3,000 look-ups at
100 a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot_runner import add_log_option, setup_logging, start_world
from bench.fakes_process import FakesProcess
from bench.seeding import WEBHOOK_SECRET, World
from fakes.patreon import sign


class FloodWorld(World):
    """The seeded bench world plus a flood: what the fakes process does for this bench."""

    async def flood(self, url: str, count: int, concurrency: int, rng_seed: int = 3) -> dict[str, Any]:
        """Move `count` active patrons to another tier, note the roles the policy then gives everyone, and POST one
        signed delivery per moved patron, `concurrency` at a time."""
        assert self.patreon is not None
        picked, state = self.move_active_patrons(count, rng_seed), self.patreon.campaign
        bodies = [self.patreon.render_member_webhook_body("members:pledge:update", user_id) for user_id in picked]
        for discord_id, actual, plan in await self.plans_now():
            self.expected[discord_id] = plan.final_roles(actual)
        gate, statuses = asyncio.Semaphore(concurrency), [0] * len(bodies)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
            started = time.monotonic()

            async def deliver(index: int, body: bytes) -> None:
                headers = {
                    "Content-Type": "application/json",
                    "X-Patreon-Event": "members:pledge:update",
                    "X-Patreon-Signature": sign(body, WEBHOOK_SECRET),
                    "User-Agent": "Patreon HTTP Robot",
                }
                async with gate, http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[index] = response.status

            await asyncio.gather(*(deliver(i, body) for i, body in enumerate(bodies)))
        self.flooded = {user_id: sorted(state.live_member_for(user_id).tier_ids) for user_id in picked}  # type: ignore[union-attr]
        accepted = sum(200 <= status < 300 for status in statuses)
        return {"sent": len(bodies), "accepted": accepted, "send_s": time.monotonic() - started}

    async def flooded_tiers(self) -> dict[str, list[str]]:
        """Each flooded patron's tiers at Patreon now: what the bot must have stored."""
        return self.flooded

    async def patreon_429(self) -> int:
        assert self.patreon is not None
        return self.patreon.http_429


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=3000, help="deliveries for one campaign (F), one per member")
    parser.add_argument("--members", type=int, default=5_000, help="patrons and guild members to seed")
    parser.add_argument("--concurrency", type=int, default=50, help="deliveries in flight at once (C)")
    parser.add_argument(
        "--verify-roles",
        action="store_true",
        help="also wait for the role calls (paced at Discord's 10 per 10 s per server: F tier changes take F/5 s) "
        "and check every member's Discord roles",
    )
    add_log_option(parser)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    fakes = FakesProcess(FloodWorld, name="bench-flood-fakes").start()
    with tempfile.TemporaryDirectory(prefix="webhook-flood-bench-") as tmp:
        try:
            return await measure(args, fakes, Path(tmp) / "bot.sqlite3")
        finally:
            fakes.stop()


async def measure(args: argparse.Namespace, fakes: FakesProcess, db_path: Path) -> int:
    print(f"seeding {args.members:,} linked patrons, starting the bot ...", flush=True)
    bot, _seed, startup_seconds = await start_world(fakes, args.members, db_path)
    try:
        assert bot.bot is not None
        url = f"http://127.0.0.1:{bot.bot.web_port}/patreon/webhook"
        print(f"  bot ready in {startup_seconds:.1f}s")
        await fakes.call("mark")
        started = time.monotonic()
        fired = await fakes.call("flood", url=url, count=args.flood, concurrency=args.concurrency)
        assert bot.store is not None
        applier, deadline = bot.services.webhook_applier, time.monotonic() + 1800
        while time.monotonic() < deadline and (  # every event applied, or answered by a listing
            applier.floods.active or (await bot.store.webhook_event_counts()).get("pending", 0)
        ):
            await asyncio.sleep(0.1)
        applied_s = time.monotonic() - started
        truth = await fakes.call("flooded_tiers")
        wrong = 0
        for patreon_id, tiers in truth.items():
            stored = await bot.store.get_membership(patreon_id)
            wrong += stored is None or sorted(stored.entitled_tier_ids) != tiers
        calls = await fakes.call("calls_since_mark")
        http_429 = await fakes.call("patreon_429")
        floods = bot.services.webhook_applier.floods
        pending = (await bot.store.webhook_event_counts()).get("pending", 0)
        if args.verify_roles:
            drain = await fakes.call("drain_estimate", role_calls=2 * fired["sent"])
            await bot.settle(timeout=max(600.0, drain["seconds"] + 120))
            verdict = await fakes.call("verify")
            print(f"  roles wrong on Discord after the drain: {verdict['mismatches']} of {verdict['checked']:,}")
            wrong += verdict["mismatches"]
    finally:
        await bot.close()
    patreon = calls["patreon"]
    lookups = sum(1 for _m, path, _s in patreon if "/members/" in path)
    pages = sum(1 for _m, path, _s in patreon if path.endswith("/members"))
    print(f"  {fired['accepted']:,} of {fired['sent']:,} deliveries accepted in {fired['send_s']:.1f}s")
    print(f"  Patreon requests: {len(patreon):,} ({lookups:,} look-ups, {pages:,} listing pages) for {fired['sent']:,}")
    print(f"  flood listings: {floods.listings}; look-ups deferred for their token's window: {floods.deferred_lookups}")
    print(f"  429 answers from fake Patreon: {http_429}")
    print(f"  wrong afterwards (stored tiers unlike Patreon's; with --verify-roles, roles too): {wrong}")
    print(f"  every event applied {applied_s:.1f}s after the first delivery ({pending} still pending); the role calls")
    print("  then drain at Discord's pace")
    print(
        f"RESULT patreon_calls={len(patreon)} http_429={http_429} wrong={wrong} "
        f"flood={fired['sent']} applied_s={applied_s:.1f}"
    )
    return 0 if http_429 == 0 and wrong == 0 and not pending and fired["accepted"] == fired["sent"] else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
