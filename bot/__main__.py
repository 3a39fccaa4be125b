"""`python -m bot` runs the bot from .env; `python -m bot demo` runs it against the bundled fakes;
`python -m bot rotate-key` re-encrypts the stored tokens under a new key; `python -m bot new-key` prints a key;
`python -m bot commands` prints the slash-command reference (`--readme README.md` rewrites the README's tables);
`python -m bot backup PATH` copies the database (and its key file) consistently while the bot runs;
`python -m bot migrate-to-postgres` copies the SQLite database into the empty PostgreSQL one DATABASE_URL names."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterable

from bot.config import Config, ConfigError, load_config
from bot.discord_io.log_redaction import install_log_redaction, remember_secrets, secrets_of

#: Loggers whose DEBUG lines would carry secrets, and the level they are capped at: aiosqlite logs every
#: statement with its parameters at DEBUG, stored tokens included.
SECRET_BEARING_LOGGERS = {"aiosqlite": logging.INFO}


def keep_secrets_out_of_logs(secrets: Iterable[str] = ()) -> None:
    """Part of the process's logging set-up, whatever LOG_LEVEL says; a stricter level already set is kept.

    Every record is redacted as it is made (tokens in discord.py's DEBUG lines, OAuth codes, the config's
    `secrets` once known). Whoever runs the bot without `main` must call it too (tests/conftest.py does).
    """
    install_log_redaction()
    remember_secrets(secrets)
    for name, floor in SECRET_BEARING_LOGGERS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, logger.level))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Patreon → Discord role sync bot")
    parser.add_argument(
        "mode",
        nargs="?",
        choices=("run", "demo", "rotate-key", "new-key", "commands", "backup", "migrate-to-postgres"),
        default="run",
    )
    parser.add_argument("--once", action="store_true", help="demo: run the scripted walkthrough, then exit")
    parser.add_argument("path", nargs="?", help="backup: the file to write the copy to")
    parser.add_argument("--force", action="store_true", help="backup: replace PATH (and PATH.key) if they exist")
    parser.add_argument("--port", type=int, default=8080, help="demo: port for the bot's web server")
    parser.add_argument("--readme", metavar="PATH", help="commands: rewrite the command tables in this file instead")
    args = parser.parse_args(argv)
    keep_secrets_out_of_logs()

    if args.mode == "demo":
        from bot.demo import run_demo

        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(run_demo(web_port=args.port, once=args.once))
        return 0
    if args.mode == "commands":
        return _print_commands(args.readme)
    if args.mode == "new-key":
        from bot.store.token_cipher import new_key

        print(new_key())
        return 0

    try:
        config = load_config()
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    if args.mode == "rotate-key":
        return asyncio.run(_rotate_key(config))
    if args.mode == "backup":
        return _backup(config, args.path, force=args.force)
    if args.mode == "migrate-to-postgres":
        return asyncio.run(_migrate_to_postgres(config))
    keep_secrets_out_of_logs(secrets_of(config))
    from bot.discord_io.runner import run_bot, setup_logging

    setup_logging(config.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_bot(config))
    return 0


def _print_commands(readme: str | None) -> int:
    """The slash-command tree as Markdown, built offline from the cogs (no .env, no Discord connection)."""
    from pathlib import Path

    from bot.discord_io.command_reference import command_tree, markdown, update_readme

    tree = asyncio.run(command_tree())
    if readme is None:
        print(markdown(tree), end="")
        return 0
    path = Path(readme)
    try:
        path.write_text(update_readme(path.read_text(encoding="utf-8"), tree), encoding="utf-8")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"updated the command tables in {readme}")
    return 0


async def _rotate_key(config: Config) -> int:
    from bot.store.files import StoreUnusable
    from bot.store.key_rotation import rotate_token_key
    from bot.store.token_cipher import TokenKeyError

    try:
        print(await rotate_token_key(config.database_path, config.token_encryption_key, config.database_url))
    except StoreUnusable as error:
        print(f"error: {'DATABASE_URL' if config.database_url else 'DATABASE_PATH'} {error}", file=sys.stderr)
        return 2
    except TokenKeyError as error:
        print(f"error: {error}; no stored token was changed", file=sys.stderr)
        return 2
    return 0


def _backup(config: Config, path: str | None, *, force: bool) -> int:
    """A consistent copy of the database (and its key file) while the bot may be running; one line either way."""
    from pathlib import Path

    from bot.store.backup import BackupRefused, backup_database, restore_hint
    from bot.store.files import StoreUnusable

    if not path:
        print("error: name the backup file: python -m bot backup PATH", file=sys.stderr)
        return 2
    if config.database_url:
        print("error: backup copies the SQLite file; back up DATABASE_URL's PostgreSQL with pg_dump", file=sys.stderr)
        return 2
    try:
        result = backup_database(
            config.database_path, Path(path), overwrite=force, key_in_setting=bool(config.token_encryption_key)
        )
    except BackupRefused as error:
        print(f"error: {error}; nothing was written", file=sys.stderr)
        return 2
    except StoreUnusable as error:
        print(f"error: DATABASE_PATH {error}", file=sys.stderr)
        return 2
    print(result.summary())
    print(restore_hint(result.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())


async def _migrate_to_postgres(config: Config) -> int:
    """DATABASE_PATH's SQLite database into the empty PostgreSQL one DATABASE_URL names; one line either way."""
    from bot.store.files import StoreUnusable
    from bot.store.pg_import import ImportRefused, migrate_to_postgres
    from bot.store.token_cipher import TokenCipher, TokenKeyError

    if not config.database_url:
        print("error: set DATABASE_URL=postgresql://… (and TOKEN_ENCRYPTION_KEY) to copy into", file=sys.stderr)
        return 2
    try:
        cipher = TokenCipher.from_setting(config.token_encryption_key)
        result = await migrate_to_postgres(config.database_path, config.database_url, cipher)
    except (ImportRefused, StoreUnusable) as error:
        print(f"error: {error}; nothing was copied", file=sys.stderr)
        return 2
    except TokenKeyError as error:
        print(
            f"error: {error} (set TOKEN_ENCRYPTION_KEY to the key the SQLite database uses, e.g. the contents of"
            f" {config.database_path}.key); nothing was copied",
            file=sys.stderr,
        )
        return 2
    print(result.summary(config.database_url))
    print("next: keep DATABASE_URL and TOKEN_ENCRYPTION_KEY set and start the bot; keep the SQLite file as a backup")
    return 0
