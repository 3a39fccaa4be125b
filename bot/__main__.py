"""`python -m bot` runs the bot from .env; `python -m bot demo` runs it against the bundled fakes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from bot.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Patreon → Discord role sync bot")
    parser.add_argument("mode", nargs="?", choices=("run", "demo"), default="run")
    parser.add_argument("--once", action="store_true", help="demo: run the scripted walkthrough, then exit")
    parser.add_argument("--port", type=int, default=8080, help="demo: port for the bot's web server")
    args = parser.parse_args(argv)

    if args.mode == "demo":
        from bot.demo import run_demo

        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(run_demo(web_port=args.port, once=args.once))
        return 0

    try:
        config = load_config()
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    from bot.discord_io.runner import run_bot, setup_logging

    setup_logging(config.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_bot(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
