"""Auto-match: link patrons who connected Discord on Patreon, in servers whose admin turned it on.

Patreon reports `social_connections.discord.user_id` for such patrons. A match is made only when neither the
Discord user nor the Patreon user is linked yet, so an OAuth or auto link is never overridden, and only for a
Discord user who is a member of a server that acts for the campaign of the membership that matched (its stored row
is that campaign's, same member id) and has `auto_match_discord` enabled: a server following another campaign
neither makes the match nor hears of it in its log channel (it would learn who pledges to another creator). The
match is Patreon's word, like OAuth, so it counts in every acting server (`Link.counts_in`). A pair whose link was
removed on purpose (`/patreon unlink`, an admin's unlink-user) is never matched again: the unlink records an
opt-out that only the patron's own sign-in to that pair lifts. A member lookup Discord fails (5xx) skips
that guild for now; the next refresh or webhook tries again.

One exception to "not linked yet" (review 5, R5-5): a link by hand of either account made in a server that does
not follow the matched membership's campaign is only that server's word, counts only there, and must not squat a
patron of another campaign. Patreon's own word (the pair it proves) replaces it as the patron's sign-in would
(`save_link`, source "auto"); whoever held it is reconciled everywhere, and its server is told only when its own
campaign holds that patron. A link by hand made in a server that follows the same campaign stands (that admin's
word in his own server), an OAuth or auto link always stands, and an opted-out pair is not linked. A refresh and a
webhook offer the patrons whose Patreon account is linked to nobody or only by hand (a sock's link of it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from bot.domain.models import MembershipSnapshot
from bot.store import Link, Store
from bot.sync.reconcile import ReconcileService
from bot.sync.replaced_hand_link import settle_replaced_hand_link
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
    wanted = [
        s
        for s in candidates
        if (s.social_discord_id, s.patreon_user_id) not in opted_out
        and links.get(s.social_discord_id or 0) != s.patreon_user_id
    ]
    unlinked = [s for s in wanted if s.social_discord_id not in links and s.patreon_user_id not in linked_patreon]
    held = [s for s in wanted if s.social_discord_id in links or s.patreon_user_id in linked_patreon]
    members_of = await _campaign_members(store, reconcile, guilds, wanted)
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
    made = await _store_matches(store, reconcile, rows, now, on_linked)
    for snapshot in held:
        own = [guild_id for guild_id in guilds if members_of(guild_id, snapshot)]
        pair = await _replace_foreign_hand_links(store, gateway, reconcile, snapshot, own)
        if pair is not None:
            made.append(pair)
            on_linked(AUTO_SOURCE)
    return made


async def _store_matches(
    store: Store,
    reconcile: ReconcileService,
    rows: list[tuple[int, str, int | None, str]],
    now: datetime,
    on_linked: Callable[[str], None],
) -> list[tuple[int, str]]:
    """Insert the matches of accounts linked to nobody; return those that went in."""
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


async def _replace_foreign_hand_links(
    store: Store, gateway: RoleGateway, reconcile: ReconcileService, snapshot: MembershipSnapshot, own: list[int]
) -> tuple[int, str] | None:
    """Match a patron one of whose accounts holds a link by hand of another campaign's server (the module's
    docstring); None when any link in the way stands, or no server of this campaign with auto-match has him."""
    discord_id, patreon_id = snapshot.social_discord_id, snapshot.patreon_user_id
    if discord_id is None or patreon_id is None or not own:
        return None
    if await _links_giving_way(store, reconcile, snapshot) is None:  # the store first, Discord only if it matters
        return None
    guild_id = await _guild_with_member(gateway, own, discord_id)
    if guild_id is None:
        return None
    # Read again right before the write: a sign-in, an unlink or a match meanwhile decides instead.
    in_the_way = await _links_giving_way(store, reconcile, snapshot)
    if in_the_way is None:
        return None
    await store.save_link(discord_id, patreon_id, guild_id, AUTO_SOURCE)
    log.info("auto-matched discord=%s to patreon=%s in guild=%s", discord_id, patreon_id, guild_id)
    await reconcile.log_event(
        guild_id,
        f"Linked <@{discord_id}> to Patreon {patreon_id} automatically (Discord is connected on Patreon)",
        queued=True,
    )
    for link in sorted(in_the_way, key=lambda link: (link.discord_user_id, link.patreon_user_id)):
        await _hand_link_replaced(store, reconcile, link, discord_id, patreon_id)
    if all(link.discord_user_id != discord_id for link in in_the_way):
        # Only his Patreon account was held (by a sock): nothing above reconciled him, and a refresh plans only
        # its own campaign's servers.
        try:
            await reconcile.reconcile_user_everywhere(discord_id, "auto-matched")
        except Exception:  # the link stands; the next refresh plans a link made since it last planned
            log.exception("could not reconcile discord=%s after auto-match replaced a link by hand", discord_id)
    return discord_id, patreon_id


async def _links_giving_way(
    store: Store, reconcile: ReconcileService, snapshot: MembershipSnapshot
) -> set[Link] | None:
    """The links either account holds, when every one gives way to the pair Patreon proves; None when there is
    none, the pair is linked already (in any way, as for a patron linked to nobody), one stands, or the patron
    opted out of that pair."""
    discord_id, patreon_id = snapshot.social_discord_id or 0, snapshot.patreon_user_id or ""
    in_the_way = {
        link
        for link in (await store.get_link_by_discord(discord_id), await store.get_link_by_patreon(patreon_id))
        if link is not None
    }
    if not in_the_way or any(
        (link.discord_user_id, link.patreon_user_id) == (discord_id, patreon_id) for link in in_the_way
    ):
        return None
    for link in in_the_way:
        if not await _gives_way(store, reconcile, link, snapshot):
            log.info(
                "auto-match: discord=%s patreon=%s left alone: linked by %s in guild=%s",
                discord_id,
                patreon_id,
                "hand" if link.by_hand else link.source,
                link.linked_in_guild_id,
            )
            return None
    if (discord_id, patreon_id) in await store.auto_match_optouts():
        return None
    return in_the_way


async def _gives_way(store: Store, reconcile: ReconcileService, link: Link, snapshot: MembershipSnapshot) -> bool:
    """A link by hand made in a server that doesn't follow the snapshot's campaign (its stored row under that
    server's campaign is not this membership); never an OAuth or auto link, nor one of an unknown server."""
    if not link.by_hand or link.linked_in_guild_id is None:
        return False
    key = await reconcile.campaign_key(link.linked_in_guild_id)
    if key is None:  # the engine alone: every campaign counts in every server
        return False
    row = await store.get_membership(snapshot.patreon_user_id or "", key)
    return row is None or row.member_id != snapshot.member_id


async def _hand_link_replaced(
    store: Store, reconcile: ReconcileService, old: Link, discord_id: int, patreon_id: str
) -> None:
    """Whoever held the replaced link loses what it gave; its server reads this line only when its own campaign
    holds the patron (bot/sync/replaced_hand_link.py)."""
    line = (
        f"Patreon shows <@{discord_id}>'s Discord connected to Patreon {patreon_id}, so they were linked "
        f"automatically; it replaced the link by hand of <@{old.discord_user_id}> to Patreon "
        f"{old.patreon_user_id} made in this server."
    )
    await settle_replaced_hand_link(store, reconcile, old, (discord_id, patreon_id), "auto-match", line, queued=True)


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
