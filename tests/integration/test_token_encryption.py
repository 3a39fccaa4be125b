"""Stored tokens are encrypted on disk, the files are private, and no key mistake ever loses a token."""

import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import ConfigError, load_config
from bot.domain.models import TokenPair
from bot.store import CREATOR_SUBJECT, Store, patron_subject
from bot.store.files import StoreUnusable, exclusive_use
from bot.store.key_rotation import rotate_token_key
from bot.store.schema import MIGRATIONS
from bot.store.token_cipher import TokenCipher, TokenKeyError, key_file_beside, new_key

EXPIRES = datetime(2026, 12, 31, tzinfo=UTC)
CREATOR = TokenPair("creator-access-SECRET-1111", "creator-refresh-SECRET-2222", EXPIRES, ("campaigns",))
PATRON = TokenPair("patron-access-SECRET-3333", "patron-refresh-SECRET-4444", EXPIRES, ("identity",))
TOKEN_TEXTS = [text.encode() for pair in (CREATOR, PATRON) for text in (pair.access_token, pair.refresh_token)]


def raw_bytes(path) -> bytes:
    """Everything SQLite keeps on disk for this database: the file, its WAL and its shared-memory index."""
    return b"".join(
        candidate.read_bytes()
        for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
        if candidate.exists()
    )


def raw_token_rows(path) -> list[tuple]:
    with sqlite3.connect(path) as raw:
        return raw.execute("SELECT * FROM tokens ORDER BY subject").fetchall()


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def store_with_tokens(path, cipher=None) -> None:
    store = await Store.open(path, cipher)
    try:
        await store.save_tokens(CREATOR_SUBJECT, CREATOR)
        await store.save_tokens(patron_subject("p1"), PATRON)
    finally:
        await store.close()


async def test_the_database_files_hold_no_token_text(tmp_path):
    path = tmp_path / "bot.sqlite3"
    store = await Store.open(path)
    try:
        await store.save_tokens(CREATOR_SUBJECT, CREATOR)
        await store.save_tokens(patron_subject("p1"), PATRON)
        assert (path.with_name("bot.sqlite3-wal")).stat().st_size > 0, "the rows are in the WAL right now"
        on_disk = raw_bytes(path)
        assert [token for token in TOKEN_TEXTS if token in on_disk] == []
        assert await store.get_tokens(CREATOR_SUBJECT) == CREATOR
        assert await store.get_tokens(patron_subject("p1")) == PATRON
        assert [subject for subject, _ in await store.tokens_expiring("patron:", EXPIRES + timedelta(1))] == [
            patron_subject("p1")
        ]
    finally:
        await store.close()
    assert [token for token in TOKEN_TEXTS if token in raw_bytes(path)] == []


async def test_database_wal_key_file_and_new_folders_are_private(tmp_path):
    previous = os.umask(0o022)
    try:
        path = tmp_path / "new" / "data" / "bot.sqlite3"
        store = await Store.open(path)
        await store.save_tokens(CREATOR_SUBJECT, CREATOR)
        try:
            files = [path, path.with_name("bot.sqlite3-wal"), path.with_name("bot.sqlite3-shm"), key_file_beside(path)]
            assert {file.name: mode(file) for file in files} == {file.name: 0o600 for file in files}
            assert mode(tmp_path / "new") == mode(tmp_path / "new" / "data") == 0o700
        finally:
            await store.close()
    finally:
        os.umask(previous)


async def test_a_world_readable_database_from_before_is_made_private(tmp_path):
    path = tmp_path / "bot.sqlite3"
    sqlite3.connect(path).close()
    os.chmod(path, 0o644)
    store = await Store.open(path)
    await store.close()
    assert mode(path) == 0o600


