"""Wiring: one Patreon client, one store, one reconcile engine, and the services built on them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from bot.accounts.connect_flow import ConnectFlow
from bot.accounts.link_flow import LinkFlow
from bot.accounts.link_home import LinkHomes, ServerMembers
from bot.accounts.linked_role_flow import LinkedRoleFlow
from bot.accounts.linked_role_view import LinkedRoleView
from bot.accounts.linked_roles import PLATFORM_NAME
from bot.accounts.linking import LinkingService
from bot.config import Config
from bot.domain.models import MembershipSnapshot, TokenPair
from bot.guild_admin.comps import CompService
from bot.guild_admin.connect import CampaignConnections
from bot.guild_admin.connect_recheck import AdminLookup, ConnectRecheck
from bot.guild_admin.lapse_kicks import KickGateway, LapseKicks, LapseKickSweeper
from bot.guild_admin.service import AdminService
from bot.observability.metrics import BotMetrics, RefreshFigures
from bot.observability.probes import DiscordProbe
from bot.observability.readiness import Readiness
from bot.patreon.budget import CLIENT_LIMIT, TOKEN_LIMIT, RequestBudget
from bot.patreon.client import PatreonClient
from bot.patreon.creator_api import CreatorClient
from bot.store import Store
from bot.store.campaigns import CampaignRecord
from bot.store.leases import Claimer
from bot.sync.campaign import CampaignService
from bot.sync.campaign_registry import CampaignRegistry
from bot.sync.channel_log import ChannelLog
from bot.sync.comp_expiry import CompExpiry
from bot.sync.member_plan import ReconcileOutcome
from bot.sync.other_shards import OtherShards
from bot.sync.participation import Participation
from bot.sync.patron_dms import PatronDms
from bot.sync.plan_scope import DirtyMembers
from bot.sync.reconcile import ReconcileService
from bot.sync.refresh import RefreshScheduler, RefreshService
from bot.sync.refresh_report import RefreshReport
from bot.sync.role_connection_push import RoleConnectionPusher
from bot.sync.role_gateway import RoleGateway
from bot.sync.role_jobs import RoleJobs
from bot.sync.role_pacing import ROLE_CALLS_BURST, ROLE_CALLS_PER_SECOND, RoleCallPacer, TokenBucket
from bot.sync.webhook_apply import WebhookApplier
from bot.web.discord_bearer import LINKED_ROLE_CALLBACK_PATH, DiscordBearerClient
from bot.web.discord_sign_in import DISCORD_CALLBACK_PATH, DiscordSignInClient
from bot.web.health_routes import Observability
from bot.web.webhook_receiver import WebhookReceiver

USER_AGENT = "patreon-role-sync/0.1 (+https://github.com/patreon-role-sync/patreon-role-sync)"


@dataclass
class Services:
    config: Config
    store: Store
    patreon: PatreonClient
    #: The `.env` campaign (without configured creator tokens, one that answers "no campaign is connected"). New
    #: code asks `campaigns` for the campaign of the server at hand.
    campaign: CampaignService
    #: Every campaign served and which one each server follows (bot/sync/campaign_registry.py).
    campaigns: CampaignRegistry
    reconcile: ReconcileService
    linking: LinkingService
    link_flow: LinkFlow
    #: `/patreon-admin connect`'s browser flow, and the admin's side of a connection (disconnect, webhook health).
    connect_flow: ConnectFlow
    connections: CampaignConnections
    #: Linked Roles: the verification URL's flow, and the worker that keeps each connected user's metadata true.
    linked_role_flow: LinkedRoleFlow
    role_connections: RoleConnectionPusher
    admin: AdminService
    jobs: RoleJobs
    #: Every bot-token call that is not a role call takes a token of its global bucket too (Linked Roles' records).
    pacer: RoleCallPacer
    webhooks: WebhookReceiver
    webhook_applier: WebhookApplier
    refresh: RefreshService
    scheduler: RefreshScheduler
    #: The Discord adapter marks here the members whose roles changed on Discord; the refresh plans them.
    dirty_members: DirtyMembers
    channel_log: ChannelLog
    #: Handed to whoever needs Discord or the time directly, so nothing reaches through another service.
    gateway: RoleGateway
    clock: Callable[[], datetime]
    #: /readyz and /metrics (bot/web/health_routes.py).
    observability: Observability
    #: The opt-in DMs' outbox (bot/sync/patron_dms.py); its sender runs in cogs/patron_dms.py.
    patron_dms: PatronDms
    #: Comps with an expiry and kick on lapse (issue 12, items 4 and 5); their workers run in cogs/comps.py.
    comps: CompService
    comp_expiry: CompExpiry
    lapse_kicks: LapseKicks
    kick_sweeper: LapseKickSweeper


def build_services(
    config: Config,
    store: Store,
    session: aiohttp.ClientSession,
    gateway: RoleGateway,
    clock: Callable[[], datetime],
    *,
    discord: DiscordProbe | None = None,
    claimer: Claimer | None = None,
    admins: AdminLookup | None = None,
    members: ServerMembers | None = None,
) -> Services:
    """`discord`: the Discord adapter's gateway state and role-call counts (None where there is no Discord).
    `admins`: a server admin's standing read from Discord, asked again when a connect binds (None: no Discord, so no
    connect binds).
    `members`: whether a user is in a server, asked of Discord from any process (None: no Discord, so a Linked Roles
    link lands only in this process's servers).
    `claimer`: who this process is when it claims queued work, for how long, and which shards' servers it claims
    jobs of (bot/store/leases.py; None: a fresh owner id, the default lease, the configured shards)."""
    if claimer is None:
        claimer = Claimer(shards=config.shards)
    patreon = CreatorClient(
        session,
        base_url=config.patreon_base_url,
        client_id=config.patreon_client_id,
        client_secret=config.patreon_client_secret,
        redirect_uri=config.patreon_redirect_uri,
        user_agent=USER_AGENT,
        clock=clock,
        # The one budget: every campaign's refresh and look-up share Patreon's client limit, and each token keeps to
        # Patreon's 100 a minute (with shards, each process its share of both: any process may use a campaign's
        # creator token for a webhook). A charge day's flood of look-ups with one creator token is turned into one
        # listing of the campaign instead (bot/sync/webhook_flood.py; docs/patreon-api.md "Rate limits").
        budget=RequestBudget(
            limit=max(2, int(CLIENT_LIMIT * _share(config))), token_limit=max(1, int(TOKEN_LIMIT * _share(config)))
        ),
    )
    # The portal shows the creator pair without an expiry: treat it as due for refresh in a week.
    seed = (
        TokenPair(
            access_token=config.patreon_creator_access_token,
            refresh_token=config.patreon_creator_refresh_token,
            expires_at=clock() + timedelta(days=8),
        )
        if config.has_env_campaign
        else None
    )
    channel_log = ChannelLog(gateway.post_log)

    async def alert_env_servers(text: str) -> None:
        await reconcile.alert_campaign_servers(campaign, text)

    campaign = CampaignService(
        patreon,
        store,
        seed,
        clock,
        config.patreon_campaign_id,
        on_token_rejected=alert_env_servers,
        webhook_secret=config.patreon_webhook_secret if seed is not None else "",
    )

    def connected_campaign(record: CampaignRecord) -> CampaignService:
        async def alert(text: str) -> None:
            await reconcile.alert_campaign_servers(service, text)

        service = CampaignService(
            patreon,
            store,
            None,
            clock,
            record.campaign_id,
            on_token_rejected=alert,
            token_subject=record.token_subject,
            source=record.source,
            webhook_secret=record.webhook_secret or "",
        )
        return service

    campaigns = CampaignRegistry(store, connected_campaign, env=campaign if seed is not None else None)
    participation = Participation(store, gateway.guild_ids, config.allowed_guild_ids, campaigns)
    # Discord's global limit is the bot token's, across every shard's process: each keeps to its share of it.
    share = _share(config)
    pacer = RoleCallPacer(
        per_guild=config.role_calls_per_guild,
        window_seconds=config.role_window_seconds,
        global_bucket=TokenBucket(ROLE_CALLS_PER_SECOND * share, max(1.0, ROLE_CALLS_BURST * share)),
    )
    patron_dms = PatronDms(
        store,
        clock,
        participation,
        lambda guild_id: reconcile.campaign_key(guild_id),
        gateway.role_name,
        lambda user_id: reconcile.member_guilds(user_id),
        claimer=claimer,  # a DM goes out once, from the process owning its server (bot/store/dm_outbox.py)
    )

    async def after_reconcile(outcome: ReconcileOutcome, cause: str) -> None:
        await patron_dms.on_outcome(outcome, cause)
        await role_connections.on_reconciled(outcome.user_id)  # Linked Roles follow at once, not at the next scan

    # With shards: a member's work in the servers other processes own goes to them as role jobs in the database.
    other_shards = OtherShards(
        store, config.shards, participation, lambda keys, cause, urgent: jobs.enqueue_many(keys, cause, urgent=urgent)
    )
    reconcile = ReconcileService(
        store,
        gateway,
        clock,
        limiter=pacer,
        channel_log=channel_log,
        participation=participation,
        on_outcome=after_reconcile,
        hand_off=None if config.shards.every_shard else other_shards.hand_off,
    )

    def count_link(how: str) -> None:  # the metrics are built last, below: they read the refresh
        observability.metrics.count_link(how)

    def count_unlink(who: str) -> None:
        observability.metrics.count_unlink(who)

    # A link without a button lands in a server that takes part anywhere in the install, not only this process's.
    homes = LinkHomes(reconcile, store, participation, members, config.allowed_guild_ids)
    linking = LinkingService(
        patreon, store, campaign, reconcile, gateway, clock, on_linked=count_link, on_unlinked=count_unlink, homes=homes
    )
    discord_sign_in = DiscordSignInClient(
        session,
        base_url=config.discord_base_url,
        client_id=config.discord_client_id,
        client_secret=config.discord_client_secret,
        redirect_uri=config.public_base_url + DISCORD_CALLBACK_PATH,
    )
    bearer = DiscordBearerClient(
        session,
        base_url=config.discord_base_url,
        client_id=config.discord_client_id,
        client_secret=config.discord_client_secret,
        redirect_uri=config.public_base_url + LINKED_ROLE_CALLBACK_PATH,
        clock=clock,
    )
    linked_role_view = LinkedRoleView(store, reconcile, clock)
    role_connections = RoleConnectionPusher(store, bearer, linked_role_view.wanted, clock, platform_name=PLATFORM_NAME)
    link_flow = LinkFlow(
        config.signing_key,
        config.public_base_url,
        discord_sign_in,
        patreon,
        linking,
        store,
        clock,
        after_link=role_connections.note,
    )
    linked_role_flow = LinkedRoleFlow(config.signing_key, bearer, patreon, role_connections, homes, store, clock)
    jobs = RoleJobs(store, reconcile, gateway, clock, pacer=pacer, claimer=claimer)
    admin = AdminService(store, campaign, reconcile, linking, jobs, gateway, participation, clock)
    comps = CompService(store, reconcile, gateway, participation, clock)
    kicks = LapseKicks(
        store, reconcile, gateway if isinstance(gateway, KickGateway) else None, participation, clock
    )
    async def list_flooded(campaign: CampaignService, cause: str, *, wait: float) -> RefreshReport | None:
        return await refresh.refresh_campaign(campaign, cause, wait=wait)  # a webhook flood's one listing

    applier = WebhookApplier(
        store,
        patreon,
        campaigns,
        reconcile,
        jobs,
        gateway,
        clock,
        on_auto_linked=count_link,
        claimer=claimer,
        list_campaign=list_flooded,
    )
    webhooks = WebhookReceiver(
        campaigns.webhook_secrets,
        store,
        clock,
        on_recorded=applier.wake,
        legacy_campaign=lambda: campaigns.env.known_campaign_id() if campaigns.env is not None else None,
    )
    dirty_members = DirtyMembers()

    async def memberships_changed(snapshots: Sequence[MembershipSnapshot], campaign_id: str) -> None:
        await patron_dms.on_memberships_changed(snapshots, campaign_id)
        await other_shards.memberships_changed(snapshots, campaign_id)  # their servers, planned by their process

    refresh = RefreshService(
        patreon,
        store,
        campaigns,
        reconcile,
        jobs,
        gateway,
        clock,
        dirty_members,
        on_changed=memberships_changed,
        on_auto_linked=count_link,
        on_forgotten=other_shards.memberships_forgotten,  # their roles elsewhere, taken back by their process
    )
    scheduler = RefreshScheduler(refresh, config.refresh_interval_minutes)

    async def after_connect(guild_id: int, campaign_id: str) -> None:
        """A server just connected: plan all of it at a refresh now, so linked patrons get roles at once."""
        refresh.request_full_plan(guild_id)
        await refresh.run(f"connect of campaign {campaign_id}")
    observability = _observability(config, store, patreon, refresh, clock, discord)
    public = config.public_base_url
    connections = CampaignConnections(store, patreon, campaigns, participation, gateway, public, pacer=pacer)
    return Services(
        config=config,
        store=store,
        patreon=patreon,
        campaign=campaign,
        campaigns=campaigns,
        reconcile=reconcile,
        linking=linking,
        link_flow=link_flow,
        connect_flow=ConnectFlow(
            config.signing_key,
            config.public_base_url,
            discord_sign_in,
            patreon,
            campaigns,
            participation,
            store,
            clock,
            after_connect=after_connect,
            connect_refusal=ConnectRecheck(admins, connections).refusal,
        ),
        connections=connections,
        linked_role_flow=linked_role_flow,
        role_connections=role_connections,
        admin=admin,
        jobs=jobs,
        pacer=pacer,
        webhooks=webhooks,
        webhook_applier=applier,
        refresh=refresh,
        scheduler=scheduler,
        dirty_members=dirty_members,
        channel_log=channel_log,
        gateway=gateway,
        clock=clock,
        observability=observability,
        patron_dms=patron_dms,
        comps=comps,
        comp_expiry=CompExpiry(store, jobs, reconcile, clock),
        lapse_kicks=kicks,
        kick_sweeper=LapseKickSweeper(kicks, clock),
    )


def _share(config: Config) -> float:
    """This process's part of the limits every process of the bot shares: its shards of all (1 unsharded)."""
    return len(config.shards.ids) / config.shards.count


def _observability(
    config: Config,
    store: Store,
    patreon: PatreonClient,
    refresh: RefreshService,
    clock: Callable[[], datetime],
    discord: DiscordProbe | None,
) -> Observability:
    def last_refresh() -> RefreshFigures | None:
        return _refresh_figures(refresh.last_report)

    def last_refresh_finished() -> datetime | None:
        report = refresh.last_report
        return report.finished_at if report is not None else None

    readiness = Readiness(
        store_ping=store.schema_version,
        gateway_connected=discord.connected if discord is not None else None,
        last_refresh_finished=last_refresh_finished,
        refresh_interval=timedelta(minutes=config.refresh_interval_minutes),
        clock=clock,
    )
    metrics = BotMetrics(
        store,
        clock,
        patreon_responses=lambda: patreon.response_counts,
        discord_role_calls=discord.role_call_counts if discord is not None else dict,
        last_refresh=last_refresh,
    )
    return Observability(readiness, metrics, config.metrics_token)


def _refresh_figures(report: RefreshReport | None) -> RefreshFigures | None:
    if report is None or report.finished_at is None:
        return None
    return RefreshFigures(
        ok=report.ok,
        finished_at=report.finished_at,
        duration_seconds=(report.finished_at - report.started_at).total_seconds(),
        members={
            "listed": report.members_listed,
            "planned": report.members_planned,
            "roles_differ": report.roles_differ,
            "forgotten": report.snapshots_forgotten,
            "jobs_queued": report.jobs_queued,
        },
    )
