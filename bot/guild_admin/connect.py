"""The connected campaign as a server admin sees it: disconnect, the webhook's health and its repair, taking back
the roles after a disconnect, and what `check` says of a creator who revoked the app.

Connecting itself is the browser flow (bot/accounts/connect_flow.py). Nothing here acts on another server's
binding: every call names the server the command ran in, and only that server's binding is read or removed.
Which campaign a server follows decides who gets every role its policy hands out, so `connect_refusal` holds the
connect command to the rank rule `link-user` follows (bot/guild_admin/rank.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.accounts.connect_flow import webhook_uri
from bot.domain.policy import managed_role_ids
from bot.guild_admin.health import HealthLine
from bot.guild_admin.rank import InvokerRank
from bot.patreon.creator_api import MEMBER_TRIGGERS, CreatorClient
from bot.patreon.errors import PatreonError
from bot.patreon.jsonapi import Webhook
from bot.store import Store
from bot.store.campaigns import REVOKED
from bot.sync.campaign import CREATOR_REJECTED_FACT, CampaignService, CampaignUnavailable
from bot.sync.campaign_registry import CampaignRegistry
from bot.sync.participation import Participation
from bot.sync.role_gateway import RoleChangeError, RoleGateway, roles_gone
from bot.sync.role_pacing import RoleCallPacer

log = logging.getLogger(__name__)

RECONNECT = "reconnect with `/patreon-admin connect`"


class ConnectionRefused(Exception):
    """A refusal to show the admin as is (one friendly sentence)."""


@dataclass(frozen=True)
class Disconnected:
    campaign_id: str
    webhook: str
    #: Other servers still following the campaign (it stays connected for them).
    others: int
    #: Members here holding roles the bot gave.
    holders: int

    def describe(self, *, offer_take_back: bool = True) -> str:
        head = f"✅ This server no longer follows campaign {self.campaign_id}; the bot stopped managing its roles."
        parts = [head, self.webhook]
        if self.holders and offer_take_back:
            parts.append(
                f"{self.holders} member(s) keep the roles the bot gave. To take them back (hand-given roles stay), "
                "run `/patreon-admin disconnect take_back_roles:True`."
            )
        return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class TakeBack:
    """What `disconnect take_back_roles:True` did: roles taken, and each one Discord wouldn't let the bot take."""

    taken: int
    #: (member, role name, why) per role not taken; its grant is kept, so running the command again retries it.
    refused: tuple[tuple[int, str, str], ...] = ()
    #: At most this many refusals are named in the answer.
    shown: int = 5

    def describe(self) -> str:
        head = f"Took back {self.taken} role(s) the bot gave."
        if not self.refused:
            return head
        named = "; ".join(f"@{role} from <@{user}> ({why})" for user, role, why in self.refused[: self.shown])
        more = f"; and {len(self.refused) - self.shown} more" if len(self.refused) > self.shown else ""
        return (
            f"{head} {len(self.refused)} couldn't be taken back: {named}{more}. Fix that and run "
            "`/patreon-admin disconnect take_back_roles:True` again; it tries only those."
        )


