"""A loopback Patreon API v2 (OAuth, identity, campaigns, members, webhooks) that behaves like the real one.

See /work/shared/PATREON_API.md section 8 for what it reproduces and why.
"""

from fakes.patreon.fake import FakePatreon
from fakes.patreon.state import DEFAULT, FakeMember, FakeTier, FakeUser
from fakes.patreon.webhooks import FakeWebhook, sign

__all__ = ["DEFAULT", "FakeMember", "FakePatreon", "FakeTier", "FakeUser", "FakeWebhook", "sign"]
