"""A loopback Patreon API v2 (OAuth, identity, campaigns, members, webhooks) that behaves like the real one.

What it reproduces, and the Patreon behaviour behind it: docs/patreon-api.md, "What the fake Patreon reproduces".
"""

from fakes.patreon.deliveries import Delivery
from fakes.patreon.fake import FakePatreon
from fakes.patreon.oauth import CREATOR_SCOPES
from fakes.patreon.state import DEFAULT, CampaignState, FakeMember, FakeTier, FakeUser
from fakes.patreon.webhooks import FakeWebhook, sign

__all__ = [
    "CREATOR_SCOPES",
    "DEFAULT",
    "CampaignState",
    "Delivery",
    "FakeMember",
    "FakePatreon",
    "FakeTier",
    "FakeUser",
    "FakeWebhook",
    "sign",
]
