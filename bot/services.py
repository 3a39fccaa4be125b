"""Wiring: one Patreon client, one store, one reconcile engine, and the services built on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from bot.accounts.link_flow import LinkFlow
from bot.accounts.linking import LinkingService
from bot.config import Config
from bot.domain.models import TokenPair
from bot.guild_admin.service import AdminService
from bot.patreon.client import PatreonClient
from bot.store import Store
from bot.sync.campaign import CampaignService
from bot.sync.channel_log import ChannelLog
from bot.sync.participation import Participation
from bot.sync.plan_scope import DirtyMembers
from bot.sync.reconcile import ReconcileService, RoleGateway
from bot.sync.refresh import RefreshScheduler, RefreshService
from bot.sync.role_jobs import RoleJobs
from bot.sync.role_pacing import RoleCallPacer
from bot.sync.webhook_apply import WebhookApplier
from bot.web.discord_sign_in import DISCORD_CALLBACK_PATH, DiscordSignInClient
from bot.web.webhook_receiver import WebhookReceiver

USER_AGENT = "patreon-role-sync/0.1 (+https://github.com/patreon-role-sync/patreon-role-sync)"


@dataclass
class Services:
    config: Config
    store: Store
    patreon: PatreonClient
    campaign: CampaignService
    reconcile: ReconcileService
    linking: LinkingService
    link_flow: LinkFlow
    admin: AdminService
    jobs: RoleJobs
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


def build_services(
    config: Config,
    store: Store,
    session: aiohttp.ClientSession,
    gateway: RoleGateway,
    clock: Callable[[], datetime],
) -> Services:
    patreon = PatreonClient(
        session,
        base_url=config.patreon_base_url,
        client_id=config.patreon_client_id,
        client_secret=config.patreon_client_secret,
        redirect_uri=config.patreon_redirect_uri,
        user_agent=USER_AGENT,
        clock=clock,
    )
    # The portal shows the creator pair without an expiry: treat it as due for refresh in a week.
    seed = TokenPair(
        access_token=config.patreon_creator_access_token,
        refresh_token=config.patreon_creator_refresh_token,
        expires_at=clock() + timedelta(days=8),
    )
    channel_log = ChannelLog(gateway.post_log)
    participation = Participation(store, gateway.guild_ids, config.allowed_guild_ids)
    pacer = RoleCallPacer(per_guild=config.role_calls_per_guild, window_seconds=config.role_window_seconds)
    reconcile = ReconcileService(
        store, gateway, clock, limiter=pacer, channel_log=channel_log, participation=participation
    )
    campaign = CampaignService(
        patreon, store, seed, clock, config.patreon_campaign_id, on_token_rejected=reconcile.alert_every_server
    )
    linking = LinkingService(patreon, store, campaign, reconcile, gateway, clock)
    discord_sign_in = DiscordSignInClient(
        session,
        base_url=config.discord_base_url,
        client_id=config.discord_client_id,
        client_secret=config.discord_client_secret,
        redirect_uri=config.public_base_url + DISCORD_CALLBACK_PATH,
    )
    link_flow = LinkFlow(config.signing_key, config.public_base_url, discord_sign_in, patreon, linking, store, clock)
    jobs = RoleJobs(store, reconcile, gateway, clock, pacer=pacer)
    admin = AdminService(store, campaign, reconcile, linking, jobs, gateway, participation)
    applier = WebhookApplier(store, patreon, campaign, reconcile, jobs, gateway, clock)
    webhooks = WebhookReceiver(config.patreon_webhook_secret, store, clock, on_recorded=applier.wake)
    dirty_members = DirtyMembers()
    refresh = RefreshService(patreon, store, campaign, reconcile, jobs, gateway, clock, dirty_members)
    scheduler = RefreshScheduler(refresh, config.refresh_interval_minutes)
    return Services(
        config=config,
        store=store,
        patreon=patreon,
        campaign=campaign,
        reconcile=reconcile,
        linking=linking,
        link_flow=link_flow,
        admin=admin,
        jobs=jobs,
        webhooks=webhooks,
        webhook_applier=applier,
        refresh=refresh,
        scheduler=scheduler,
        dirty_members=dirty_members,
        channel_log=channel_log,
        gateway=gateway,
        clock=clock,
    )
