"""Settings, read once from the environment (and `.env`) into one frozen dataclass.

Nothing else in the project reads `os.environ`: tests and the demo build a `Config` directly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from dotenv import dotenv_values

from bot.domain.models import SECRET, redacted_repr
from bot.domain.shards import ShardSpec
from bot.store.token_cipher import parse_keys

REAL_PATREON_BASE_URL = "https://www.patreon.com"
REAL_DISCORD_BASE_URL = "https://discord.com"
DEFAULT_DATABASE_PATH = "data/patreon-roles.sqlite3"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


def _database_url(url: str, token_key: str) -> str:
    """Empty (SQLite) or `postgresql://…`; PostgreSQL has no folder for a key file, so it needs TOKEN_ENCRYPTION_KEY.
    Never echoes the URL: it may hold a password."""
    if not url:
        return ""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("DATABASE_URL must start with postgresql:// (leave it empty to use the SQLite file)")
    if not token_key:
        raise ConfigError("DATABASE_URL is PostgreSQL: set TOKEN_ENCRYPTION_KEY too (python -m bot new-key makes one)")
    return url


@dataclass(frozen=True)
class Config:
    """Secrets show as `'***'` in repr(), so a logged or printed config leaks nothing."""

    discord_token: str = field(metadata=SECRET)
    patreon_client_id: str
    patreon_client_secret: str = field(metadata=SECRET)
    patreon_redirect_uri: str
    #: The `.env` campaign's creator pair and webhook secret: optional, since `/patreon-admin connect` connects
    #: campaigns without them; both tokens or neither.
    patreon_creator_access_token: str = field(default="", metadata=SECRET)
    patreon_creator_refresh_token: str = field(default="", metadata=SECRET)
    patreon_webhook_secret: str = field(default="", metadata=SECRET)
    patreon_campaign_id: str | None = None
    database_path: Path = Path(DEFAULT_DATABASE_PATH)
    #: `postgresql://…` selects PostgreSQL instead of the SQLite file (it may hold the server's password).
    database_url: str = field(default="", metadata=SECRET)
    web_host: str = "0.0.0.0"
    port: int = 8080
    patreon_base_url: str = REAL_PATREON_BASE_URL
    discord_base_url: str = REAL_DISCORD_BASE_URL
    #: Key for signing OAuth `state`; derived from the client secret when not set.
    state_secret: str = field(default="", metadata=SECRET)
    refresh_interval_minutes: float = 15.0
    log_level: str = "INFO"
    #: Guilds to sync commands to instantly (global sync can take an hour to show).
    dev_guild_ids: tuple[int, ...] = ()
    #: Servers that may act for the campaign; empty means "the bot's only server, if it is in just one".
    allowed_guild_ids: tuple[int, ...] = ()
    #: The bot's own Discord application, for the Discord sign-in step of linking (OAuth2 `identify`).
    discord_client_id: str = ""
    discord_client_secret: str = field(default="", metadata=SECRET)
    #: Where people reach the bot's web server, e.g. `https://roles.example.com`; from the redirect URI when unset.
    public_url: str = ""
    #: Keys for encrypting stored tokens (comma-separated, the first encrypts); a key file beside the database is
    #: made when unset.
    token_encryption_key: str = field(default="", metadata=SECRET)
    #: Open connections the web server allows at once (0: the open-files limit less a reserve), and per address
    #: (0: no per-address cap, for a server behind a proxy where every connection comes from the proxy).
    web_max_connections: int = 0
    web_max_connections_per_ip: int = 64
    #: Discord's member-role bucket per server (10 calls per 10 s); role calls are paced under it. Change only if
    #: Discord's `X-RateLimit-Limit` for `PUT /guilds/{g}/members/{u}/roles/{r}` says otherwise.
    role_calls_per_guild: int = 10
    role_window_seconds: float = 10.0
    #: Bearer token for /metrics; empty turns /metrics off (404).
    metrics_token: str = field(default="", metadata=SECRET)
    #: Discord sharding (`SHARD_COUNT`, `SHARD_IDS`): None runs one unsharded gateway connection; otherwise this
    #: process runs `shard_ids` (empty: all) of `shard_count` shards and owns only their servers.
    shard_count: int | None = None
    shard_ids: tuple[int, ...] = ()

    def __repr__(self) -> str:
        return redacted_repr(self)

    @property
    def has_env_campaign(self) -> bool:
        """Creator tokens are configured: they are imported at start-up as a connected campaign (source env)."""
        return bool(self.patreon_creator_access_token and self.patreon_creator_refresh_token)

    @property
    def signing_key(self) -> bytes:
        return (self.state_secret or f"state:{self.patreon_client_secret}").encode()

    @property
    def public_base_url(self) -> str:
        """The bot's public origin: `PUBLIC_URL`, else the Patreon redirect URI without its path."""
        if self.public_url:
            return self.public_url
        parsed = urlparse(self.patreon_redirect_uri)
        return f"{parsed.scheme}://{parsed.netloc}"

    @property
    def uses_real_discord(self) -> bool:
        return self.discord_base_url == REAL_DISCORD_BASE_URL

    @property
    def shards(self) -> ShardSpec:
        """The shards this process runs (count 1, id 0 when unsharded): which servers it owns."""
        if self.shard_count is None:
            return ShardSpec()
        return ShardSpec(self.shard_count, self.shard_ids or tuple(range(self.shard_count)))


