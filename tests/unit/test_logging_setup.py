"""The entry point's logging set-up: whatever LOG_LEVEL says, no library logs a statement's parameters (tokens)."""

import logging

import pytest

from bot.__main__ import keep_secrets_out_of_logs, main

REQUIRED = (
    "DISCORD_TOKEN",
    "PATREON_CLIENT_ID",
    "PATREON_CLIENT_SECRET",
    "PATREON_REDIRECT_URI",
    "PATREON_CREATOR_ACCESS_TOKEN",
    "PATREON_CREATOR_REFRESH_TOKEN",
    "PATREON_WEBHOOK_SECRET",
)


@pytest.fixture
def aiosqlite_logger():
    logger = logging.getLogger("aiosqlite")
    before = logger.level
    logger.setLevel(logging.NOTSET)
    yield logger
    logger.setLevel(before)


def test_aiosqlite_is_capped_at_info(aiosqlite_logger):
    keep_secrets_out_of_logs()
    assert aiosqlite_logger.level == logging.INFO
    assert not aiosqlite_logger.isEnabledFor(logging.DEBUG)


def test_a_stricter_level_is_kept(aiosqlite_logger):
    aiosqlite_logger.setLevel(logging.WARNING)
    keep_secrets_out_of_logs()
    assert aiosqlite_logger.level == logging.WARNING


def test_the_entry_point_caps_it_before_anything_else(aiosqlite_logger, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in REQUIRED:
        monkeypatch.delenv(name, raising=False)
    assert main([]) == 2, "stops at the missing setting"
    assert "config error" in capsys.readouterr().err
    assert aiosqlite_logger.level == logging.INFO
