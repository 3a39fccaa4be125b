"""The creator's side of Patreon for a connected campaign: its webhooks, and a patron's membership of it.

`CreatorClient` is the one `PatreonClient` (same transport, retries and budget) with the calls that connecting a
campaign needs, parsed strictly: a webhook without an id, a created webhook without its secret, a listed one
missing a field we asked for, or a member of another campaign is a `PatreonBadResponse`, never a default. Errors
keep the client's types (`bot.patreon.errors`): a missing scope or a dead access token is a `PatreonAuthError`
with status 401, a campaign that isn't the token's a 403, a webhook that isn't the token's a `PatreonNotFound`, a
bad trigger or uri a `PatreonRequestError`; `is_revocation` tells a refresh refused for good (`invalid_grant`)
from the rest. Facts: docs/patreon-api.md, "Creators and campaigns".
"""

from __future__ import annotations

from typing import Any

from bot.domain.models import MembershipSnapshot, TokenPair
from bot.patreon._document import (
    JsonApiError,
    Requested,
    Resource,
    attributes_of,
    check_requested,
    require_document,
    require_list,
    require_resource,
)
from bot.patreon.client import API_PREFIX, WEBHOOK_FIELDS, PatreonClient
from bot.patreon.errors import PatreonAuthError, PatreonBadResponse, PatreonError, PatreonNotFound
from bot.patreon.jsonapi import Webhook
from bot.patreon.values import as_datetime

#: What a creator grants to connect a campaign (issue 10): no e-mail scope.
CREATOR_SCOPES = ("identity", "campaigns", "campaigns.members", "w:campaigns.webhook")
#: The triggers the bot registers: every member and pledge event of the campaign.
MEMBER_TRIGGERS = (
    "members:create",
    "members:update",
    "members:delete",
    "members:pledge:create",
    "members:pledge:update",
    "members:pledge:delete",
)
WEBHOOK_LIST_FIELDS: Requested = {"webhook": WEBHOOK_FIELDS}


def is_revocation(error: PatreonError) -> bool:
    """A refresh refused with `invalid_grant`: the creator revoked the app, or the pair rotated elsewhere. Retrying
    never helps; only a new connect does. (From `exchange_code` the same error means a bad or used code.)"""
    return isinstance(error, PatreonAuthError) and error.error == "invalid_grant"


def sees_every_membership(pair: TokenPair) -> bool:
    """Whether a patron's token lists memberships of campaigns other than the client owner's (docs: only with
    `identity.memberships`). Without it, "no membership of campaign B" means "can't see", not "not a patron"."""
    return "identity.memberships" in pair.scope


# ---------------------------------------------------------------- strict webhook documents


def _webhook(resource: Resource, *, need_secret: bool) -> Webhook:
    webhook_id = resource.get("id")
    if not isinstance(webhook_id, str) or not webhook_id.strip():
        raise JsonApiError("Patreon's webhook has no id")
    attributes = attributes_of(resource)
    uri = attributes.get("uri", "")
    triggers = attributes.get("triggers", [])
    secret = attributes.get("secret")
    paused = attributes.get("paused", False)
    failures = attributes.get("num_consecutive_times_failed", 0)
    if not isinstance(uri, str):
        raise JsonApiError(f"webhook {webhook_id}: uri is {type(uri).__name__}, not a string")
    if not isinstance(triggers, list) or not all(isinstance(t, str) for t in triggers):
        raise JsonApiError(f"webhook {webhook_id}: triggers are not a list of names")
    if secret is not None and not isinstance(secret, str):
        raise JsonApiError(f"webhook {webhook_id}: secret is {type(secret).__name__}, not a string")
    if need_secret and not secret:
        raise JsonApiError(f"webhook {webhook_id}: Patreon sent no secret, so its deliveries could not be checked")
    if isinstance(paused, str) and paused.lower() in ("true", "false"):
        paused = paused.lower() == "true"
    if not isinstance(paused, bool):
        raise JsonApiError(f"webhook {webhook_id}: paused is {paused!r}")
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
        raise JsonApiError(f"webhook {webhook_id}: num_consecutive_times_failed is {failures!r}")
    return Webhook(
        id=webhook_id,
        uri=uri,
        triggers=tuple(triggers),
        paused=paused,
        secret=secret or None,
        num_consecutive_times_failed=failures,
        last_attempted_at=as_datetime(attributes.get("last_attempted_at")),
    )