_REQUIRED = (
    "DISCORD_TOKEN",
    "PATREON_CLIENT_ID",
    "PATREON_CLIENT_SECRET",
    "PATREON_REDIRECT_URI",
)
#: Set together or not at all: the `.env` campaign needs both halves of the creator pair.
_CREATOR_PAIR = ("PATREON_CREATOR_ACCESS_TOKEN", "PATREON_CREATOR_REFRESH_TOKEN")


def load_config(env: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Config:
    """Build the config from `env` (default: the process environment) over the values in `env_file`.

    Raises ConfigError naming the first missing or malformed setting.
    """
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if env is None else env)

    def text(name: str, default: str = "") -> str:
        return values.get(name, default).strip()

    for name in _REQUIRED:
        if not text(name):
            raise ConfigError(f"{name} is not set (see .env.example)")
    given = [name for name in _CREATOR_PAIR if text(name)]
    if len(given) == 1:
        missing = next(name for name in _CREATOR_PAIR if name not in given)
        raise ConfigError(f"{missing} is not set, but {given[0]} is: set both creator tokens, or neither")
    if given and not text("PATREON_WEBHOOK_SECRET"):
        raise ConfigError(
            "PATREON_WEBHOOK_SECRET is not set: the creator tokens in .env need the secret of the webhook you made "
            "in Patreon's portal (or leave all three unset and use /patreon-admin connect)"
        )

    # Patreon compares the redirect URI exactly, so it is kept as written (no trailing-slash trimming).
    redirect_uri = text("PATREON_REDIRECT_URI")
    _url(redirect_uri, "PATREON_REDIRECT_URI")
    if not urlparse(redirect_uri).path.endswith("/patreon/callback"):
        raise ConfigError(f"PATREON_REDIRECT_URI must end in /patreon/callback, got {redirect_uri!r}")
    campaign_id = text("PATREON_CAMPAIGN_ID") or None
    if campaign_id is not None and not campaign_id.isdigit():
        raise ConfigError(f"PATREON_CAMPAIGN_ID must be a number, got {campaign_id!r}")
    shard_count, shard_ids = _shards(
        text("SHARD_COUNT"),
        text("SHARD_IDS"),
        database_url=text("DATABASE_URL"),
        env_campaign=bool(given),
        allowed_guilds=text("ALLOWED_GUILD_IDS"),
    )

    return Config(
        discord_token=text("DISCORD_TOKEN"),
        patreon_client_id=text("PATREON_CLIENT_ID"),
        patreon_client_secret=text("PATREON_CLIENT_SECRET"),
        patreon_redirect_uri=redirect_uri,
        patreon_creator_access_token=text("PATREON_CREATOR_ACCESS_TOKEN"),
        patreon_creator_refresh_token=text("PATREON_CREATOR_REFRESH_TOKEN"),
        patreon_webhook_secret=text("PATREON_WEBHOOK_SECRET"),
        patreon_campaign_id=campaign_id,
        database_path=Path(text("DATABASE_PATH") or DEFAULT_DATABASE_PATH),
        database_url=_database_url(text("DATABASE_URL"), text("TOKEN_ENCRYPTION_KEY")),
        web_host=text("WEB_HOST") or "0.0.0.0",
        port=_integer(text("PORT") or "8080", "PORT", low=1, high=65535),
        patreon_base_url=_url(text("PATREON_BASE_URL") or REAL_PATREON_BASE_URL, "PATREON_BASE_URL"),
        discord_base_url=_url(text("DISCORD_BASE_URL") or REAL_DISCORD_BASE_URL, "DISCORD_BASE_URL"),
        state_secret=text("STATE_SECRET"),
        refresh_interval_minutes=_number(text("REFRESH_INTERVAL_MINUTES") or "15", "REFRESH_INTERVAL_MINUTES"),
        log_level=_log_level(text("LOG_LEVEL") or "INFO"),
        dev_guild_ids=_id_list(text("DEV_GUILD_IDS"), "DEV_GUILD_IDS"),
        allowed_guild_ids=_id_list(text("ALLOWED_GUILD_IDS"), "ALLOWED_GUILD_IDS"),
        discord_client_id=_digits(text("DISCORD_CLIENT_ID"), "DISCORD_CLIENT_ID"),
        discord_client_secret=text("DISCORD_CLIENT_SECRET"),
        public_url=_url(text("PUBLIC_URL"), "PUBLIC_URL") if text("PUBLIC_URL") else "",
        token_encryption_key=_token_keys(text("TOKEN_ENCRYPTION_KEY")),
        web_max_connections=_integer(text("WEB_MAX_CONNECTIONS") or "0", "WEB_MAX_CONNECTIONS", low=0, high=1_000_000),
        web_max_connections_per_ip=_integer(
            text("WEB_MAX_CONNECTIONS_PER_IP") or "64", "WEB_MAX_CONNECTIONS_PER_IP", low=0, high=1_000_000
        ),
        role_calls_per_guild=_integer(
            text("ROLE_CALLS_PER_GUILD") or "10", "ROLE_CALLS_PER_GUILD", low=1, high=1_000_000
        ),
        role_window_seconds=_number(text("ROLE_WINDOW_SECONDS") or "10", "ROLE_WINDOW_SECONDS"),
        metrics_token=_metrics_token(text("METRICS_TOKEN")),
        shard_count=shard_count,
        shard_ids=shard_ids,
    )


