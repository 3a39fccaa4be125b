"""What follows when a link by hand (an admin's `link-user`) gives way to a link the patron or Patreon proved.

Three paths replace one: an admin's `link-user` that Patreon confirms (bot/guild_admin/hand_links.py), auto-match
(bot/sync/auto_match.py) and the patron's own sign-in (bot/accounts/linking.py). Each stores the new link first,
then comes here with the line its old server should read. Whoever held the old link is reconciled everywhere (they
lose what it gave); the server it was made in is told only while it takes part and its own campaign holds the
patron, since the line names a Patreon account and a foreign creator must learn nothing of another's patrons.
The new link is stored already, so neither step may undo it or stop the other: the roles first (the promise), the
log line second, each failure logged only. A failing Discord leaves roles as they are (the engine's rule).
"""

from __future__ import annotations

import logging

from bot.store import Link, Store
from bot.sync.reconcile import ReconcileService

log = logging.getLogger(__name__)

CAUSE = "link by hand replaced"


async def settle_replaced_hand_link(
    store: Store,
    reconcile: ReconcileService,
    old: Link,
    new: tuple[int, str],
    how: str,
    line: str,
    *,
    queued: bool = False,
    new_holder_reconciled_next: bool = False,
) -> None:
    """`new`: the (Discord id, Patreon id) now linked; `how` names the path in the process log; `line` is what the
    old link's server reads. `queued`: a background path's line, buffered (bot/sync/channel_log.py).
    `new_holder_reconciled_next`: the caller reconciles the new holder everywhere itself right after (the sign-in,
    whose page reports what that gave), so an old link of the same Discord user isn't reconciled here first."""
    discord_id, patreon_id = new
    log.info(
        "%s discord=%s patreon=%s replaced guild=%s's link by hand discord=%s patreon=%s",
        how,
        discord_id,
        patreon_id,
        old.linked_in_guild_id,
        old.discord_user_id,
        old.patreon_user_id,
    )
    if old.discord_user_id != discord_id or not new_holder_reconciled_next:
        try:
            await reconcile.reconcile_user_everywhere(old.discord_user_id, CAUSE)
        except Exception:  # the new link stands; the next refresh or webhook reconciles them again
            log.exception("could not reconcile discord=%s after its link by hand was replaced", old.discord_user_id)
    try:
        await _tell(store, reconcile, old.linked_in_guild_id, patreon_id, line, queued)
    except Exception:  # a log line must never break the work it describes
        log.exception("could not tell guild=%s that its link by hand was replaced", old.linked_in_guild_id)


async def _tell(
    store: Store, reconcile: ReconcileService, guild_id: int | None, patreon_id: str, line: str, queued: bool
) -> None:
    if guild_id is None:
        return
    refusal = await reconcile.participation_refusal(guild_id)
    if refusal is not None:
        log.info("guild=%s not told its link by hand was replaced (%s)", guild_id, refusal)
        return
    if await store.get_membership(patreon_id, await reconcile.campaign_key(guild_id)) is None:
        log.info("guild=%s not told its link by hand was replaced: patreon=%s not its campaign's", guild_id, patreon_id)
        return
    await reconcile.log_event(guild_id, line, queued=queued)
