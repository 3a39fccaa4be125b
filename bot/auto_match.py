"""Auto-match: link patrons who connected Discord on Patreon, in servers whose admin turned it on.

Patreon reports `social_connections.discord.user_id` for such patrons. A match is made only when neither the
Discord user nor the Patreon user is linked yet, so an OAuth or admin link is never overridden, and only for a
Discord user who is a member of a server with `auto_match_discord` enabled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bot.models import MembershipSnapshot
from bot.reconcile import ReconcileService

log = logging.getLogger(__name__)

AUTO_SOURCE = "auto"


async def auto_match(reconcile: ReconcileService, snapshots: Iterable[MembershipSnapshot]) -> list[tuple[int, str]]:
    """Link what can be linked; return the new (discord id, patreon id) pairs."""
    store, gateway = reconcile.store, reconcile.gateway
    guilds = [guild_id for guild_id in gateway.guild_ids() if (await store.get_settings(guild_id)).auto_match_discord]
    if not guilds:
        return []
    links = await store.link_map()
    linked_patreon = set(links.values())
    rows: list[tuple[int, str, int | None, str]] = []
    for snapshot in snapshots:
        discord_id, patreon_id = snapshot.social_discord_id, snapshot.patreon_user_id
        if discord_id is None or patreon_id is None or discord_id in links or patreon_id in linked_patreon:
            continue
        guild_id = await _guild_with_member(reconcile, guilds, discord_id)
        if guild_id is None:
            continue
        rows.append((discord_id, patreon_id, guild_id, AUTO_SOURCE))
        links[discord_id] = patreon_id
        linked_patreon.add(patreon_id)
    if not rows:
        return []
    await store.add_links(rows, reconcile.clock())
    stored = await store.link_map()
    made = [(discord_id, patreon_id) for discord_id, patreon_id, _, _ in rows if stored.get(discord_id) == patreon_id]
    for discord_id, patreon_id, guild_id, _ in rows:
        if stored.get(discord_id) == patreon_id and guild_id is not None:
            log.info("auto-matched discord=%s to patreon=%s in guild=%s", discord_id, patreon_id, guild_id)
            await reconcile.log_event(
                guild_id,
                f"Linked <@{discord_id}> to Patreon {patreon_id} automatically (Discord is connected on Patreon)",
                queued=True,
            )
    return made


async def _guild_with_member(reconcile: ReconcileService, guilds: list[int], discord_id: int) -> int | None:
    gateway = reconcile.gateway
    for guild_id in guilds:
        if gateway.cached_member_roles(guild_id, discord_id) is not None:
            return guild_id
        if not gateway.knows_all_members(guild_id) and await gateway.member_roles(guild_id, discord_id) is not None:
            return guild_id
    return None