def _url(value: str, name: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _integer(value: str, name: str, *, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {number}")
    return number


def _number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{name} must be a number above zero, got {value!r}")
    return number


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
    return level


def _digits(value: str, name: str) -> str:
    if value and not value.isdigit():
        raise ConfigError(f"{name} must be a Discord id (digits only), got {value!r}")
    return value


def _token_keys(value: str) -> str:
    """One or more comma-separated Fernet keys (the first encrypts); the message never repeats the value."""
    if value:
        try:
            parse_keys(value)
        except ValueError as error:
            raise ConfigError(f"TOKEN_ENCRYPTION_KEY {error}; make one with: python -m bot new-key") from None
    return value


def _metrics_token(value: str) -> str:
    """A guessable token would publish the metrics: at least 16 characters (`python -m bot new-key` makes one)."""
    if value and (len(value) < 16 or any(character.isspace() for character in value)):
        raise ConfigError("METRICS_TOKEN must be at least 16 characters without spaces; make one with: "
                          "python -m bot new-key")
    return value


#: More than Discord would ever ask one bot for (it recommends about one shard per 1,000 servers).
MAX_SHARD_COUNT = 100_000


def _shards(
    count_text: str, ids_text: str, *, database_url: str, env_campaign: bool, allowed_guilds: str
) -> tuple[int | None, tuple[int, ...]]:
    """SHARD_COUNT and SHARD_IDS. A process running only some of the shards shares the work with other processes,
    so they need one database they can all use at once (PostgreSQL; an SQLite file is one process's), and the
    `.env` campaign's one-server rule can't be judged by a process that sees only its own shards' servers."""
    if not count_text:
        if ids_text:
            raise ConfigError("SHARD_IDS needs SHARD_COUNT (the total number of shards across every process)")
        return None, ()
    count = _integer(count_text, "SHARD_COUNT", low=1, high=MAX_SHARD_COUNT)
    parts = [part.strip() for part in ids_text.split(",")] if ids_text else []
    if not all(part.isdigit() for part in parts):
        raise ConfigError(f"SHARD_IDS must be comma-separated shard numbers, got {ids_text!r}")
    ids = tuple(int(part) for part in parts)
    outside = sorted({shard for shard in ids if shard >= count})
    if outside:
        raise ConfigError(
            f"SHARD_IDS {','.join(map(str, outside))} not below SHARD_COUNT {count} (shards are numbered 0 to "
            f"{count - 1})"
        )
    repeated = sorted({shard for shard in ids if ids.count(shard) > 1})
    if repeated:
        raise ConfigError(f"SHARD_IDS names shard {','.join(map(str, repeated))} more than once")
    if ids and len(ids) < count:
        if not database_url:
            raise ConfigError(
                f"SHARD_IDS runs {len(ids)} of {count} shards, so other processes run the rest and share the "
                "database: set DATABASE_URL to PostgreSQL (an SQLite file serves one process only)"
            )
        if env_campaign and not allowed_guilds:
            raise ConfigError(
                "SHARD_IDS runs only some shards and the .env creator tokens are set: list the creator's servers in "
                "ALLOWED_GUILD_IDS (a process that sees only its own shards' servers can't apply the one-server "
                "rule)"
            )
    return count, ids


def _id_list(value: str, name: str) -> tuple[int, ...]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not all(part.isdigit() for part in parts):
        raise ConfigError(f"{name} must be comma-separated Discord ids, got {value!r}")
    return tuple(int(part) for part in parts)
