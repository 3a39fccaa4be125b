"""`/patreon-admin comp` and `uncomp`: give one member a tier's role for a while, whatever they pledge.

Only a role one of this server's tiers gives can be comped (a role the bot already manages here: never a
moderator's or an arbitrary role); unmapping a role's last tier ends its comps (bot/guild_admin/service.py), and
`uncomp` still takes back an active comp of a role no tier gives. The rules of every role-giving command apply: a
server that takes part, the bot able to manage the role, and an admin who could give it by hand
(bot/guild_admin/rank.py); taking a comp back needs the same, unless Discord confirms the role deleted (nobody
holds it, so nothing is taken; a cache miss or a failed read never counts). The engine adds the role and records
it in the grant ledger like any other, so the comp's end (bot/sync/comp_expiry.py), an unlink or an uncomp take it
back unless a tier still gives it, and a role the member already held by hand stays theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.domain.comps import MAX_COMP_DAYS, MAX_COMP_REASON, MIN_COMP_DAYS, Comp, clean_reason, comp_expiry
from bot.guild_admin.rank import InvokerRank
from bot.guild_admin.service import AdminError
from bot.store import Store
from bot.sync.participation import Participation
from bot.sync.reconcile import ReconcileService
from bot.sync.role_gateway import RoleChangeError, RoleGateway, roles_gone

log = logging.getLogger(__name__)


class CompService:
    def __init__(
        self,
        store: Store,
        reconcile: ReconcileService,
        gateway: RoleGateway,
        participation: Participation,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.reconcile = reconcile
        self.gateway = gateway
        self.participation = participation
        self.clock = clock

    async def comp(
        self, guild_id: int, user_id: int, role_id: int, days: int, reason: str | None, invoker: InvokerRank
    ) -> str:
        """Give (or extend) a comp; returns the answer for the admin. Bad input changes nothing."""
        if not (isinstance(days, int) and MIN_COMP_DAYS <= days <= MAX_COMP_DAYS):
            raise AdminError(f"A comp lasts between {MIN_COMP_DAYS} and {MAX_COMP_DAYS} days.")
        text = clean_reason(reason)
        if len(text) > MAX_COMP_REASON:
            raise AdminError(f"Keep the reason under {MAX_COMP_REASON} characters.")
        await self._assert_may_touch(guild_id, user_id, role_id, invoker, "comp")
        now = self.clock()
        current = await self.store.get_comp(guild_id, user_id, role_id)
        expires = comp_expiry(current, now, days)
        if expires - now > timedelta(days=MAX_COMP_DAYS):
            raise AdminError(f"A comp can't end more than {MAX_COMP_DAYS} days from now.")
        renewed = current is not None and current.active_at(now)
        held = await self.gateway.member_roles(guild_id, user_id) or frozenset()
        by_hand = role_id in held and role_id not in await self.store.granted_roles(guild_id, user_id)
        await self.store.save_comp(Comp(guild_id, user_id, role_id, expires, text, invoker.user_id, now))
        role = self.gateway.role_name(guild_id, role_id)
        verb = "extended" if renewed else "gave"
        why = f": {text}" if text else ""
        await self.reconcile.log_event(
            guild_id,
            f"<@{invoker.user_id}> {verb} a comp of @{role} to <@{user_id}> until {expires:%Y-%m-%d %H:%M} UTC{why}",
        )
        outcome = await self._reconcile(guild_id, user_id, "comp by an admin")
        answer = f"{'Extended' if renewed else 'Comped'} @{role} for <@{user_id}> until {expires:%Y-%m-%d %H:%M} UTC."
        if by_hand:
            answer += " They already hold that role, given by hand: it stays theirs when the comp ends."
        elif outcome:
            answer += f" The role couldn't be given yet ({outcome}); the bot tries again."
        return answer

    async def uncomp(self, guild_id: int, user_id: int, role_id: int, invoker: InvokerRank) -> str:
        await self._assert_may_touch(guild_id, user_id, role_id, invoker, "take back")
        current = await self.store.get_comp(guild_id, user_id, role_id)
        now = self.clock()
        if current is None or not current.active_at(now):
            raise AdminError("That member has no comp of that role here.")
        await self.store.end_comps([current], now, f"revoked by {invoker.user_id}")
        role = self.gateway.role_name(guild_id, role_id)
        await self.reconcile.log_event(
            guild_id, f"<@{invoker.user_id}> took back the comp of @{role} from <@{user_id}>"
        )
        problem = await self._reconcile(guild_id, user_id, "comp taken back by an admin")
        tail = f" The role couldn't be removed yet ({problem}); the bot tries again." if problem else ""
        return f"Took back the comp of @{role} from <@{user_id}>; a tier that gives it keeps it.{tail}"

    async def _reconcile(self, guild_id: int, user_id: int, cause: str) -> str | None:
        """Apply now; a failure is left to the durable queue. Returns the failure, if any."""
        try:
            outcome = await self.reconcile.reconcile_member(guild_id, user_id, cause)
        except RoleChangeError as error:
            outcome_error: str | None = str(error)
        else:
            outcome_error = outcome.error
        return outcome_error

    async def _has_active_comp(self, guild_id: int, user_id: int, role_id: int) -> bool:
        current = await self.store.get_comp(guild_id, user_id, role_id)
        return current is not None and current.active_at(self.clock())

    async def _assert_may_touch(
        self, guild_id: int, user_id: int, role_id: int, invoker: InvokerRank, action: str
    ) -> None:
        problem = await self.participation.refusal(guild_id)
        if problem is not None:
            raise AdminError(problem)
        problem = self.gateway.missing_permissions(guild_id)
        if problem is not None:
            raise AdminError(problem)
        tier_roles = (await self.store.get_tier_roles(guild_id)).managed_role_ids()
        taking_back = action == "take back"
        # Taking back reaches a comp of a role no tier gives any more too (one left from before unmap ended them).
        orphan = taking_back and await self._has_active_comp(guild_id, user_id, role_id)
        if role_id not in tier_roles and not orphan:
            raise AdminError(
                "Only a role one of this server's tiers gives can be comped; `/patreon-admin map` one first."
            )
        # Ending the comp of a role Discord confirms deleted takes nothing from anyone (nobody can hold it), so it
        # needs neither the bot's reach over the role nor the asker's rank (review 6, R6-3); giving one never passes.
        gone = await roles_gone(self.gateway, guild_id, {role_id}) if taking_back else frozenset()
        refused = {} if gone else self.gateway.unassignable_roles(guild_id, frozenset({role_id}))
        if role_id in refused:
            raise AdminError(f"I can't manage that role: {refused[role_id]}.")
        refusal = invoker.refusal(
            {role_id}, lambda role: self.gateway.role_name(guild_id, role), action, removing=taking_back, gone=gone
        )
        if refusal is not None:
            log.info("guild=%s: refused user=%s a comp above their rank", guild_id, invoker.user_id)
            raise AdminError(refusal)
        try:
            present = await self.gateway.member_roles(guild_id, user_id)
        except RoleChangeError as error:
            raise AdminError(f"Discord couldn't look that member up just now ({error}); try again.") from error
        if present is None:
            raise AdminError("That member isn't in this server.")
