"""The one read `/patreon-admin patrons` needs that the facade has no method for: every stored membership.

A function over the store's connection rather than a facade method, so the report's query lives with the report's
needs; it reads only what the refresh and the webhooks stored, and never asks Patreon.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain.models import MembershipSnapshot
from bot.store.codec import decode_snapshot
from bot.store.queues import SqlRunner


async def stored_memberships(store: SqlRunner, campaign_id: str | None = None) -> list[MembershipSnapshot]:
    """Every stored membership of `campaign_id` (None: of every campaign), in Patreon user id order."""
    async with store._db.execute(
        "SELECT snapshot, observed_at FROM memberships WHERE CAST(? AS TEXT) IS NULL OR campaign_id = ?"
        " ORDER BY patreon_user_id",
        (campaign_id, campaign_id),
    ) as cursor:
        return [decode_snapshot(row[0], datetime.fromisoformat(row[1])) async for row in cursor]
