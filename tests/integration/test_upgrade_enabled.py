"""Upgrading keeps configured servers managed: before `GuildSettings.enabled` existed every server with mappings was
managed, so migration 5 turns the switch on for each server the database already knew (issue 8, item 1
follow-up). Real SQLite files, built at the schema the previous version left them in."""

import json
import sqlite3

from bot.domain.guild_settings import GuildSettings
from bot.store import Store
from bot.store.codec import encode_settings
from bot.store.schema import MIGRATIONS

#: The schema version of the release before the `enabled` switch (migrations 1-4).
BEFORE_ENABLED = 4
MAPPED_ONLY, SETTINGS_ONLY, BOTH, TURNED_OFF = 11, 12, 13, 14


def old_settings(guild_id: int, **changes: object) -> str:
    """Settings as the previous version wrote them: every field it knew, no `enabled` key."""
    data = json.loads(encode_settings(GuildSettings(guild_id=guild_id, **changes)))  # type: ignore[arg-type]
    data.pop("enabled")
    return json.dumps(data)


def database_before_enabled(path) -> None:
    with sqlite3.connect(path) as raw:
        for version, script in enumerate(MIGRATIONS[:BEFORE_ENABLED], start=1):
            raw.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
        raw.executemany("INSERT INTO tier_roles VALUES (?, '2001', 900)", [(MAPPED_ONLY,), (BOTH,)])
        raw.executemany(
            "INSERT INTO guild_settings VALUES (?, ?, '2026-11-01T00:00:00+00:00')",
            [
                (SETTINGS_ONLY, old_settings(SETTINGS_ONLY, decline_grace_days=3)),
                (BOTH, old_settings(BOTH, log_channel_id=77)),
                # Written after the switch existed but before this migration: an admin's explicit "off" stands.
                (TURNED_OFF, encode_settings(GuildSettings(guild_id=TURNED_OFF, enabled=False))),
            ],
        )
    raw.close()


async def test_servers_configured_before_the_switch_are_turned_on_and_keep_their_settings(tmp_path):
    path = tmp_path / "bot.sqlite3"
    database_before_enabled(path)
    store = await Store.open(path)
    try:
        assert await store.schema_version() == len(MIGRATIONS) > BEFORE_ENABLED
        for guild_id in (MAPPED_ONLY, SETTINGS_ONLY, BOTH):
            assert (await store.get_settings(guild_id)).enabled is True, guild_id
        assert (await store.get_settings(TURNED_OFF)).enabled is False
        assert (await store.get_settings(SETTINGS_ONLY)).decline_grace_days == 3, "other settings are kept"
        assert (await store.get_settings(BOTH)).log_channel_id == 77
        assert (await store.get_settings(MAPPED_ONLY)) == GuildSettings(guild_id=MAPPED_ONLY, enabled=True)
        assert (await store.get_tier_roles(MAPPED_ONLY)).roles_by_tier == {"2001": frozenset({900})}
        assert (await store.get_settings(99)).enabled is False, "a server the database never knew stays off"
    finally:
        await store.close()
    reopened = await Store.open(path)  # the migration ran once: a server turned off afterwards stays off
    try:
        await reopened.save_settings(GuildSettings(guild_id=BOTH, enabled=False))
    finally:
        await reopened.close()
    reopened = await Store.open(path)
    try:
        assert (await reopened.get_settings(BOTH)).enabled is False
    finally:
        await reopened.close()


async def test_a_fresh_database_turns_no_server_on(tmp_path):
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        await store.map_tier_role(MAPPED_ONLY, "2001", 900)
        await store.save_settings(GuildSettings(guild_id=SETTINGS_ONLY, decline_grace_days=3))
        assert (await store.get_settings(MAPPED_ONLY)).enabled is False
        assert (await store.get_settings(SETTINGS_ONLY)).enabled is False
    finally:
        await store.close()
