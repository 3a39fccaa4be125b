"""What one refresh did, for `/patreon-admin check` (the LAST_REFRESH fact), the log and the benches: one report
per campaign, and the sum of them for a run over several campaigns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime


@dataclass
class RefreshReport:
    ok: bool
    cause: str
    started_at: datetime
    finished_at: datetime | None = None
    detail: str = ""
    pages: int = 0
    members_listed: int = 0
    snapshots_saved: int = 0
    snapshots_forgotten: int = 0
    auto_linked: int = 0
    #: Members (guild, user) the refresh planned: the changed ones, or all in a guild planned in full.
    members_planned: int = 0
    #: Acting servers whose every member was planned (start-up, sync, daily, settings or tier map changed).
    full_replan_guilds: int = 0
    members_checked: int = 0
    #: Members Discord failed to look up while planning; each was queued as a job that looks again.
    members_unchecked: int = 0
    roles_differ: int = 0
    jobs_queued: int = 0
    patron_tokens_refreshed: int = 0
    #: Members listed without a Patreon user that no stored membership matches (deleted accounts): never linkable.
    members_without_user: int = 0
    #: Patreon HTTP requests this refresh made (retries included).
    patreon_requests: int = 0

    def fact(self) -> dict[str, object]:
        """What `/patreon-admin check` shows (LAST_REFRESH)."""
        data = asdict(self)
        data["at"] = (self.finished_at or self.started_at).isoformat(timespec="seconds")
        data["started_at"] = self.started_at.isoformat(timespec="seconds")
        data.pop("finished_at")
        return data


def combined(reports: list[RefreshReport], cause: str, now: datetime) -> RefreshReport:
    """The one report of a run: the campaign's own, or the sum of several (ok only when every one was)."""
    if len(reports) == 1:
        return reports[0]
    if not reports:
        return RefreshReport(ok=True, cause=cause, started_at=now, finished_at=now, detail="no campaign is connected")
    total = RefreshReport(ok=all(r.ok for r in reports), cause=cause, started_at=reports[0].started_at)
    for name, value in asdict(total).items():
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(total, name, sum(getattr(report, name) for report in reports))
    total.finished_at = reports[-1].finished_at
    total.detail = "; ".join(f"campaign {i + 1}: {r.detail}" for i, r in enumerate(reports))
    return total
