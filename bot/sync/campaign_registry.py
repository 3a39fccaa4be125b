"""Every campaign this install serves, one `CampaignService` each, and which one a server follows.

Two kinds: the `.env` campaign (the configured creator tokens, imported at start-up with source env; it is
followed by the servers the old ownership rule admits, bot/sync/participation.py), and the campaigns connected
through the creator's own OAuth (`add`), each followed by the servers explicitly bound to it
(`bind_guild`). A server bound to a campaign follows that one only; the binding is written only by the connect
flow, which proves the creator consented. Once a server is bound to the `.env` campaign itself, its creator has
shown which servers are theirs, so the old rule's "the only unbound server" no longer admits any server to it
(`env_connected`, remembered in `service_state` across restarts and disconnects).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.domain.models import TokenPair
from bot.store import Store
from bot.store.campaigns import OAUTH_SOURCE, CampaignRecord, campaign_token_subject
from bot.sync.campaign import CREATOR_REJECTED_FACT, CampaignService

log = logging.getLogger(__name__)

#: service_state: the id of the `.env` campaign once a server was bound to it through OAuth (never cleared).
ENV_CONNECTED_FACT = "env-campaign-connected"

#: Builds the service of a connected campaign from its stored record (the wiring supplies client, clock, alerts).
ServiceFactory = Callable[[CampaignRecord], CampaignService]


class CampaignRegistry:
    def __init__(self, store: Store, build: ServiceFactory, env: CampaignService | None = None) -> None:
        """`env`: the `.env` campaign's service, None when no creator tokens are configured."""
        self.store = store
        self._build = build
        self.env = env
        self._connected: dict[str, CampaignService] = {}
        #: Bumped by every change made here, so a `reload` that read the store before one doesn't undo it.
        self._changes = 0
        #: The campaign id `ENV_CONNECTED_FACT` names (None: no server was ever bound to the `.env` campaign).
        self._env_connected_id: str | None = None

    @classmethod
    def of(cls, service: CampaignService) -> CampaignRegistry:
        """A registry of one campaign, for code and tests that build a single `CampaignService`."""

        def refuse(record: CampaignRecord) -> CampaignService:
            raise ValueError("a single-campaign registry connects nothing")

        return cls(service.store, refuse, env=service)

    async def load(self) -> None:
        """Read the connected campaigns at start-up (no Patreon call), and the `.env` campaign's id if known."""
        for record in await self.store.campaign_records():
            # A revoked one too: its servers keep following it (roles held, nothing asked of Patreon, `check`
            # says to reconnect) until it is connected again or disconnected.
            if record.source == OAUTH_SOURCE:
                self._connected[record.campaign_id] = self._build(record)
        if self.env is not None:
            await self.env.storage_key()
        await self._read_env_connected()
        log.info(
            "campaigns: %s%d connected",
            "the .env campaign and " if self.env is not None else "no .env campaign, ",
            len(self._connected),
        )

    async def reload(self) -> None:
        """Serve the connected campaigns (and the servers bound to them) as stored now: with several bot processes
        on one database (shards), another process may have connected, disconnected or re-hooked one (a new webhook
        secret), or bound a server to one (the connect flow's callback lands on any process). A served
        campaign keeps its service (its token lock); only its secret follows the store. The wiring calls this every
        few seconds, so a change made elsewhere is served here within that (bot/discord_io/client.py)."""
        self.store.forget_cached_bindings()  # which server follows which campaign: read afresh at the next look
        changes = self._changes
        records = {r.campaign_id: r for r in await self.store.campaign_records() if r.source == OAUTH_SOURCE}
        found = await self.store.get_fact(ENV_CONNECTED_FACT)  # another process connected the .env campaign
        if isinstance(found, str):
            self._env_connected_id = found  # once set, never unset: no await between the read and this write
        if changes != self._changes:
            return  # this process changed something while the store was read: the next reload sees both
        for campaign_id in [c for c in self._connected if c not in records]:
            del self._connected[campaign_id]
            log.info("campaign %s was disconnected by another process; no longer served here", campaign_id)
        for campaign_id, record in records.items():
            service = self._connected.get(campaign_id)
            if service is None:
                self._connected[campaign_id] = self._build(record)
                log.info("campaign %s was connected by another process; served here too", campaign_id)
            elif service.webhook_secret != (record.webhook_secret or ""):
                service.webhook_secret = record.webhook_secret or ""
                log.info("campaign %s: its webhook secret was changed by another process", campaign_id)

    # -- the connect helper's API ------------------------------------------------------------------

    async def add(
        self, campaign_id: str, tokens: TokenPair, webhook_secret: str | None, *, webhook_id: str | None = None
    ) -> CampaignService:
        """Connect (or re-connect) a campaign with its creator's token pair and its webhook's secret: stored
        (tokens and secret sealed) before it is served, and any earlier refusal of its token forgotten."""
        subject = campaign_token_subject(campaign_id)
        await self.store.save_tokens(subject, tokens)
        record = await self.store.save_campaign(
            campaign_id, token_subject=subject, source=OAUTH_SOURCE, webhook_secret=webhook_secret,
            webhook_id=webhook_id,
        )
        service = self._build(record)
        await self.store.set_fact(service.fact_key(CREATOR_REJECTED_FACT), None)
        self._connected[campaign_id] = service
        self._changes += 1
        log.info("campaign %s connected", campaign_id)
        return service

    async def set_webhook(self, campaign_id: str, webhook_id: str | None, webhook_secret: str | None) -> None:
        """The campaign's webhook changed (registered, re-created, deleted): stored, and served at once."""
        await self.store.set_campaign_webhook(campaign_id, webhook_id, webhook_secret)
        self._changes += 1
        service = self._connected.get(campaign_id)
        if service is not None:
            service.webhook_secret = webhook_secret or ""

    async def remove(self, campaign_id: str) -> list[int]:
        """Disconnect: forget the campaign, its bindings and its creator tokens; return the servers that
        followed it. Roles the bot gave stay (a final sync takes them back)."""
        self._connected.pop(campaign_id, None)
        self._changes += 1
        guilds = await self.store.forget_campaign(campaign_id)
        log.info("campaign %s disconnected; %d server(s) no longer follow it", campaign_id, len(guilds))
        return guilds

    async def bind_guild(self, guild_id: int, campaign_id: str, by: int | None) -> None:
        """Make the server follow a connected campaign (only after the creator's consent: the connect flow)."""
        if campaign_id not in self._connected:
            raise ValueError(f"campaign {campaign_id} is not connected")
        await self.store.bind_guild(guild_id, campaign_id, by)
        log.info("guild=%s now follows campaign %s (bound by user=%s)", guild_id, campaign_id, by)
        if self.env is not None and self.env.known_campaign_id() == campaign_id:
            await self._mark_env_connected(campaign_id)

    @property
    def env_connected(self) -> bool:
        """Whether the `.env` campaign's creator connected it through OAuth (any server, now or before): then only
        servers bound to it or listed in ALLOWED_GUILD_IDS follow it (bot/sync/participation.py)."""
        env_id = self.env.known_campaign_id() if self.env is not None else None
        return env_id is not None and env_id == self._env_connected_id

    async def _read_env_connected(self) -> None:
        """From the store: the fact, or a binding to the `.env` campaign made before the fact was kept."""
        found = await self.store.get_fact(ENV_CONNECTED_FACT)
        self._env_connected_id = found if isinstance(found, str) else None
        env_id = self.env.known_campaign_id() if self.env is not None else None
        if env_id is not None and not self.env_connected and env_id in (await self.store.guild_bindings()).values():
            await self._mark_env_connected(env_id)

    async def _mark_env_connected(self, campaign_id: str) -> None:
        if self._env_connected_id == campaign_id:
            return
        await self.store.set_fact(ENV_CONNECTED_FACT, campaign_id)
        self._env_connected_id = campaign_id
        log.info("the .env campaign %s is connected: the one-server rule no longer admits servers to it", campaign_id)

    async def unbind_guild(self, guild_id: int) -> str | None:
        campaign_id = await self.store.unbind_guild(guild_id)
        if campaign_id is not None:
            log.info("guild=%s no longer follows campaign %s", guild_id, campaign_id)
        return campaign_id

    # -- lookups -------------------------------------------------------------------------------------

    def get(self, campaign_id: str | None) -> CampaignService | None:
        """The service of this campaign id (a connected one first, else the `.env` one if it is that id)."""
        if campaign_id is None:
            return None
        connected = self._connected.get(campaign_id)
        if connected is not None:
            return connected
        if self.env is not None and self.env.known_campaign_id() == campaign_id:
            return self.env
        return None

    def services(self) -> list[CampaignService]:
        """Every campaign served: the `.env` one first, then the connected ones by id."""
        found = [self.env] if self.env is not None else []
        return found + [self._connected[key] for key in sorted(self._connected)]

    def connected(self) -> list[CampaignService]:
        return [self._connected[key] for key in sorted(self._connected)]

    def connected_service(self, campaign_id: str) -> CampaignService | None:
        """The service of a campaign connected through OAuth and still served (None: not, or disconnected)."""
        return self._connected.get(campaign_id)

    async def bound_campaign(self, guild_id: int) -> CampaignService | None:
        """The connected campaign this server is explicitly bound to (None: none, or it is not active)."""
        binding = await self.store.guild_binding(guild_id)
        return None if binding is None else self._connected.get(binding.campaign_id)

    def webhook_secrets(self, campaign_id: str | None) -> list[str]:
        """The secrets a delivery addressed to `campaign_id` may be signed with (None: the legacy URL, which
        only the `.env` campaign's secret opens). No database read: this runs before the signature is checked."""
        if campaign_id is None:
            return [self.env.webhook_secret] if self.env is not None and self.env.webhook_secret else []
        service = self.get(campaign_id)
        secrets = [service.webhook_secret] if service is not None and service.webhook_secret else []
        env = self.env
        if env is not None and env is not service and env.known_campaign_id() == campaign_id and env.webhook_secret:
            secrets.append(env.webhook_secret)  # the .env campaign connected by OAuth too: either hook may send
        return secrets
