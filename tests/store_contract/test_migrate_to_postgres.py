"""`python -m bot migrate-to-postgres` (issue 11, item 7): an SQLite database copied into PostgreSQL reads the
same through the store, is verified by counts, and is refused into a database that already holds rows or under a
key that doesn't open the file's tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.models import MembershipSnapshot, PatronStatus, TokenPair
from bot.store import CREATOR_SUBJECT, Store
from bot.store.opening import open_postgres
from bot.store.pg_import import ImportRefused, migrate_to_postgres
from bot.store.token_cipher import TokenCipher, TokenKeyError, new_key
from tests.store_contract.conftest import fresh_postgres

T0 = datetime(2026, 11, 1, tzinfo=UTC)
GUILD, ANN = 900_000_000_000_000_001, 310_000_000_000_000_001


async def _filled_sqlite(path, cipher) -> None:
    store = await Store.open(path, cipher)
    try:
        await store.save_link(ANN, "p1", GUILD, "oauth")
        await store.save_tokens(CREATOR_SUBJECT, TokenPair("creator-access", "creator-refresh", T0))
        await store.save_campaign("c1", token_subject=CREATOR_SUBJECT, source="env", webhook_secret="whsec")
        await store.bind_guild(GUILD, "c1", None)
        snapshots = [
            MembershipSnapshot(f"m{i}", "c1", f"p{i}", patron_status=PatronStatus.ACTIVE, observed_at=T0)
            for i in range(300)
        ]
        await store.save_memberships(snapshots, campaign_id="c1")
        await store.record_grants(GUILD, ANN, [1, 2], "linked", at=T0)
        await store.enqueue_role_jobs([(GUILD, ANN)], "refresh", T0)
        for second in range(3):
            await store.record_webhook_event(
                received_at=T0 + timedelta(seconds=second), trigger="members:pledge:update", resource_type="member",
                member_id="m1", patreon_user_id="p1", campaign_id="c1", body_sha256="0" * 64, applicable=True,
                addressed_campaign_id="c1",
            )
        await store.queue_dm(GUILD, ANN, "declined", "charge-1", {"tier": "Gold"}, T0)
    finally:
        await store.close()


async def test_a_copy_reads_the_same_through_the_store_and_new_ids_follow_the_copied_ones(
    tmp_path, postgres_dsn, cipher
):
    path = tmp_path / "bot.sqlite3"
    await _filled_sqlite(path, cipher)
    await fresh_postgres(postgres_dsn)
    result = await migrate_to_postgres(path, postgres_dsn, cipher)
    assert result.counts["memberships"] == 300 and result.counts["webhook_events"] == 3
    assert "the counts match" in result.summary(postgres_dsn)
    copied = await open_postgres(postgres_dsn, cipher)
    try:
        assert (await copied.get_link_by_discord(ANN)).patreon_user_id == "p1"
        assert (await copied.get_tokens(CREATOR_SUBJECT)).access_token == "creator-access"
        assert (await copied.get_campaign("c1")).webhook_secret == "whsec"
        assert await copied.guild_bindings() == {GUILD: "c1"}
        assert await copied.membership_count("c1") == 300
        assert await copied.granted_roles(GUILD, ANN) == {1, 2}
        assert [job.key for job in await copied.pending_role_jobs()] == [(GUILD, ANN)]
        unchanged = [
            MembershipSnapshot(f"m{i}", "c1", f"p{i}", patron_status=PatronStatus.ACTIVE, observed_at=T0)
            for i in range(300)
        ]
        assert await copied.save_memberships(unchanged, campaign_id="c1") == 0, "the copied hashes still match"
        new_event = await copied.record_webhook_event(
            received_at=T0, trigger="members:create", resource_type="member", member_id="m9", patreon_user_id="p9",
            campaign_id="c1", body_sha256="1" * 64, applicable=True,
        )
        assert new_event == 4
        assert await copied.queue_dm(GUILD, ANN, "declined", "charge-2", {}, T0)
    finally:
        await copied.close()


async def test_a_second_copy_into_the_same_database_is_refused_and_changes_nothing(tmp_path, postgres_dsn, cipher):
    path = tmp_path / "bot.sqlite3"
    await _filled_sqlite(path, cipher)
    await fresh_postgres(postgres_dsn)
    await migrate_to_postgres(path, postgres_dsn, cipher)
    with pytest.raises(ImportRefused, match="already holds rows"):
        await migrate_to_postgres(path, postgres_dsn, cipher)
    copied = await open_postgres(postgres_dsn, cipher)
    try:
        assert await copied.membership_count() == 300
    finally:
        await copied.close()


async def test_a_key_that_does_not_open_the_files_tokens_copies_nothing(tmp_path, postgres_dsn, cipher):
    path = tmp_path / "bot.sqlite3"
    await _filled_sqlite(path, cipher)
    await fresh_postgres(postgres_dsn)
    with pytest.raises(TokenKeyError):
        await migrate_to_postgres(path, postgres_dsn, TokenCipher([new_key().encode()], "another key"))
    target = await open_postgres(postgres_dsn, cipher)
    try:
        assert await target.membership_count() == 0 and await target.all_links() == []
    finally:
        await target.close()


def _env(monkeypatch, tmp_path, **settings: str) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name, value in {
        "DISCORD_TOKEN": "discord-token",
        "PATREON_CLIENT_ID": "client-id",
        "PATREON_CLIENT_SECRET": "client-secret",
        "PATREON_REDIRECT_URI": "https://bot.example.com/patreon/callback",
        **settings,
    }.items():
        monkeypatch.setenv(name, value)


async def test_the_command_copies_the_configured_database_and_backup_points_to_pg_dump(
    tmp_path, postgres_dsn, monkeypatch, capsys
):
    from bot.__main__ import _backup, _migrate_to_postgres
    from bot.config import load_config

    key = new_key()
    path = tmp_path / "bot.sqlite3"
    await _filled_sqlite(path, TokenCipher.from_setting(key))
    await fresh_postgres(postgres_dsn)
    _env(monkeypatch, tmp_path, DATABASE_PATH=str(path), DATABASE_URL=postgres_dsn, TOKEN_ENCRYPTION_KEY=key)
    config = load_config()
    assert await _migrate_to_postgres(config) == 0
    assert "the counts match" in capsys.readouterr().out
    assert await _migrate_to_postgres(config) == 2
    assert "already holds rows" in capsys.readouterr().err
    assert _backup(config, str(tmp_path / "copy.sqlite3"), force=False) == 2
    assert "pg_dump" in capsys.readouterr().err and not (tmp_path / "copy.sqlite3").exists()


async def test_rotate_key_reseals_a_postgres_stores_tokens(tmp_path, postgres_dsn, cipher):
    from bot.store.key_rotation import rotate_token_key

    await fresh_postgres(postgres_dsn)
    store = await open_postgres(postgres_dsn, cipher)
    await store.save_tokens(CREATOR_SUBJECT, TokenPair("a", "r", T0))
    await store.close()
    fresh = new_key()
    setting = f"{fresh},{cipher.keys[0].decode()}"
    assert "re-encrypted 1" in await rotate_token_key(tmp_path / "unused.sqlite3", setting, postgres_dsn)
    assert not (tmp_path / "unused.sqlite3").exists()
    reopened = await open_postgres(postgres_dsn, TokenCipher.from_setting(fresh))
    try:
        assert (await reopened.get_tokens(CREATOR_SUBJECT)).access_token == "a"
    finally:
        await reopened.close()
