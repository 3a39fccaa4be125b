"""The PNG chart of `/patreon-admin stats`: patrons per tier over the days counted, and the share linked here.

Imported only by the stats command (matplotlib takes a while to import and holds megabytes the rest of the bot never
needs); tests/unit/test_stats_chart.py checks nothing else pulls it in. Drawn with matplotlib's object API (a
`Figure` with the Agg canvas, no pyplot and its global state), so it is safe to run in a worker thread: the command
calls `render_png` through `asyncio.to_thread`, off the event loop.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.store.daily_counts import WHOLE_SERVER, DayCount

WIDTH_INCHES, HEIGHT_INCHES, DPI = 8.0, 4.5, 100
#: The tiers drawn one by one; the rest are summed as "other tiers".
MAX_TIERS = 6


def render_png(days: Sequence[DayCount], title: str) -> bytes:
    """An 800x450 PNG: stacked patrons per tier (left axis) and the share of patrons linked here (right axis)."""
    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    dates = mdates.date2num([day.day for day in days])
    tier_names = _tiers_by_size(days)
    drawn = tier_names[:MAX_TIERS]
    series = [[_patrons(day, tier_id) for day in days] for tier_id, _ in drawn]
    labels = [_text(name) for _, name in drawn]
    if len(tier_names) > MAX_TIERS:
        rest = {tier_id for tier_id, _ in tier_names[MAX_TIERS:]}
        series.append([sum(c.patrons for c in day.tiers if c.tier_id in rest) for day in days])
        labels.append("other tiers")
    if series and len(dates):
        axes.stackplot(dates, series, labels=labels, alpha=0.8)
    axes.set_ylabel("patrons")
    axes.set_ylim(bottom=0)
    share = axes.twinx()
    shares = [_share(day) for day in days]
    share.plot(dates, shares, color="black", linewidth=2, label="linked here (%)")
    share.set_ylim(0, 100)
    share.set_ylabel("linked here (%)")
    axes.set_title(_text(title[:80]))
    handles, names = axes.get_legend_handles_labels()
    more_handles, more_names = share.get_legend_handles_labels()
    if handles or more_handles:
        axes.legend(handles + more_handles, names + more_names, loc="upper left", fontsize="small")
    axes.xaxis_date()
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _text(text: str) -> str:
    """A tier title or server name as plain chart text: `$` would start matplotlib's math (a malformed formula
    fails the drawing) and a legend drops labels starting with `_`."""
    text = text.replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def _tiers_by_size(days: Sequence[DayCount]) -> list[tuple[str, str]]:
    """(tier id, title) of every tier counted, the latest day's biggest first."""
    titles: dict[str, str] = {}
    for day in days:
        for count in day.tiers:
            if count.tier_id != WHOLE_SERVER:
                titles[count.tier_id] = count.tier_title
    latest = days[-1] if days else None
    return sorted(titles.items(), key=lambda item: (-_patrons(latest, item[0]) if latest else 0, item[1]))


def _patrons(day: DayCount | None, tier_id: str) -> int:
    if day is None:
        return 0
    return next((count.patrons for count in day.tiers if count.tier_id == tier_id), 0)


def _share(day: DayCount) -> float:
    total = day.total
    return 100.0 * total.linked / total.patrons if total is not None and total.patrons else 0.0
