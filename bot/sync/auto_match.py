"""Auto-match: link patrons who connected Discord on Patreon, in servers whose admin turned it on.

Patreon reports `social_connections.discord.user_id` for such patrons. A match is made only when neither the
Discord user nor the Patreon user is linked yet, so an OAuth or admin link is never overridden, and only for a
Discord user who is a member of a server that acts for the campaign of the membership that matched (its stored row
is that campaign's, same member id) and has `auto_match_discord` enabled: a server following another campaign
neither makes the match nor hears of it in its log channel (it would learn who pledges to another creator). The
match is Patreon's word, like OAuth, so it counts in every acting server (`Link.counts_in`). A pair whose link was
removed on purpose (`/patreon unlink`, an admin's unlink-user) is never matched again: the unlink records an
opt-out that only an explicit OAuth or admin link of that pair lifts. A member lookup Discord fails (5xx) skips
that guild for now; the next refresh or webhook tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from bot.domain.models import MembershipSnapshot
from bot.store import Store
from bot.sync.reconcile import ReconcileService
from bot.sync.role_gateway import RoleChangeError, RoleGateway

log = logging.getLogger(__name__)

AUTO_SOURCE = "auto"
#: Up to this many snapshots (a webhook), links are looked up one by one instead of loading them all.
FEW = 20


async def auto_match(
    store: Store,
    gateway: RoleGateway,
    reconcile: ReconcileService,
    snapshots: Iterable[MembershipSnapshot],
    now: datetime,
    on_linked: Callable[[str], None] = lambda how: None,
) -> list[tuple[int, str]]:
    """Link what can be linked at `now`; return the new (discord id, patreon id) pairs (`reconcile` logs them).
    `on_linked("auto")` hears of each (the metrics' link counter)."""
    guilds = [
        guild_id
        for guild_id in await reconcile.acting_guild_ids()
        if (await store.get_settings(guild_id)).auto_match_discord
    ]
    if not guilds:
        return []
    candidates = [s for s in snapshots if s.social_discord_id is not None and s.patreon_user_id is not None]
    if not candidates:
        return []
    links, linked_patreon = await _known_links(store, candidates)
    opted_out = await store.auto_match_optouts()
    unlinked = [
        s
        for s in candidates
        if s.social_discord_id not in links
        and s.patreon_user_id not in linked_patreon
        and (s.social_discord_id, s.patreon_user_id) not in opted_out
    ]
    members_of = await _campaign_members(store, reconcile, guilds, unlinked)
    rows: list[tuple[int, str, int | None, str]] = []
    for snapshot in unlinked:
        discord_id, patreon_id = snapshot.social_discord_id, snapshot.patreon_user_id
        if discord_id is None or patreon_id is None or discord_id in links or patreon_id in linked_patreon:
            continue
        own = [guild_id for guild_id in guilds if members_of(guild_id, snapshot)]
        guild_id = await _guild_with_member(gateway, own, discord_id)
        if guild_id is None:
            continue
        rows.append((discord_id, patreon_id, guild_id, AUTO_SOURCE))
        links[discord_id] = patreon_id
        linked_patreon.add(patreon_id)
    if not rows:
        return []
    await store.add_auto_links(rows, now)
    # INSERT OR IGNORE: a link made (or an unlink recorded) meanwhile by OAuth or an admin wins; read back which
    # of ours went in.
    stored = await store.link_map() if len(rows) > FEW else {}
    made: list[tuple[int, str]] = []
    for discord_id, patreon_id, guild_id, _ in rows:
        if len(rows) <= FEW:
            link = await store.get_link_by_discord(discord_id)
            stored[discord_id] = link.patreon_user_id if link is not None else ""
        if stored.get(discord_id) == patreon_id and guild_id is not None:
            made.append((discord_id, patreon_id))
            on_linked(AUTO_SOURCE)
            log.info("auto-matched discord=%s to patreon=%s in guild=%s", discord_id, patreon_id, guild_id)
            await reconcile.log_event(
                guild_id,
                f"Linked <@{discord_id}> to Patreon {patreon_id} automatically (Discord is connected on Patreon)",
                queued=True,
            )
    return made


async def _campaign_members(
    store: Store, reconcile: ReconcileService, guilds: list[int], snapshots: list[MembershipSnapshot]
) -> Callable[[int, MembershipSnapshot], bool]:
    """Whether a snapshot is a membership of the campaign a guild follows: its stored row under that campaign's
    key has the same member id (a listing's members carry no campaign of their own; one read per campaign)."""
    keys = {guild_id: await reconcile.campaign_key(guild_id) for guild_id in guilds}
    patreon_ids = [s.patreon_user_id for s in snapshots if s.patreon_user_id is not None]
    stored = {key: await store.memberships_of(patreon_ids, key) for key in set(keys.values())} if patreon_ids else {}

    def member_of(guild_id: int, snapshot: MembershipSnapshot) -> bool:
        if keys[guild_id] is None:  # the engine alone, without participation: every campaign counts everywhere
            return True
        row = stored.get(keys[guild_id], {}).get(snapshot.patreon_user_id or "")
        return row is not None and row.member_id == snapshot.member_id

    return member_of


async def _known_links(store: Store, snapshots: list[MembershipSnapshot]) -> tuple[dict[int, str], set[str]]:
    """Links that matter for these snapshots: all of them for a refresh, a few lookups for one webhook."""
    if len(snapshots) > FEW:
        every = await store.link_map()
        return every, set(every.values())
    links: dict[int, str] = {}
    linked_patreon: set[str] = set()
    for snapshot in snapshots:
        assert snapshot.social_discord_id is not None and snapshot.patreon_user_id is not None
        by_discord = await store.get_link_by_discord(snapshot.social_discord_id)
        if by_discord is not None:
            links[by_discord.discord_user_id] = by_discord.patreon_user_id
        if await store.get_link_by_patreon(snapshot.patreon_user_id) is not None:
            linked_patreon.add(snapshot.patreon_user_id)
    return links, linked_patreon


async def _guild_with_member(gateway: RoleGateway, guilds: list[int], discord_id: int) -> int | None:
    for guild_id in guilds:
        if gateway.cached_member_roles(guild_id, discord_id) is not None:
            return guild_id
        if gateway.knows_member(guild_id, discord_id):  # asked before and not a member
            continue
        try:
            if await gateway.member_roles(guild_id, discord_id) is not None:
                return guild_id
        except RoleChangeError as error:
            log.info("auto-match: no lookup of discord=%s in guild=%s (%s); trying later", discord_id, guild_id, error)
    return None
