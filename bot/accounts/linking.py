"""Linking a Discord user to their Patreon account: start, OAuth callback, unlink.

The callback stores nothing until the state is proven genuine, fresh and unused and Patreon has
accepted the code; roles are granted in the same request so the patron sees them at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.accounts.link_home import LinkHomes
from bot.accounts.oauth_state import LinkState
from bot.domain.dm_templates import plain
from bot.domain.models import Identity, MembershipSnapshot, PatreonUser, PatronStatus, TokenPair
from bot.patreon.creator_api import CreatorClient, sees_every_membership
from bot.patreon.errors import PatreonAuthError, PatreonBadResponse, PatreonError
from bot.store import Link, Store, patron_subject
from bot.store.links import ADMIN_SOURCE
from bot.sync.campaign import CampaignService, CampaignUnavailable, CreatorTokenRejected
from bot.sync.member_plan import ReconcileOutcome
from bot.sync.reconcile import ReconcileService
from bot.sync.replaced_hand_link import settle_replaced_hand_link
from bot.sync.role_gateway import RoleGateway

log = logging.getLogger(__name__)

#: `identity.memberships`: without it /identity shows only the membership of the client owner's campaign, so a
#: patron of a connected campaign would look like no patron (docs/patreon-api.md, "Creators and campaigns").
PATRON_SCOPES = ("identity", "identity.memberships")


@dataclass(frozen=True)
class LinkResult:
    """What the callback page shows."""

    ok: bool
    headline: str
    detail: str
    patreon_name: str | None = None
    #: The Discord account that was linked: shown so that someone who followed a forwarded button notices.
    discord_name: str | None = None
    tier_titles: tuple[str, ...] = ()
    roles_given: tuple[str, ...] = ()
    status: int = 200


@dataclass(frozen=True)
class UnlinkResult:
    was_linked: bool
    roles_removed: tuple[str, ...] = ()
    #: Roles the bot gave but could not take back, each with the reason ("@Gold: above the bot's role").
    roles_kept: tuple[str, ...] = ()
    outcomes: list[ReconcileOutcome] = field(default_factory=list)

    def describe(self) -> str:
        removed = ", ".join(f"@{name}" for name in self.roles_removed) or "none"
        text = f"Roles removed: {removed}."
        if self.roles_kept:
            text += f" Couldn't remove: {'; '.join(self.roles_kept)}. A server admin can fix that."
        return text


class LinkingService:
    def __init__(
        self,
        client: CreatorClient,
        store: Store,
        campaign: CampaignService,
        reconcile: ReconcileService,
        gateway: RoleGateway,
        clock: Callable[[], datetime],
        *,
        on_linked: Callable[[str], None] = lambda how: None,
        on_unlinked: Callable[[str], None] = lambda who: None,
        homes: LinkHomes | None = None,
    ) -> None:
        """`on_linked(how)` hears of each new link made here ("oauth", "admin"): a Discord user linked to a Patreon
        account they weren't linked to (signing in again to the same account is no new link); `on_unlinked(who)` of
        each link removed ("patron", "admin", "undo"). bot/services.py hands in the metrics' counters."""
        self.client = client
        self.store = store
        self.campaign = campaign
        self.reconcile = reconcile
        self.gateway = gateway
        self.clock = clock
        self._on_linked = on_linked
        self._on_unlinked = on_unlinked
        #: Where a Linked Roles verification's link lands (bot/accounts/link_home.py); None: this process's servers.
        self.homes = homes or LinkHomes(reconcile, store)

    async def server_refusal(self, guild_id: int) -> str | None:
        """Why this server doesn't act for the campaign (bot/sync/participation.py), or None: no link starts or
        finishes there, since a link posts the patron's Patreon name and the welcome into the server's channels."""
        return await self.reconcile.participation_refusal(guild_id)

    async def complete_link(self, state: LinkState, params: Mapping[str, str]) -> LinkResult:
        """Patreon's callback, once bot.accounts.link_flow has proven the state, the browser and the Discord user."""
        if not await self.store.consume_state(state.nonce, state.expires_at):
            return _failure("This link was already used.", "Each link works once. Run /patreon link again in Discord.")
        if params.get("error"):
            return _failure(
                "You didn't allow access on Patreon.",
                "Nothing was linked. If that was a mistake, run /patreon link again and press Allow.",
                status=200,
            )
        code = params.get("code", "")
        if not code:
            return _failure("Patreon didn't send an authorisation code.", "Run /patreon link again in Discord.")
        servers = await self.homes.servers_with(state.discord_user_id) if state.chooses_home else []
        campaign = self.campaign if servers else await self.reconcile.campaign_for(state.guild_id, self.campaign)
        if campaign is None or (state.chooses_home and not servers):
            return _failure(
                "This server doesn't follow a Patreon campaign any more.",
                "Nothing was linked. Ask a server admin to connect the campaign, then run /patreon link again.",
                409,
            )
        guild_id = state.guild_id
        try:
            tokens = await self.client.exchange_code(code)
            identity = await self.client.get_identity(tokens.access_token)
            if state.chooses_home:
                home = await self.homes.home_of(state.discord_user_id, servers, identity, self.campaign)
                if home is None:
                    log.info("no link: patreon=%s, no campaign of user=%s's", identity.user.id, state.discord_user_id)
                    return _NO_CAMPAIGN
                guild_id, campaign = home.guild_id, home.campaign
            campaign_id = await campaign.campaign_id()
            membership, known = await self._membership_of(campaign, campaign_id, identity, tokens)
        except CreatorTokenRejected as error:  # the creator's token, confirming the member: not the patron's sign-in
            log.warning("link for user=%s: the creator's token was refused: %s", state.discord_user_id, error)
            return _failure(
                "Patreon isn't answering right now.",
                "Nothing was changed. Please run /patreon link again in a few minutes.",
                502,
            )
        except PatreonAuthError as error:
            log.warning("link for user=%s failed at Patreon: %s", state.discord_user_id, error)
            return _failure(
                "Patreon did not accept this sign-in.", "The code may have expired. Run /patreon link again."
            )
        except PatreonBadResponse as error:
            log.warning("link for user=%s failed: Patreon's answer is unusable: %s", state.discord_user_id, error)
            return _failure(
                "Patreon sent an answer the bot can't use.",
                "Nothing was linked. Please run /patreon link again later; if it keeps happening, tell an admin.",
                502,
            )
        except (PatreonError, CampaignUnavailable) as error:
            log.warning("link for user=%s failed: Patreon unavailable: %s", state.discord_user_id, error)
            return _failure(
                "Patreon isn't answering right now.",
                "Nothing was changed. Please run /patreon link again in a few minutes.",
                502,
            )

        refusal = await self._ownership_refusal(
            identity.user.id, identity.user.social_discord_id, state.discord_user_id
        )
        if refusal is not None:
            return refusal
        previous = await self.store.get_link_by_discord(state.discord_user_id)
        await self.store.save_tokens(patron_subject(identity.user.id), tokens)
        replaced = await self.store.save_link(state.discord_user_id, identity.user.id, guild_id, "oauth")
        if previous is not None and previous.patreon_user_id != identity.user.id:
            await self.store.delete_tokens(patron_subject(previous.patreon_user_id))
        if membership is not None:
            await self.store.save_membership(_with_user(membership, identity.user.id, self.clock()), campaign_id)
        elif known:
            await self.store.delete_membership(identity.user.id, campaign_id)
        else:
            log.info(
                "link patreon=%s: the token can't see campaign %s; the stored membership stands",
                identity.user.id,
                campaign_id,
            )
            membership = await self.store.get_membership(identity.user.id, campaign_id)
        log.info("linked discord=%s patreon=%s in guild=%s", state.discord_user_id, identity.user.id, guild_id)
        await self._hand_links_replaced(state.discord_user_id, identity.user, (replaced, previous))
        is_new_link = previous is None or previous.patreon_user_id != identity.user.id
        if is_new_link:
            self._on_linked("oauth")
        return await self._grant_after_link(
            guild_id, state.discord_user_id, identity.user, membership, is_new_link, campaign_id
        )

    async def _membership_of(
        self, campaign: CampaignService, campaign_id: str, identity: Identity, tokens: TokenPair
    ) -> tuple[MembershipSnapshot | None, bool]:
        """(the patron's membership of the campaign, whether an absent one means "no membership").

        Absent means "can't see" unless the token has `identity.memberships` or the campaign is the client owner's
        (the .env campaign). A connected campaign's membership read with the patron's token is confirmed with the
        creator's token (`/members/{id}`, the source of truth of webhooks and refreshes) before it is stored.
        """
        membership = identity.membership_for(campaign_id)
        if membership is None:
            return None, campaign.from_env or sees_every_membership(tokens)
        member_id = membership.member_id
        if campaign.from_env or member_id is None:
            return membership, True
        confirmed = await campaign.with_creator_token(
            lambda token: self.client.confirm_member(token, campaign_id, member_id)
        )
        if confirmed is not None and confirmed.patreon_user_id not in (None, identity.user.id):
            raise PatreonBadResponse(f"member {member_id} belongs to patreon={confirmed.patreon_user_id}")
        return confirmed, True

    async def _ownership_refusal(
        self, patreon_user_id: str, social_discord_id: int | None, discord_user_id: int
    ) -> LinkResult | None:
        """Refuse a sign-in that would hand someone else's Patreon to this Discord user.

        The button can be forwarded: whoever signs in decides the Patreon side. An account already
        linked to another Discord user, or one Patreon says belongs to another Discord user, is refused. A link
        an admin made by hand is no such proof: signing in to the Patreon account beats it (`_hand_links_replaced`).
        """
        existing = await self.store.get_link_by_patreon(patreon_user_id)
        if existing is not None and existing.discord_user_id != discord_user_id and not existing.by_hand:
            return _failure(
                "This Patreon account is already linked to another Discord account.",
                "Nothing was changed. If that account is yours, run /patreon unlink there first; otherwise ask a "
                "server admin.",
                409,
            )
        if social_discord_id is not None and social_discord_id != discord_user_id:
            return _failure(
                "This Patreon account is connected to a different Discord account.",
                "Nothing was changed. Sign in to Patreon with your own account, or ask a server admin.",
                409,
            )
        return None

    async def _hand_links_replaced(
        self, discord_user_id: int, user: PatreonUser, lost: tuple[Link | None, Link | None]
    ) -> None:
        """The patron's own sign-in replaced links made by hand (of this Patreon account to someone else, or of this
        Discord user to another Patreon account): whoever held one loses the roles it gave, and the server whose
        admin made it is told (bot/sync/replaced_hand_link.py). The new link is stored already, so a failure there
        is logged only; the sign-in itself reconciles this Discord user next (`_grant_after_link`)."""
        for link in {link for link in lost if link is not None and link.by_hand}:
            if link.discord_user_id == discord_user_id and link.patreon_user_id == user.id:
                continue  # the same pair, now proven by the patron
            line = (
                f"<@{discord_user_id}> signed in to Patreon as {plain(user.full_name or user.id)} themselves, "
                f"which replaced the link by hand of <@{link.discord_user_id}> to Patreon "
                f"{plain(link.patreon_user_id)} made in this server."
            )
            await settle_replaced_hand_link(
                self.store,
                self.reconcile,
                link,
                (discord_user_id, user.id),
                "patron sign-in",
                line,
                new_holder_reconciled_next=True,
            )

    async def _grant_after_link(
        self,
        guild_id: int,
        discord_user_id: int,
        user: PatreonUser,
        membership: MembershipSnapshot | None,
        is_new_link: bool,
        campaign_id: str | None = None,
    ) -> LinkResult:
        """The link is stored; a Discord hiccup now must not turn the page into a failure."""
        tiers = await self.store.get_tiers(campaign_id)
        tier_titles = tuple(
            tiers[tier_id].title if tier_id in tiers else tier_id
            for tier_id in (membership.entitled_tier_ids if membership else ())
        )
        try:
            outcomes = await self.reconcile.reconcile_user_everywhere(discord_user_id, "linked")
            name = plain(user.full_name or user.id)  # Patreon names are their owners' choice (R5-7): inert text
            await self._tell(guild_id, f"<@{discord_user_id}> linked Patreon account {name}")
            if is_new_link and membership is not None and membership.patron_status is PatronStatus.ACTIVE:
                await self._welcome(guild_id, discord_user_id, tier_titles)
        except Exception:
            log.exception("link stored for discord=%s but the roles could not be applied yet", discord_user_id)
            return LinkResult(
                ok=True,
                headline="Your Patreon account is linked.",
                detail="Discord didn't answer just now; your roles will follow within a few minutes.",
                patreon_name=user.full_name,
                discord_name=self.gateway.user_name(discord_user_id),
                tier_titles=tier_titles,
            )
        problems = [why for outcome in outcomes for why in [*outcome.blocked.values(), outcome.error] if why]
        roles_given = tuple(
            self.gateway.role_name(outcome.guild_id, role_id)
            for outcome in outcomes
            for role_id in sorted(outcome.added)
        )
        here = next((outcome for outcome in outcomes if outcome.guild_id == guild_id), None)
        summary = here.summary if here is not None else "You are not in the server any more."
        detail = summary if membership else "You aren't a member of this creator's Patreon yet."
        if problems:
            detail += f" Some roles couldn't be given ({problems[0]}); the server's admins can see why."
        return LinkResult(
            ok=True,
            headline="Your Patreon account is linked.",
            detail=detail,
            patreon_name=user.full_name,
            discord_name=self.gateway.user_name(discord_user_id),
            tier_titles=tier_titles,
            roles_given=roles_given,
        )

    async def link_by_hand(self, discord_user_id: int, patreon_user_id: str, guild_id: int) -> None:
        """An admin's `link-user`, once bot/guild_admin has checked who may make it: stored and counted here."""
        previous = await self.store.get_link_by_discord(discord_user_id)
        await self.store.save_link(discord_user_id, patreon_user_id, guild_id, ADMIN_SOURCE)
        if previous is None or previous.patreon_user_id != patreon_user_id:
            self._on_linked("admin")

    async def unlink(self, discord_user_id: int, *, who: str = "patron") -> UnlinkResult:
        """Forget the link and the tokens, then take back only the roles this bot granted.

        The pair is also opted out of auto-match, or the next refresh would link it again from the patron's
        Discord connection on Patreon; linking it explicitly again (OAuth, an admin) lifts the opt-out. `who`:
        "patron" (`/patreon unlink`, the panel's button), "admin" (`unlink-user`) or "undo" (the result page).
        """
        link = await self.store.delete_link(discord_user_id, opt_out_at=self.clock())
        if link is None:
            return UnlinkResult(was_linked=False)
        self._on_unlinked(who)
        await self.store.delete_tokens(patron_subject(link.patreon_user_id))
        outcomes = await self.reconcile.reconcile_user_everywhere(discord_user_id, "unlinked")
        for outcome in outcomes:  # a lapse belongs to the link: relinking (perhaps another account) starts afresh
            await self.store.clear_lapse(outcome.guild_id, discord_user_id)
        removed = tuple(
            self.gateway.role_name(outcome.guild_id, role_id)
            for outcome in outcomes
            for role_id in sorted(outcome.removed)
        )
        kept = tuple(
            f"@{self.gateway.role_name(outcome.guild_id, role_id)}: {why}"
            for outcome in outcomes
            for role_id, why in sorted(outcome.blocked.items())
        ) + tuple(f"{outcome.error}" for outcome in outcomes if outcome.error)
        if link.linked_in_guild_id is not None:
            await self._tell(link.linked_in_guild_id, f"<@{discord_user_id}> unlinked their Patreon")
        return UnlinkResult(was_linked=True, roles_removed=removed, roles_kept=kept, outcomes=outcomes)

    async def _tell(self, guild_id: int, text: str) -> None:
        """A line for the server's log channel, only while the server acts for the campaign: these lines name
        patrons' Patreon accounts, which a server that doesn't take part (any more) must not learn."""
        problem = await self.server_refusal(guild_id)
        if problem is not None:
            log.info("guild=%s not told (%s): %s", guild_id, problem, text)
            return
        await self.reconcile.log_event(guild_id, text)

    async def _welcome(self, guild_id: int, discord_user_id: int, tier_titles: tuple[str, ...]) -> None:
        """The optional public thank-you, off unless the server turned it on."""
        settings = await self.store.get_settings(guild_id)
        channel_id = settings.welcome_channel_id or settings.log_channel_id
        if not settings.welcome_on_link or channel_id is None:
            return
        tier = f" as **{', '.join(plain(title) for title in tier_titles)}**" if tier_titles else ""
        await self.gateway.post_log(
            channel_id, f"🎉 Welcome <@{discord_user_id}>, and thank you for supporting us on Patreon{tier}!"
        )


def _failure(headline: str, detail: str, status: int = 400) -> LinkResult:
    return LinkResult(ok=False, headline=headline, detail=detail, status=status)


_NO_CAMPAIGN = _failure(
    "You aren't a member of the Patreon of a creator whose server you're in.",
    "Nothing was linked; your Discord account stays connected. Once you join the creator's Patreon, open the "
    "role's Linked Roles requirement again.",
    200,
)


def _with_user(membership: MembershipSnapshot, patreon_user_id: str, now: datetime) -> MembershipSnapshot:
    """Identity memberships may omit the user relationship; we know whose it is."""
    return replace(
        membership,
        patreon_user_id=membership.patreon_user_id or patreon_user_id,
        observed_at=membership.observed_at or now,
    )