class CampaignConnections:
    def __init__(
        self,
        store: Store,
        patreon: CreatorClient,
        campaigns: CampaignRegistry,
        participation: Participation,
        gateway: RoleGateway,
        public_base_url: str,
        pacer: RoleCallPacer | None = None,
    ) -> None:
        """`pacer`: the role calls' pacer, so a final sync of a big server waits its turn like any role call."""
        self.store = store
        self.pacer = pacer
        self.patreon = patreon
        self.campaigns = campaigns
        self.participation = participation
        self.gateway = gateway
        self.public_base_url = public_base_url

    # -- who may connect ------------------------------------------------------------------------------

    async def connect_refusal(self, guild_id: int, invoker: InvokerRank) -> str | None:
        """Why this admin may not make a connect button here, or None. The campaign decides whose patrons get
        every role the server's policy hands out (a re-bind takes the old campaign's back), so, as for
        `link-user`, each must sit below the asker's highest role; the owner is exempt. A server with nothing
        mapped yet hands out nothing, so any owner or Manage Server admin connects it."""
        refusal = await self._policy_rank_refusal(guild_id, invoker, "change who gets")
        if refusal is None:
            return None
        binding = await self.store.guild_binding(guild_id)
        log.info("guild=%s: connect refused to user=%s, below a role the policy hands out", guild_id, invoker.user_id)
        if binding is not None and binding.bound_by not in (None, invoker.user_id):
            return f"{refusal.rstrip('.')}; campaign {binding.campaign_id} was connected here by <@{binding.bound_by}>."
        return refusal

    async def _policy_rank_refusal(self, guild_id: int, invoker: InvokerRank, action: str) -> str | None:
        settings = await self.store.get_settings(guild_id)
        roles = managed_role_ids(settings, await self.store.get_tier_roles(guild_id))
        gone = await roles_gone(self.gateway, guild_id, roles)
        return invoker.refusal(roles, self._name_in(guild_id), action, gone=gone)

    def _name_in(self, guild_id: int) -> Callable[[int], str]:
        return lambda role_id: self.gateway.role_name(guild_id, role_id)

    # -- disconnect ---------------------------------------------------------------------------------

    async def disconnect(self, guild_id: int, invoker: InvokerRank) -> Disconnected:
        """Unbind this server; when no other server follows the campaign, delete its webhook at Patreon and forget
        its creator tokens. Patreon failing never stops the local disconnect (the hook then gets 401s and pauses).

        Disconnecting freezes every role the policy hands out on whoever holds it (a patron who stops paying keeps
        it), and the last server's disconnect forgets the creator's tokens, which only `connect` (rank-checked)
        brings back: so it needs the rank `connect` needs (review 5, R5-3); the owner is exempt."""
        binding = await self.store.guild_binding(guild_id)
        if binding is None:
            current = await self.participation.campaign_for(guild_id)
            if current is not None:
                raise ConnectionRefused(
                    f"This server follows campaign {current.known_campaign_id()} from the bot's .env settings, not "
                    "a connection; the bot's owner changes those settings instead."
                )
            raise ConnectionRefused("This server isn't connected to a Patreon campaign.")
        refusal = await self._policy_rank_refusal(guild_id, invoker, "disconnect while the policy hands out")
        if refusal is not None:
            log.info("guild=%s: disconnect refused to user=%s, below a role the policy hands out", guild_id,
                     invoker.user_id)
            raise ConnectionRefused(refusal)
        campaign_id = binding.campaign_id
        others = [g for g in await self.store.guilds_following(campaign_id) if g != guild_id]
        if others:
            await self.campaigns.unbind_guild(guild_id)
            webhook = f"The campaign stays connected for {len(others)} other server(s), with its webhook."
        else:
            webhook = await self._delete_webhook(campaign_id)
            await self.campaigns.remove(campaign_id)
        log.info("guild=%s disconnected from campaign %s by user=%s", guild_id, campaign_id, invoker.user_id)
        holders = len(await self.store.grants_in_guild(guild_id))
        return Disconnected(campaign_id, webhook, len(others), holders)

    async def _delete_webhook(self, campaign_id: str) -> str:
        service = self.campaigns.connected_service(campaign_id)
        record = await self.store.get_campaign(campaign_id)
        if service is None or record is None:
            return ""
        uri = webhook_uri(self.public_base_url, campaign_id)

        async def delete(token: str) -> bool:
            hook_id = record.webhook_id
            if hook_id is None:
                found = await self.patreon.webhook_for_uri(token, uri)
                hook_id = found.id if found is not None else None
            return hook_id is not None and await self.patreon.forget_webhook(token, hook_id)

        try:
            deleted = await service.with_creator_token(delete)
        except (PatreonError, CampaignUnavailable) as error:
            log.warning("disconnect: campaign %s webhook not deleted at Patreon: %s", campaign_id, error)
            return (
                "Patreon couldn't be reached, so its webhook may linger there: its deliveries are refused and "
                "Patreon pauses it."
            )
        return "Its webhook at Patreon is deleted." if deleted else "Patreon had no webhook for it any more."

    async def take_back_refusal(self, guild_id: int, invoker: InvokerRank) -> str | None:
        """Why this invoker may not take back every role the bot gave here (one at or above their highest role,
        which Discord wouldn't let them take away by hand), or None. Asked before the disconnect, so a refused
        take-back changes nothing."""
        granted: frozenset[int] = frozenset().union(*(await self.store.grants_in_guild(guild_id)).values())
        gone = await roles_gone(self.gateway, guild_id, granted)
        return invoker.refusal(granted, self._name_in(guild_id), "take back", removing=True, gone=gone)

    async def take_back_roles(self, guild_id: int, invoker: InvokerRank) -> TakeBack:
        """After a disconnect: remove every role the bot gave here that the member still holds, and forget the
        grants; hand-given roles stay. Refused while the server still follows a campaign (its sync does that),
        and for an invoker below one of those roles (`take_back_refusal`).

        A role Discord won't let the bot take (moved above the bot's role, a 5xx) is counted and its grant kept,
        and the walk goes on: one refused role must not strand every member after it, and a rerun, which skips
        the roles already taken, tries the kept ones again (review 5, R5-9)."""
        refusal = await self.take_back_refusal(guild_id, invoker)
        if refusal is not None:
            log.info("guild=%s: refused user=%s a take-back above their rank", guild_id, invoker.user_id)
            raise ConnectionRefused(refusal)
        if await self.participation.campaign_for(guild_id) is not None:
            raise ConnectionRefused(
                "This server still follows a campaign: run `/patreon-admin disconnect` first (or unmap the tiers "
                "and run `/patreon-admin sync` to take roles back while connected)."
            )
        taken = 0
        refused: list[tuple[int, str, str]] = []
        for user_id, granted in (await self.store.grants_in_guild(guild_id)).items():
            try:
                held = await self.gateway.member_roles(guild_id, user_id)
            except RoleChangeError as error:
                refused += [(user_id, self.gateway.role_name(guild_id, role_id), str(error)) for role_id in granted]
                continue
            kept: set[int] = set()
            to_take = frozenset(granted) & (held or frozenset())
            known_refusals = self.gateway.unassignable_roles(guild_id, to_take)
            for role_id in sorted(to_take):
                why = known_refusals.get(role_id) or await self._take_one(guild_id, user_id, role_id)
                if why:
                    log.info("guild=%s: couldn't take back role=%s from user=%s: %s", guild_id, role_id, user_id, why)
                    refused.append((user_id, self.gateway.role_name(guild_id, role_id), why))
                    kept.add(role_id)
                else:
                    taken += 1
            await self.store.forget_grants(guild_id, user_id, frozenset(granted) - kept)
        log.info(
            "guild=%s: %d role(s) the bot gave taken back after disconnect, %d refused", guild_id, taken, len(refused)
        )
        return TakeBack(taken, tuple(refused))

    async def _take_one(self, guild_id: int, user_id: int, role_id: int) -> str:
        """Take one role back; Discord's refusal as a short reason ("" when it was taken)."""
        try:
            async with self.pacer.call(guild_id) if self.pacer is not None else contextlib.nullcontext():
                await self.gateway.set_member_roles(
                    guild_id, user_id, frozenset(), frozenset({role_id}), "Patreon campaign disconnected"
                )
        except RoleChangeError as error:
            return str(error) or "Discord refused"
        return ""

    # -- the webhook ----------------------------------------------------------------------------------

    async def _connected(self, guild_id: int) -> CampaignService:
        service = await self.participation.campaign_for(guild_id)
        if service is None:
            raise ConnectionRefused(
                "This server doesn't follow a Patreon campaign; connect one with `/patreon-admin connect`."
            )
        if service.from_env:
            raise ConnectionRefused(
                "This server follows the campaign from the bot's .env settings, whose webhook is made by hand in "
                "Patreon's portal; connect it with `/patreon-admin connect` to let the bot manage it."
            )
        return service

    async def repair_webhook(self, guild_id: int) -> str:
        """Re-create the campaign's webhook when Patreon lost it, or unpause it (Patreon then re-sends what it
        queued); the result is read back, since the docs don't say whether Patreon reads `paused`."""
        service = await self._connected(guild_id)
        campaign_id = service.known_campaign_id() or ""
        uri = webhook_uri(self.public_base_url, campaign_id)
        record = await self.store.get_campaign(campaign_id)

        async def repair(token: str) -> str:
            hook = await self.patreon.webhook_for_uri(token, uri)
            if hook is None or (record is not None and not record.webhook_secret and not hook.secret):
                if hook is not None:
                    await self.patreon.forget_webhook(token, hook.id)
                created = await self.patreon.create_webhook(token, campaign_id, uri, MEMBER_TRIGGERS)
                await self.campaigns.set_webhook(campaign_id, created.id, created.secret)
                return f"✅ Patreon had no webhook for this campaign; a new one is registered at {uri}."
            if hook.secret and (record is None or record.webhook_secret != hook.secret or record.webhook_id != hook.id):
                await self.campaigns.set_webhook(campaign_id, hook.id, hook.secret)
            if not hook.paused:
                return f"✅ The webhook is fine: not paused, {hook.num_consecutive_times_failed} failure(s) in a row."
            await self.patreon.update_webhook(token, hook.id, paused=False)
            after = await self.patreon.webhook_for_uri(token, uri)
            if after is not None and not after.paused:
                return "✅ The webhook is unpaused; Patreon now sends the deliveries it queued while paused."
            return "⚠️ Patreon still shows the webhook paused after the bot asked to unpause it; try again later."

        try:
            return await service.with_creator_token(repair)
        except (PatreonError, CampaignUnavailable) as error:
            log.warning("webhook repair for campaign %s failed: %s", campaign_id, error)
            return f"Patreon couldn't be asked just now ({type(error).__name__}); nothing was changed. Try again later."

    async def health_lines(self, guild_id: int) -> list[HealthLine]:
        """`check`'s lines for the connection: a revoked creator token, and the webhook as Patreon shows it."""
        service = await self.participation.campaign_for(guild_id)
        if service is None:
            return []
        campaign_id = service.known_campaign_id()
        if await self._revoked(service):
            return [
                HealthLine(
                    False,
                    f"Patreon refused campaign {campaign_id}'s creator token (the creator may have removed the app), "
                    f"so roles are held as they are; {RECONNECT}."
                    if not service.from_env
                    else "Patreon refused the .env creator token, so roles are held as they are; set fresh tokens "
                    f"or {RECONNECT}.",
                )
            ]
        try:
            hooks = await service.with_creator_token(self.patreon.list_webhooks)
        except (PatreonError, CampaignUnavailable) as error:
            log.info("check: couldn't ask Patreon about campaign %s's webhooks: %s", campaign_id, error)
            return [HealthLine(True, "Couldn't ask Patreon about the webhook just now.")]
        return [_webhook_line(hooks, self._uris(service))]

    async def _revoked(self, service: CampaignService) -> bool:
        if service.from_env:
            return isinstance(await self.store.get_fact(service.fact_key(CREATOR_REJECTED_FACT)), dict)
        record = await self.store.get_campaign(service.known_campaign_id() or "")
        return record is not None and record.state == REVOKED

    def _uris(self, service: CampaignService) -> tuple[str, ...]:
        base = self.public_base_url.rstrip("/")
        if service.from_env:
            return (f"{base}/patreon/webhook", webhook_uri(base, service.known_campaign_id() or ""))
        return (webhook_uri(base, service.known_campaign_id() or ""),)


def _webhook_line(hooks: Sequence[Webhook], uris: tuple[str, ...]) -> HealthLine:
    hook = next((hook for hook in hooks if hook.uri in uris), None)
    if hook is None:
        return HealthLine(False, "Patreon has no webhook for this campaign; run `/patreon-admin webhook repair`.")
    failed = hook.num_consecutive_times_failed
    if hook.paused:
        return HealthLine(
            False,
            f"Patreon paused the webhook after {failed} failed deliveries in a row; run "
            "`/patreon-admin webhook repair` (Patreon then re-sends what it queued).",
        )
    return HealthLine(failed == 0, f"Patreon's webhook is active ({failed} failed deliveries in a row).")
