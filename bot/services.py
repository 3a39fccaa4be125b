"""Wiring: one Patreon client, one store, one reconcile engine, and the services built on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from bot.admin import AdminService
from bot.campaign import CampaignService
from bot.config import Config
from bot.linking import LinkingService
from bot.models import TokenPair
from bot.patreon.client import PatreonClient
from bot.reconcile import ReconcileService, RoleGateway
from bot.store import Store

USER_AGENT = "patreon-role-sync/0.1 (+https://github.com/patreon-role-sync/patreon-role-sync)"


@dataclass
class Services:
    config: Config
    store: Store
    patreon: PatreonClient
    campaign: CampaignService
    reconcile: ReconcileService
    linking: LinkingService
    admin: AdminService


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
    )
    # The portal shows the creator pair without an expiry: treat it as due for refresh in a week.
    seed = TokenPair(
        access_token=config.patreon_creator_access_token,
        refresh_token=config.patreon_creator_refresh_token,
        expires_at=clock() + timedelta(days=8),
    )
    campaign = CampaignService(patreon, store, seed, clock, config.patreon_campaign_id)
    reconcile = ReconcileService(store, gateway, clock)
    linking = LinkingService(config.signing_key, patreon, store, campaign, reconcile)
    admin = AdminService(store, campaign, reconcile, linking)
    return Services(config, store, patreon, campaign, reconcile, linking, admin)