def plain_text_database(path) -> sqlite3.Connection:
    """A database as the bot left it before encryption: today's schema, tokens verbatim, and still open, so the
    latest writes sit in the WAL."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    for version, script in enumerate(MIGRATIONS, start=1):
        raw.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    for subject, pair in ((CREATOR_SUBJECT, CREATOR), (patron_subject("p1"), PATRON)):
        raw.execute(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?)",
            (subject, pair.access_token, pair.refresh_token, pair.expires_at.isoformat(), " ".join(pair.scope), "x"),
        )
    return raw


async def test_plain_text_tokens_from_before_are_encrypted_at_start_up_and_scrubbed_from_the_files(tmp_path):
    path = tmp_path / "bot.sqlite3"
    old_writer = plain_text_database(path)
    assert all(token in raw_bytes(path) for token in TOKEN_TEXTS)
    store = await Store.open(path)
    try:
        assert await store.get_tokens(CREATOR_SUBJECT) == CREATOR
        assert await store.get_tokens(patron_subject("p1")) == PATRON
        assert all(row[1].startswith("fernet:") and row[2].startswith("fernet:") for row in raw_token_rows(path))
        assert [token for token in TOKEN_TEXTS if token in raw_bytes(path)] == []
    finally:
        await store.close()
        old_writer.close()
    reopened = await Store.open(path)
    try:
        assert await reopened.get_tokens(CREATOR_SUBJECT) == CREATOR
    finally:
        await reopened.close()


async def test_a_wrong_key_refuses_to_open_and_leaves_every_row_as_it_was(tmp_path):
    path = tmp_path / "bot.sqlite3"
    right = TokenCipher([new_key().encode()], "TOKEN_ENCRYPTION_KEY")
    await store_with_tokens(path, right)
    before = raw_token_rows(path)
    with pytest.raises(TokenKeyError, match="TOKEN_ENCRYPTION_KEY does not decrypt the stored tokens"):
        await Store.open(path, TokenCipher([new_key().encode()], "TOKEN_ENCRYPTION_KEY"))
    assert raw_token_rows(path) == before
    store = await Store.open(path, right)
    try:
        assert await store.get_tokens(CREATOR_SUBJECT) == CREATOR
    finally:
        await store.close()


async def test_a_lost_key_file_is_not_replaced_by_a_new_one(tmp_path):
    path = tmp_path / "bot.sqlite3"
    await store_with_tokens(path)
    key_file = key_file_beside(path)
    saved_key = key_file.read_bytes()
    key_file.unlink()
    before = raw_token_rows(path)
    with pytest.raises(TokenKeyError, match=r"is missing but .* holds encrypted tokens"):
        await Store.open(path)
    assert not key_file.exists() and raw_token_rows(path) == before
    key_file.write_bytes(saved_key)  # the backup comes back: everything opens again
    store = await Store.open(path)
    try:
        assert await store.get_tokens(patron_subject("p1")) == PATRON
    finally:
        await store.close()


async def test_a_token_copied_into_another_row_does_not_open(tmp_path):
    """Someone who can write the file can't hand the creator's token to a patron row (or the other way round)."""
    path = tmp_path / "bot.sqlite3"
    await store_with_tokens(path)
    with sqlite3.connect(path) as raw:
        creator_row = raw.execute("SELECT access_token FROM tokens WHERE subject = ?", (CREATOR_SUBJECT,)).fetchone()
        raw.execute("UPDATE tokens SET access_token = ? WHERE subject = ?", (creator_row[0], patron_subject("p1")))
    with pytest.raises(TokenKeyError, match="sealed for another row"):
        await Store.open(path)


async def test_rotate_key_with_a_key_file_re_encrypts_and_the_old_key_no_longer_opens(tmp_path):
    path = tmp_path / "bot.sqlite3"
    await store_with_tokens(path)
    old = TokenCipher.from_key_file(key_file_beside(path))
    message = await rotate_token_key(path, "")
    assert message.startswith("re-encrypted 2 token pair(s) under a new key")
    new = TokenCipher.from_key_file(key_file_beside(path))
    assert len(new.keys) == 1 and new.keys != old.keys and mode(key_file_beside(path)) == 0o600
    with pytest.raises(TokenKeyError):
        await Store.open(path, TokenCipher(old.keys, "the old key"))
    store = await Store.open(path)
    try:
        assert await store.get_tokens(CREATOR_SUBJECT) == CREATOR
        assert await store.get_tokens(patron_subject("p1")) == PATRON
    finally:
        await store.close()


async def test_rotate_key_with_the_setting_needs_the_new_key_in_front(tmp_path):
    path = tmp_path / "bot.sqlite3"
    old_key, new_key_text = new_key(), new_key()
    await store_with_tokens(path, TokenCipher.from_setting(old_key))
    before = raw_token_rows(path)
    with pytest.raises(TokenKeyError, match="holds one key"):
        await rotate_token_key(path, old_key)
    assert raw_token_rows(path) == before
    message = await rotate_token_key(path, f"{new_key_text},{old_key}")
    assert "now set TOKEN_ENCRYPTION_KEY to that key alone" in message
    with pytest.raises(TokenKeyError):
        await Store.open(path, TokenCipher.from_setting(old_key))
    store = await Store.open(path, TokenCipher.from_setting(new_key_text))
    try:
        assert await store.get_tokens(CREATOR_SUBJECT) == CREATOR
    finally:
        await store.close()


async def test_rotate_key_refuses_while_a_bot_is_running_on_the_database(tmp_path):
    """A running bot keeps the old key in memory and would seal new tokens with the key rotation drops."""
    path = tmp_path / "bot.sqlite3"
    await store_with_tokens(path)
    key_before = key_file_beside(path).read_bytes()
    with exclusive_use(path), pytest.raises(StoreUnusable, match="another `python -m bot` is using"):
        await rotate_token_key(path, "")
    assert key_file_beside(path).read_bytes() == key_before


BASE_ENV = {
    "DISCORD_TOKEN": "t",
    "PATREON_CLIENT_ID": "c",
    "PATREON_CLIENT_SECRET": "s",
    "PATREON_REDIRECT_URI": "https://a.example/patreon/callback",
    "PATREON_CREATOR_ACCESS_TOKEN": "a",
    "PATREON_CREATOR_REFRESH_TOKEN": "r",
    "PATREON_WEBHOOK_SECRET": "w",
}


@pytest.mark.parametrize("value", ["not-a-key", "x" * 44, f"{new_key()},short"])
def test_a_malformed_token_encryption_key_is_named_without_echoing_it(value):
    with pytest.raises(ConfigError, match=r"^TOKEN_ENCRYPTION_KEY key [12] is not a Fernet key") as caught:
        load_config({**BASE_ENV, "TOKEN_ENCRYPTION_KEY": value}, env_file=None)
    assert value not in str(caught.value)


def test_several_comma_separated_keys_are_accepted():
    keys = f"{new_key()}, {new_key()}"
    assert load_config({**BASE_ENV, "TOKEN_ENCRYPTION_KEY": keys}, env_file=None).token_encryption_key == keys
