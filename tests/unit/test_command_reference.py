"""`python -m bot commands` (bot/discord_io/command_reference.py): the reference comes from the real command tree,
and the README's tables are that output, so the two can't disagree (issue 12, item 8)."""

import asyncio
from pathlib import Path

import pytest
from discord import app_commands

from bot.__main__ import main
from bot.discord_io.command_reference import END, START, command_tree, group_table, groups, update_readme

README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_readme_tables_are_the_generated_ones():
    tree = await command_tree()
    readme = README.read_text(encoding="utf-8")
    assert update_readme(readme, tree) == readme, "run `python -m bot commands --readme README.md`"
    for group in groups(tree):
        assert group_table(group) in readme


async def test_every_subcommand_of_the_tree_is_listed_with_who_may_use_it():
    tree = await command_tree()
    by_name = {group.name: group for group in groups(tree)}
    assert set(by_name) == {"patreon", "patreon-admin"}
    for group in by_name.values():
        table = group_table(group)
        for command in group.walk_commands():
            if isinstance(command, app_commands.Command):
                assert f"| `/{command.qualified_name}` |" in table and command.description in table
    assert "| `/patreon refresh` | — | anyone |" in group_table(by_name["patreon"])
    admin_rows = group_table(by_name["patreon-admin"]).splitlines()[2:]
    stricter = ("connect", "disconnect", "webhook repair")  # cogs/connect.py: owner or Manage Server
    assert admin_rows and all(
        ("| Owner or Manage Server |" if row.startswith(tuple(f"| `/patreon-admin {n}` |" for n in stricter))
         else "| Manage Roles |") in row
        for row in admin_rows
    )
    assert any(row.startswith("| `/patreon-admin panel` |") for row in admin_rows), "attached by cogs.panel"
    assert "`tier:<text>` `[role:<role>]`" in group_table(by_name["patreon-admin"])


async def test_listing_the_commands_starts_nothing():
    await command_tree()
    assert asyncio.all_tasks() == {asyncio.current_task()}, "no web server, worker or connection was started"


async def test_a_readme_without_a_group_s_markers_is_refused():
    tree = await command_tree()
    with pytest.raises(ValueError, match="/patreon-admin"):
        update_readme(f"{START.format(group='patreon')}\n{END.format(group='patreon')}\n", tree)


def test_the_command_prints_markdown_without_any_configuration(capsys, monkeypatch):
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["commands"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## `/patreon`: ")
    assert "| `/patreon-admin patrons` | — | Manage Roles |" in out


def test_the_command_rewrites_only_the_tables(tmp_path):
    readme = tmp_path / "README.md"
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- commands:patreon:start")
    first_row = text.index("| `/patreon link`", start)
    readme.write_text(text[:first_row] + "| stale |\n" + text[text.index("<!-- commands:patreon:end", start) :])
    assert main(["commands", "--readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == text
