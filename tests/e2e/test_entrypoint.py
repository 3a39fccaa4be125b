"""`python -m bot` as a person runs it: a clear line on bad config, the demo, the real process on the fakes."""

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

import aiohttp

from fakes.world import SEED, FakeWorld, free_port, page_text

REPO = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    keep = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {**keep, "PYTHONPATH": str(REPO), **extra}


async def run(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_missing_setting_stops_startup_with_one_clear_line(tmp_path):
    code, stdout, stderr = await run(env=clean_env(), cwd=tmp_path)
    assert code == 2
    assert stderr.strip() == "config error: DISCORD_TOKEN is not set (see .env.example)"
    assert "Traceback" not in stderr + stdout


async def test_malformed_setting_is_named(tmp_path):
    (tmp_path / ".env").write_text(
        "DISCORD_TOKEN=x\nPATREON_CLIENT_ID=x\nPATREON_CLIENT_SECRET=x\nPATREON_REDIRECT_URI=https://a.example/patreon/callback\n"
        "PATREON_CREATOR_ACCESS_TOKEN=x\nPATREON_CREATOR_REFRESH_TOKEN=x\nPATREON_WEBHOOK_SECRET=x\nPORT=http\n"
    )
    code, _, stderr = await run(env=clean_env(), cwd=tmp_path)
    assert code == 2
    assert "PORT must be a whole number" in stderr and "Traceback" not in stderr


async def test_demo_walkthrough_runs_with_no_accounts(tmp_path):
    code, stdout, stderr = await run("demo", "--once", "--port", str(free_port()), env=clean_env(), cwd=tmp_path)
    assert code == 0, stderr
    assert "Your Patreon account is linked" in stdout
    assert "Her roles in the server now: @Gold Patron, @VIP" in stdout
    assert "✅ @Gold Patron: held" in stdout
    assert "webhook answered 202; her roles now: @Bronze Patron, @VIP" in stdout
    # Issue 10: no campaign at first; the owner connects, the webhook is registered; a second server on a second
    # campaign sees only its own patrons.
    assert "Nothing is connected yet" in stdout and "Creator's Server is connected to" in stdout
    assert "Patreon now has webhook" in stdout and "/patreon/webhook/" in stdout
    assert "Ben's roles in Eve's Server: @Eve Patron; in Creator's Server: none" in stdout
    assert "Alice (a patron of the first campaign) in Eve's Server: none" in stdout
    assert "Read your membership from Patreon just now." in stdout and "Every patron as CSV" in stdout
    assert "Dave's roles now: @Bronze Patron" in stdout  # issue 12, item 4: a comp in the demo
    assert "Gave @Gold Patron" in stderr  # the role change is logged


async def test_real_bot_process_links_a_patron_against_the_fakes(tmp_path):
    world = FakeWorld(tmp_path / "bot.sqlite3")
    await world.start(start_bot=False)
    await world.seed_store()
    env = clean_env(**world.environment())
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await world.discord.wait_for_ready_bots(timeout=30)
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"http://127.0.0.1:{world.web_port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        names = {command["name"] for command in world.discord.registered_commands()}
        assert {"patreon", "patreon-admin"} <= names
        status, html = await world.link(SEED.alice)
        assert status == 200, page_text(html)
        assert world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role}
        # The running bot has stored Alice's tokens and the creator's: none of them is readable on disk.
        issued = [*world.patreon.tokens.by_access, *world.patreon.tokens.by_refresh]
        on_disk = b"".join(
            path.read_bytes() for path in tmp_path.glob("bot.sqlite3*") if path.is_file() and path.suffix != ".key"
        )
        assert len(issued) >= 2 and [token for token in issued if token.encode() in on_disk] == []
        assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.glob("bot.sqlite3*")} == {
            name: 0o600
            for name in ("bot.sqlite3", "bot.sqlite3-wal", "bot.sqlite3-shm", "bot.sqlite3.key", "bot.sqlite3.lock")
        }
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        await world.close()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "Traceback" not in stderr.decode()
