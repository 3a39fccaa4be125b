"""The opt-in DMs' templates (bot/domain/dm_templates.py): what someone else chose can't restyle a DM or ping."""

from __future__ import annotations

import re

import pytest

from bot.domain.dm_templates import MAX_DM, DmKind, DmValues, plain, render

EVIL = (
    "@everyone @here <@123> <@!456> <@&789> <#42> </cmd:1> **bold** __u__ ~~s~~ `c` ||spoiler|| [x](https://evil.test)"
)
LIVE_MENTION = re.compile(r"@(everyone|here)|<@[!&]?\d+>|<#\d+>|</\w")


@pytest.mark.parametrize("kind", list(DmKind))
def test_names_chosen_by_others_cannot_mention_or_restyle(kind: DmKind) -> None:
    text = render(kind, DmValues(server=EVIL, roles=(EVIL,), until=EVIL, reason=EVIL))
    assert not LIVE_MENTION.search(text), text
    assert "[x](" not in text and "||spoiler||" not in text and "**bold**" not in text


@pytest.mark.parametrize("kind", list(DmKind))
def test_a_dm_stays_under_discords_limit(kind: DmKind) -> None:
    long = "x" * 5000
    text = render(kind, DmValues(server=long, roles=(long,) * 20, until=long, reason=long))
    assert len(text) <= MAX_DM


def test_plain_keeps_ordinary_text_readable() -> None:
    assert plain("Gold Patron") == "Gold Patron"
    assert plain("Former patron; paid period ended on 2026-01-01") == "Former patron; paid period ended on 2026-01-01"
    assert plain("a\nb") == "a b", "a value can't start a new line (headings, quotes, lists)"


def test_each_dm_says_what_it_is_about() -> None:
    values = DmValues("Creators", ("Gold",), "2026-01-08", "payment declined; grace ended on 2026-01-08")
    assert "Thanks for linking" in render(DmKind.WELCOME, values)
    assert "until **2026-01-08** (UTC)" in render(DmKind.DECLINED, values)
    removed = render(DmKind.REMOVED, values)
    assert "were removed (Gold) because: payment declined; grace ended on 2026-01-08" in removed