def parse_webhook_strict(doc: Any, *, need_secret: bool = False) -> Webhook:
    """POST/PATCH /webhooks answers: one webhook; a created one must carry its secret."""
    document = require_document(doc)
    return _webhook(require_resource(document["data"], "webhook"), need_secret=need_secret)


def parse_webhooks_strict(doc: Any, requested: Requested | None = WEBHOOK_LIST_FIELDS) -> list[Webhook]:
    """GET /webhooks: every field asked for must be there (a hook without `paused` is not an unpaused hook)."""
    document = require_document(doc)
    data = document["data"]
    if not isinstance(data, list):
        raise JsonApiError(f"expected a list of webhooks in 'data', got {type(data).__name__}")
    if any(not isinstance(item, dict) or item.get("type") not in (None, "webhook") for item in data):
        raise JsonApiError("the webhooks listing holds something that is not a webhook")
    resources = require_list(data, "webhook")
    check_requested(resources, requested)
    return [_webhook(resource, need_secret=False) for resource in resources]


# ---------------------------------------------------------------- the client


class CreatorClient(PatreonClient):
    """`PatreonClient` plus the connected-campaign calls; the webhook calls replace the lenient ones with strict
    parsing (same signatures), so one client object serves every campaign and shares one budget."""

    async def list_webhooks(self, access_token: str) -> list[Webhook]:
        """The webhooks this client made on the token's campaigns (Patreon hides every other one)."""
        params = {f"fields[{kind}]": ",".join(names) for kind, names in WEBHOOK_LIST_FIELDS.items()}
        body = await self._request("GET", f"{API_PREFIX}/webhooks", token=access_token, params=params)
        return self._parse(parse_webhooks_strict, body)

    def _read_created_webhook(self, body: Any) -> Webhook:
        """A created webhook's secret signs its deliveries: an answer without it is refused."""
        return self._parse(lambda doc: parse_webhook_strict(doc, need_secret=True), body)

    def _read_webhook(self, body: Any) -> Webhook:
        return self._parse(parse_webhook_strict, body)

    async def forget_webhook(self, access_token: str, webhook_id: str) -> bool:
        """Delete a webhook; False when Patreon no longer has it (already deleted), which is what was wanted."""
        try:
            await self.delete_webhook(access_token, webhook_id)
        except PatreonNotFound:
            return False
        return True

    async def webhook_for_uri(self, access_token: str, uri: str) -> Webhook | None:
        """The token's webhook delivering to `uri`, if there is one (how `repair` finds a missing or paused hook)."""
        return next((hook for hook in await self.list_webhooks(access_token) if hook.uri == uri), None)

    async def campaign_membership(self, patron_token: str, campaign_id: str) -> MembershipSnapshot | None:
        """The patron's membership of `campaign_id` from their own /identity, matched by campaign id only.

        Needs a token with `identity.memberships` for any campaign but the client owner's (`sees_every_membership`);
        a membership without a campaign relationship is never taken for this one.
        """
        identity = await self.get_identity(patron_token)
        return next((m for m in identity.memberships if m.campaign_id == campaign_id), None)

    async def confirm_member(self, creator_token: str, campaign_id: str, member_id: str) -> MembershipSnapshot | None:
        """The member as the campaign's creator sees it (`/members/{id}`); None if Patreon no longer has it.

        A member that belongs to another campaign is refused: its entitlement must never reach this campaign.
        """
        try:
            member = await self.get_member(creator_token, member_id)
        except PatreonNotFound:
            return None
        if member.campaign_id != campaign_id:
            raise PatreonBadResponse(f"member {member_id} belongs to campaign {member.campaign_id}, not {campaign_id}")
        return member
