"""`link-user` and `unlink-user`: an admin's links by hand, scoped to this server's own campaign.

A link by hand is only the admin's word, so it may name only a patron of the campaign this server follows (a stored
membership of it): an admin of another campaign's server learns nothing about a Patreon id (not whose Discord account
holds it, not whether it is linked), can't block that campaign's own admins from linking it, and never gets the
log-channel line the patron's own sign-in posts later (bot/accounts/linking.py `_hand_links_replaced`).
Taking a link away takes the roles the bot gave with it, so `unlink-user` needs an invoker who could take each of
them away by hand (bot/guild_admin/rank.py), and a patron's own link (OAuth, auto-match), which counts in every
server, only while the bot gives them nothing in another server, where this invoker's rank is unknown.
"""

from __future__ import annotations

import logging

from bot.accounts.linking import UnlinkResult
from bot.guild_admin.admin_checks import AdminChecks, AdminError
from bot.guild_admin.rank import NOBODY, InvokerRank
from bot.store import Link
from bot.sync.replaced_hand_link import settle_replaced_hand_link
from bot.sync.role_gateway import roles_gone

log = logging.getLogger(__name__)

#: A member linked by hand in another server: that server's word only, which gives no roles here.
FOREIGN_HAND_LINK = (
    "That member was linked by hand in another server, which gives no roles here; a link here replaces it once "
    "Patreon shows this Patreon account connected to their Discord, or they can sign in with `/patreon link`."
)
#: The one answer for a Patreon id this server's campaign doesn't know, whatever its links elsewhere.
NOT_OUR_PATRON = (
    "That Patreon account isn't a member of the campaign this server follows, so it can't be linked here; "
    "`/patreon-admin patrons` lists the campaign's patrons."
)


