"""Config: every required setting named on failure, every malformed one rejected, defaults right."""

from pathlib import Path

import pytest

from bot.config import REAL_DISCORD_BASE_URL, REAL_PATREON_BASE_URL, ConfigError, load_config

VALID = {
    "DISCORD_TOKEN": "discord-token",
    "PATREON_CLIENT_ID": "client-id",
    "PATREON_CLIENT_SECRET": "client-secret",
    "PATREON_REDIRECT_URI": "https://bot.example.com/patreon/callback",
    "PATREON_CREATOR_ACCESS_TOKEN": "creator-access",
    "PATREON_CREATOR_REFRESH_TOKEN": "creator-refresh",
    "PATREON_WEBHOOK_SECRET": "webhook-secret",
}


def test_valid_minimal_config_takes_real_hosts_and_defaults():
    config = load_config(VALID, env_file=None)
    assert config.discord_token == "discord-token"
    assert config.patreon_base_url == REAL_PATREON_BASE_URL
    assert config.discord_base_url == REAL_DISCORD_BASE_URL
    assert config.uses_real_discord
    assert config.patreon_campaign_id is None
    assert config.port == 8080
    assert config.database_path == Path("data/patreon-roles.sqlite3")
    assert config.refresh_interval_minutes == 15.0


@pytest.mark.parametrize("name", sorted(VALID))
def test_each_missing_required_setting_is_named(name):
    env = {key: value for key, value in VALID.items() if key != name}
    with pytest.raises(ConfigError) as caught:
        load_config(env, env_file=None)
    assert name in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("PATREON_CAMPAIGN_ID", "abc"),
        ("PATREON_REDIRECT_URI", "not a url"),
        ("PATREON_REDIRECT_URI", "https://bot.example.com/oauth"),
        ("REFRESH_INTERVAL_MINUTES", "nan"),
        ("REFRESH_INTERVAL_MINUTES", "inf"),
        ("PATREON_BASE_URL", "ftp://example.com"),
        ("DISCORD_BASE_URL", "localhost:9000"),
        ("REFRESH_INTERVAL_MINUTES", "0"),
        ("REFRESH_INTERVAL_MINUTES", "soon"),
        ("LOG_LEVEL", "LOUD"),
        ("DEV_GUILD_IDS", "12,abc"),
        ("ALLOWED_GUILD_IDS", "1;2"),
        ("DISCORD_CLIENT_ID", "my-app"),
        ("PUBLIC_URL", "roles.example.com"),
    ],
)
def test_malformed_settings_are_rejected_by_name(name, value):
    with pytest.raises(ConfigError) as caught:
        load_config({**VALID, name: value}, env_file=None)
    assert name in str(caught.value)


def test_overrides_are_read_and_trailing_slash_dropped(tmp_path):
    config = load_config(
        {
            **VALID,
            "PORT": "9001",
            "PATREON_CAMPAIGN_ID": "11539233",
            "PATREON_BASE_URL": "http://127.0.0.1:5000/",
            "DISCORD_BASE_URL": "http://127.0.0.1:5001",
            "DATABASE_PATH": str(tmp_path / "x.db"),
            "DEV_GUILD_IDS": "1, 2",
        },
        env_file=None,
    )
    assert config.port == 9001
    assert config.patreon_campaign_id == "11539233"
    assert config.patreon_base_url == "http://127.0.0.1:5000"
    assert not config.uses_real_discord
    assert config.database_path == tmp_path / "x.db"
    assert config.dev_guild_ids == (1, 2)


def test_env_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(f"{key}={value}" for key, value in VALID.items()) + "\nPORT=7000\n")
    assert load_config({}, env_file=env_file).port == 7000
    assert load_config({"PORT": "7001"}, env_file=env_file).port == 7001


def test_signing_key_differs_when_state_secret_set():
    plain = load_config(VALID, env_file=None)
    keyed = load_config({**VALID, "STATE_SECRET": "s3cret"}, env_file=None)
    assert plain.signing_key != keyed.signing_key
    assert keyed.signing_key == b"s3cret"


def test_redirect_uri_is_kept_exactly_as_registered():
    uri = "https://bot.example.com/prefix/patreon/callback"
    assert load_config({**VALID, "PATREON_REDIRECT_URI": uri}, env_file=None).patreon_redirect_uri == uri
    with pytest.raises(ConfigError, match="/patreon/callback"):
        load_config({**VALID, "PATREON_REDIRECT_URI": uri + "/"}, env_file=None)


def test_repr_shows_no_secret():
    key = "x" * 43 + "="  # well-formed: 32 bytes in URL-safe base64
    extra = {"STATE_SECRET": "state-secret", "DISCORD_CLIENT_SECRET": "app-secret", "TOKEN_ENCRYPTION_KEY": key}
    config = load_config(VALID | extra, env_file=None)
    secrets = [
        "app-secret",
        key,
        "discord-token",
        "client-secret",
        "creator-access",
        "creator-refresh",
        "webhook-secret",
        "state-secret",
    ]
    for shown in (repr(config), str(config), f"{config!r}", repr([config])):
        assert not [secret for secret in secrets if secret in shown], shown
    assert "https://bot.example.com/patreon/callback" in repr(config), "the rest is still shown"
    assert "discord_token='***'" in repr(config)


def test_trust_settings_are_read_and_the_public_url_defaults_to_the_redirect_origin():
    config = load_config(VALID, env_file=None)
    assert (config.allowed_guild_ids, config.discord_client_id, config.public_url) == ((), "", "")
    assert config.public_base_url == "https://bot.example.com"
    config = load_config(
        VALID | {"ALLOWED_GUILD_IDS": "11, 22", "DISCORD_CLIENT_ID": "123", "PUBLIC_URL": "https://roles.example.org/"},
        env_file=None,
    )
    assert config.allowed_guild_ids == (11, 22)
    assert config.discord_client_id == "123"
    assert config.public_base_url == "https://roles.example.org"
