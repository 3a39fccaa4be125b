"""The layout the README's Development table promises: each folder imports only the folders beneath it.

A new import that runs back up (the policy reaching for the store, the store for the sync engine, product code for
`tests`) fails here, so the table can't drift from the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOT_CORE = {"bot.config", "bot.domain", "bot.patreon", "bot.store", "bot.sync", "bot.accounts", "bot.guild_admin"}
#: folder → the project folders (and the I/O libraries) it may import, besides itself and the standard library.
MAY_IMPORT: dict[str, set[str]] = {
    "bot.domain": set(),
    "bot.patreon": {"bot.domain", "aiohttp"},
    "bot.store": {"bot.domain", "aiosqlite", "asyncpg", "cryptography"},
    "bot.sync": {"bot.domain", "bot.patreon", "bot.store"},
    "bot.accounts": {"bot.domain", "bot.patreon", "bot.store", "bot.sync"},
    "bot.guild_admin": {"bot.domain", "bot.patreon", "bot.store", "bot.sync", "bot.accounts"},
    "bot.observability": {"prometheus_client"},
    "bot.web": {"bot.domain", "bot.store", "bot.sync", "bot.accounts", "bot.observability", "aiohttp"},
    "bot.services": BOT_CORE | {"bot.web", "bot.observability", "aiohttp"},
    "bot.discord_io": BOT_CORE | {"bot.services", "aiohttp", "discord"},
    "cogs": BOT_CORE | {"bot.web", "bot.discord_io", "aiohttp", "discord"},
    "fakes.discord": {"aiohttp"},
    "fakes.patreon": {"aiohttp"},
}
WATCHED = {
    "bot", "cogs", "fakes", "tests", "bench", "discord", "aiohttp", "aiosqlite", "asyncpg", "cryptography",
    "prometheus_client",
}


def _folder(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] in {"bot", "fakes"} and len(parts) > 1 else parts[0]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {_folder(name) for name in names if name.split(".")[0] in WATCHED}
    return found


def _source_files(top: str) -> list[Path]:
    return sorted((ROOT / top).rglob("*.py"))


def test_each_folder_imports_only_what_the_development_table_allows() -> None:
    wrong = []
    for top in ("bot", "cogs", "fakes"):
        for path in _source_files(top):
            folder = _folder(".".join(path.relative_to(ROOT).with_suffix("").parts))
            if folder not in MAY_IMPORT:
                continue
            extra = _imports(path) - MAY_IMPORT[folder] - {folder}
            wrong += [f"{path.relative_to(ROOT)} imports {name}" for name in sorted(extra)]
    assert wrong == []


def test_product_code_never_imports_the_tests() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for top in ("bot", "cogs", "fakes", "bench")
        for path in _source_files(top)
        if "tests" in _imports(path)
    ]
    assert offenders == []


def test_the_top_of_bot_holds_only_the_entry_point_config_wiring_and_demo() -> None:
    modules = sorted(path.name for path in (ROOT / "bot").glob("*.py"))
    assert modules == ["__init__.py", "__main__.py", "config.py", "demo.py", "services.py"]
    assert all((folder / "__init__.py").is_file() for folder in (ROOT / "bot").iterdir() if folder.is_dir()
               and folder.name != "__pycache__")


def test_no_tracked_text_names_a_path_outside_the_repository() -> None:
    # Spelt in pieces so that this file doesn't name them itself.
    pieces = (("", "work", ""), ("..", "shared"), ("", "home", ""), ("", "Users", ""))
    outside = tuple("/".join(parts) for parts in pieces)
    offenders = []
    for top in ("bot", "cogs", "fakes", "bench", "tests", "docs"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in {".py", ".md"} or "data" in path.relative_to(ROOT).parts:
                continue
            text = path.read_text()
            offenders += [f"{path.relative_to(ROOT)}: {needle}" for needle in outside if needle in text]
    readme = (ROOT / "README.md").read_text()
    offenders += [f"README.md: {needle}" for needle in outside if needle in readme]
    assert offenders == []