class HandLinkCommands(AdminChecks):
    async def link_user(self, guild_id: int, discord_user_id: int, patreon_user_id: str, invoker: InvokerRank) -> str:
        """Link by hand. The link counts only in this server (`Link.counts_in`); it never takes a Patreon account
        from someone else (unlink them first) and never replaces a link the patron proved (OAuth, auto-match).

        The invoker must be able to give by hand every role this server's policy hands out: the link gives the
        patron's roles now and whatever tier they move to later. The Patreon id must be a member of this server's
        campaign, checked before anything about its links is read, so the refusal is the same for every id.
        """
        patreon_user_id = patreon_user_id.strip()
        if not patreon_user_id.replace("-", "").isalnum():
            raise AdminError("That doesn't look like a Patreon user id (the number in their profile URL).")
        await self._assert_takes_part(guild_id)
        self._assert_can_manage(guild_id)
        campaign_key = await self.reconcile.campaign_key(guild_id)
        membership = await self.store.get_membership(patreon_user_id, campaign_key)
        if membership is None:
            log.info("guild=%s: link by hand of patreon=%s refused: not its campaign's", guild_id, patreon_user_id)
            raise AdminError(NOT_OUR_PATRON)
        # Patreon's own word that this Discord account is that patron's (what auto-match trusts): it outweighs a
        # link by hand another server made of either account, which is only that server's word (review 5, R5-5).
        confirmed = membership.social_discord_id == discord_user_id
        replacing: list[Link] = []
        owner = await self.store.get_link_by_patreon(patreon_user_id)
        if owner is not None and owner.discord_user_id != discord_user_id:
            if owner.by_hand and owner.linked_in_guild_id != guild_id:
                if not confirmed:
                    raise AdminError(
                        f"That Patreon account was linked by hand to <@{owner.discord_user_id}> in another server; "
                        "the patron can sign in with `/patreon link` themselves, which replaces that link."
                    )
                replacing.append(owner)
            else:
                raise AdminError(
                    f"That Patreon account is already linked to <@{owner.discord_user_id}>; unlink them first."
                )
        previous = await self.store.get_link_by_discord(discord_user_id)
        if previous is not None and not previous.by_hand:
            if previous.patreon_user_id == patreon_user_id:
                return "Already linked: they signed in to that Patreon account themselves."
            raise AdminError(
                "That member signed in to a Patreon account themselves, and a link by hand never replaces that; "
                "unlink them first if it's wrong."
            )
        if previous is not None and previous.linked_in_guild_id not in (None, guild_id):
            if not confirmed:
                raise AdminError(FOREIGN_HAND_LINK)
            replacing.append(previous)
        # A role Discord confirms deleted can't be given or taken back, so it counts for nobody (review 6, R6-3).
        managed = await self.reconcile.managed_roles(guild_id)
        self._assert_outranks(guild_id, invoker, managed - await roles_gone(self.gateway, guild_id, managed))
        if previous is not None:  # replacing their link by hand takes back the roles the old one gave
            granted = await self.store.granted_roles(guild_id, discord_user_id)
            held = granted - await roles_gone(self.gateway, guild_id, granted)
            self._assert_outranks(guild_id, invoker, held, "take back", removing=True)
        await self.linking.link_by_hand(discord_user_id, patreon_user_id, guild_id)
        outcome = await self.reconcile.reconcile_member(guild_id, discord_user_id, "linked by an admin")
        await self.reconcile.log_event(guild_id, f"An admin linked <@{discord_user_id}> to Patreon {patreon_user_id}")
        for old in replacing:
            await self._foreign_hand_link_replaced(old, discord_user_id, patreon_user_id)
        if outcome.error or outcome.blocked:
            why = outcome.error or "; ".join(outcome.blocked.values())
            return f"Linked, but some roles couldn't be changed: {why}."
        return "Linked; their roles are up to date."

    async def _foreign_hand_link_replaced(self, old: Link, discord_user_id: int, patreon_user_id: str) -> None:
        """Another server's link by hand gave way to one Patreon confirms: whoever held it loses the roles it gave
        there. That server is told only when its campaign holds the patron (bot/sync/replaced_hand_link.py)."""
        line = (
            f"An admin of another server linked <@{discord_user_id}> to Patreon {patreon_user_id}, which Patreon "
            f"shows connected to that Discord account; it replaced the link by hand of <@{old.discord_user_id}> "
            f"to Patreon {old.patreon_user_id} made in this server."
        )
        new, how = (discord_user_id, patreon_user_id), "link by hand (confirmed by Patreon)"
        await settle_replaced_hand_link(self.store, self.reconcile, old, new, how, line)

    async def unlink_user(self, guild_id: int, discord_user_id: int, invoker: InvokerRank = NOBODY) -> UnlinkResult:
        """Only the server a link was made in may remove it (the member can always `/patreon unlink`), and only an
        invoker who could take away by hand every role the bot gave that member here."""
        await self._assert_takes_part(guild_id)
        self._assert_can_manage(guild_id)
        link = await self.store.get_link_by_discord(discord_user_id)
        if link is None:
            raise AdminError("That member isn't linked.")
        if link.linked_in_guild_id not in (None, guild_id):
            if link.by_hand:
                raise AdminError(
                    "That member was linked by hand in another server; only that server's admins can unlink them "
                    "(the link gives no roles here)."
                )
            raise AdminError("That member linked in another server; they can run `/patreon unlink` themselves.")
        if not link.by_hand and await self._grants_elsewhere(guild_id, discord_user_id):
            log.info(
                "guild=%s: unlink-user of discord=%s refused: own link with roles elsewhere", guild_id, discord_user_id
            )
            raise AdminError(
                "That member linked their own Patreon account and has roles from it in another server, so only they "
                "can unlink it, with `/patreon unlink`."
            )
        granted = await self.store.granted_roles(guild_id, discord_user_id)
        # A grant of a role Discord confirms deleted takes nothing back, so it counts for nobody (review 6, R6-3).
        held = granted - await roles_gone(self.gateway, guild_id, granted)
        self._assert_outranks(guild_id, invoker, held, "take back", removing=True)
        return await self.linking.unlink(discord_user_id, who="admin")

    async def _grants_elsewhere(self, guild_id: int, discord_user_id: int) -> bool:
        """A patron's own link counts in every server, and unlinking takes back its roles in all of them, but the
        invoker's rank is known only here: while the bot holds roles for them in another server (any shard's; the
        ledger is shared), an admin here mustn't take those away. A grant of a role Discord confirms deleted there
        takes nothing back, so it doesn't count (review 6, R6-3); a failed read counts every grant."""
        for other in await self.store.configured_guild_ids():
            granted = await self.store.granted_roles(other, discord_user_id) if other != guild_id else frozenset()
            if granted and granted - await roles_gone(self.gateway, other, granted):
                return True
        return False
