"""A loopback Patreon API v2 (OAuth, identity, campaigns, members, webhooks) that behaves like the real one.

See /work/shared/PATREON_API.md section 8 for what it reproduces and why.
"""

from tests.fakes.fake_patreon.fake import FakePatreon
from tests.fakes.fake_patreon.state import DEFAULT, FakeMember, FakeTier, FakeUser
from tests.fakes.fake_patreon.webhooks import FakeWebhook, sign

__all__ = ["DEFAULT", "FakeMember", "FakePatreon", "FakeTier", "FakeUser", "FakeWebhook", "sign"]
