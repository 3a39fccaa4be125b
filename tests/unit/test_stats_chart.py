"""The stats chart (bot/guild_admin/stats_chart.py): a real PNG for any number of days, safe in threads, and
matplotlib is imported by the stats command only."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.guild_admin.stats_chart import render_png
from bot.store.daily_counts import WHOLE_SERVER, DayCount, TierCount

ROOT = Path(__file__).resolve().parents[2]


def days(count: int, tiers: int = 2) -> list[DayCount]:
    start = date(2026, 9, 1)
    return [
        DayCount(
            start + timedelta(days=i),
            (
                TierCount(WHOLE_SERVER, "", 10 + i, i // 2),
                *(TierCount(str(t), f"Tier {t}", 1 + (i + t) % 5, t % 2) for t in range(tiers)),
            ),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(("count", "tiers"), [(0, 0), (1, 1), (90, 2), (90, 12)])
def test_the_chart_is_a_png_of_sane_size(count: int, tiers: int) -> None:
    data = render_png(days(count, tiers), "Patrons of the campaign, <@everyone> **x**")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 800 and int.from_bytes(data[20:24], "big") == 450
    assert 1_000 < len(data) < 500_000


async def test_charts_drawn_in_threads_at_once_are_all_whole() -> None:
    charts = await asyncio.gather(*(asyncio.to_thread(render_png, days(90), f"chart {i}") for i in range(4)))
    assert all(chart[:8] == b"\x89PNG\r\n\x1a\n" and len(chart) > 10_000 for chart in charts)


def test_nothing_but_the_stats_command_imports_matplotlib() -> None:
    """The bot, every cog and the wiring load without matplotlib; the command imports the chart module lazily."""
    code = (
        "import sys, bot.discord_io.client, bot.services, cogs.admin, cogs.stats, cogs.patron, cogs.panel, "
        "cogs.sync_tasks, cogs.web_server, cogs.member_events, bot.guild_admin.stats\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_names_that_look_like_formulas_are_drawn_as_text() -> None:
    """A `$` pair starts matplotlib's math and a malformed formula fails the whole drawing; names are someone's."""
    nasty = (TierCount(WHOLE_SERVER, "", 3, 1), TierCount("1", r"$\frac$", 2, 1), TierCount("2", "_hidden", 1, 0))
    data = render_png([DayCount(date(2026, 1, 1), nasty)], r"Server $\frac{$ x")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
