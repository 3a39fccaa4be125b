"""The fake's world: creators and their campaigns, each with its tiers and members, over one set of users.

A `Directory` holds every user (a patron may belong to several campaigns, a creator owns one or more) and every
campaign; each `CampaignState` is one campaign. The fake starts with one creator owning one campaign (the client's
owner, as a creator's own developer portal account is), so tests written for one campaign see no change.

The campaign/tier patron counts are kept incrementally, so serving 100,000 members never rescans them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from fakes.patreon.records import (
    DEFAULT,
    PAID_STATUSES,
    SOCIAL_PROVIDERS,
    FakeMember,
    FakeTier,
    FakeUser,
    _Default,
    iso,
    parse_iso,
)

__all__ = [
    "BLANK_IDENTITY_SHAPES",
    "DEFAULT",
    "PAID_STATUSES",
    "SOCIAL_PROVIDERS",
    "CampaignState",
    "Directory",
    "FakeMember",
    "FakeTier",
    "FakeUser",
    "_Default",
    "iso",
    "parse_iso",
]

#: The shapes of an /identity answer that names nobody: `data` that is an empty object, a user without an id,
#: or null. Patreon never documents these; the bot must refuse them rather than link an empty user id.
BLANK_IDENTITY_SHAPES = ("empty", "no_id", "null")


class Directory:
    """Every user and every campaign of the fake: users are shared, so one patron can be a member of many."""

    def __init__(self) -> None:
        self.users: dict[str, FakeUser] = {}
        self.campaigns: dict[str, CampaignState] = {}

    def owned_by(self, user_id: str) -> list[CampaignState]:
        """The campaigns this user is the creator of, in the order they were made."""
        return [campaign for campaign in self.campaigns.values() if campaign.creator.id == user_id]

    def memberships_of(self, user_id: str) -> list[tuple[CampaignState, FakeMember]]:
        """Each campaign the user has a live membership of, with that membership."""
        found = []
        for campaign in self.campaigns.values():
            member = campaign.live_member_for(user_id)
            if member is not None:
                found.append((campaign, member))
        return found

    def find_member(self, member_id: str) -> tuple[CampaignState, FakeMember] | None:
        for campaign in self.campaigns.values():
            member = campaign.members.get(member_id)
            if member is not None:
                return campaign, member
        return None


class CampaignState:
    """One campaign: its creator, tiers and members (users live in the shared `Directory`)."""

    def __init__(
        self,
        campaign_id: str,
        *,
        vanity: str = "fakecreator",
        now: datetime | None = None,
        directory: Directory | None = None,
        creator: FakeUser | None = None,
    ) -> None:
        #: Same as `campaign_id`, so `fake.campaign.id` reads naturally.
        self.id = campaign_id
        self.campaign_id = campaign_id
        self.vanity = vanity
        self.now = now or datetime.now(UTC).replace(microsecond=0)
        self.created_at = datetime(2023, 1, 1, tzinfo=UTC)
        self.directory = directory or Directory()
        if campaign_id in self.directory.campaigns:
            raise ValueError(f"fake campaign {campaign_id!r} exists already")
        self.directory.campaigns[campaign_id] = self
        self.tiers: dict[str, FakeTier] = {}
        self.users: dict[str, FakeUser] = self.directory.users
        self.members: dict[str, FakeMember] = {}
        self.member_by_user: dict[str, str] = {}
        #: Append-only listing order; removed members stay as tombstones so cursors (indexes) stay valid.
        self.order: list[str] = []
        self.patron_count = 0
        self.live_count = 0
        self._seed_counter = 0
        self.creator = creator or self.add_user("1000001", "Fake Creator", None)
        self.creator.owns_campaign, self.creator.fragment_key = True, None
        #: Every creator has a Free tier that can't be removed; a second campaign's gets its own id.
        free_id = "100000" if len(self.directory.campaigns) == 1 else f"{campaign_id}-free"
        self.free_tier = self.add_tier(free_id, "Free", 0)

    # ---------------------------------------------------------------- tiers and users

    def add_tier(
        self,
        tier_id: str,
        title: str,
        amount_cents: int,
        *,
        discord_role_ids: Iterable[str] | None = None,
        published: bool = True,
    ) -> FakeTier:
        tier = self.tiers.get(tier_id)
        roles = list(discord_role_ids) if discord_role_ids is not None else None
        if tier is None:
            tier = FakeTier(tier_id, title, amount_cents, roles, published, created_at=self.created_at)
            self.tiers[tier_id] = tier
        else:
            tier.title, tier.amount_cents, tier.discord_role_ids, tier.published = title, amount_cents, roles, published
        return tier

    def add_user(self, user_id: str, full_name: str, discord_id: int | None, email: str | None = None) -> FakeUser:
        user = self.users.get(user_id)
        if user is None:
            user = FakeUser(user_id, full_name, discord_id, email or f"user{user_id}@example.test")
            self.users[user_id] = user
        else:
            user.full_name, user.discord_id, user.social_connections, user.fragment_key = (
                full_name,
                discord_id,
                None,
                None,
            )
            if email is not None:
                user.email = email
            for campaign in self.directory.campaigns.values():
                member_id = campaign.member_by_user.get(user_id)
                if member_id is not None:
                    campaign.members[member_id].fragment_key = None
        return user

    # ---------------------------------------------------------------- members

    def live_member_for(self, user_id: str) -> FakeMember | None:
        member_id = self.member_by_user.get(user_id)
        member = self.members.get(member_id) if member_id else None
        return member if member is not None and not member.deleted else None

    def adjust_counts(self, member: FakeMember, sign: int) -> None:
        if member.deleted or member.patron_status not in PAID_STATUSES:
            return
        self.patron_count += sign
        for tier_id in member.tier_ids:
            tier = self.tiers.get(tier_id)
            if tier is not None:
                tier.patron_count += sign

    def new_member(self, user_id: str, member_id: str | None = None) -> FakeMember:
        member = FakeMember(id=member_id or str(uuid.uuid4()), user_id=user_id)
        self.members[member.id] = member
        self.member_by_user[user_id] = member.id
        self.order.append(member.id)
        self.live_count += 1
        return member

    def set_membership(
        self,
        user_id: str,
        *,
        patron_status: str | None = "active_patron",
        tier_ids: Iterable[str] | None = None,
        last_charge_status: str | _Default | None = DEFAULT,
        amount_cents: int | None = None,
        is_free_trial: bool = False,
        is_gifted: bool = False,
        last_charge_date: datetime | _Default | None = DEFAULT,
        next_charge_date: datetime | _Default | None = DEFAULT,
        lifetime_cents: int | None = None,
        pledge_cadence: int | _Default | None = DEFAULT,
    ) -> FakeMember:
        """Create or replace the user's membership; DEFAULT fields follow from the status like Patreon's do."""
        if user_id not in self.users:
            raise KeyError(f"unknown fake Patreon user {user_id!r}; add_user first")
        tiers = tuple(tier_ids or ())
        unknown = [tier_id for tier_id in tiers if tier_id not in self.tiers]
        if unknown:
            raise KeyError(f"unknown fake tier ids {unknown}")
        member = self.live_member_for(user_id)
        if member is None:
            member = self.new_member(user_id)
            member.pledge_relationship_start = self.now - timedelta(days=10)
        self.adjust_counts(member, -1)
        paying = patron_status == "active_patron" and not is_free_trial
        if last_charge_status is DEFAULT:
            last_charge_status = {
                "active_patron": None if is_free_trial else "Paid",
                "declined_patron": "Declined",
                "former_patron": "Deleted",
            }.get(patron_status or "")
        if last_charge_date is DEFAULT:
            last_charge_date = self.now - timedelta(days=3) if last_charge_status is not None else None
        if next_charge_date is DEFAULT:
            next_charge_date = self.now + timedelta(days=27) if paying else None
        if pledge_cadence is DEFAULT:
            pledge_cadence = 1 if last_charge_status is not None else None
        amount = sum(self.tiers[t].amount_cents for t in tiers) if amount_cents is None else amount_cents
        if patron_status == "former_patron" and amount_cents is None and not tiers:
            amount = 0
        member.patron_status = patron_status
        member.last_charge_status = last_charge_status
        member.last_charge_date = last_charge_date
        member.next_charge_date = next_charge_date
        member.pledge_cadence = pledge_cadence
        member.currently_entitled_amount_cents = amount
        member.will_pay_amount_cents = amount if patron_status == "active_patron" else 0
        if lifetime_cents is not None:
            member.campaign_lifetime_support_cents = lifetime_cents
        elif last_charge_status == "Paid" and member.campaign_lifetime_support_cents == 0:
            member.campaign_lifetime_support_cents = amount
        member.is_free_trial, member.is_gifted, member.tier_ids = is_free_trial, is_gifted, tiers
        member.fragment_key = None
        self.adjust_counts(member, +1)
        return member

    def remove_membership(self, user_id: str) -> FakeMember | None:
        """`members:delete`: the member disappears from listings and /members/{id} (404)."""
        member = self.live_member_for(user_id)
        if member is not None:
            self.adjust_counts(member, -1)
            member.deleted = True
            self.live_count -= 1
        return member

    # ---------------------------------------------------------------- documents the real API has been seen to send

    def delete_account(self, user_id: str) -> FakeMember | None:
        """The patron deletes their Patreon account: the user is gone, but the membership stays listed (and counted
        in `meta.pagination.total`) with no `user` relationship. Returns that membership, if any."""
        self.users.pop(user_id, None)
        member = self.live_member_for(user_id)
        if member is not None:
            member.fragment_key = None
        return member

    def omit_member_attributes(self, user_id: str, *names: str) -> FakeMember:
        """The user's membership is sent without these attributes even when `fields[member]` asks for them (an
        attribute Patreon stops sending, as v2 campaigns lost `name`)."""
        member = self.live_member_for(user_id)
        if member is None:
            raise KeyError(f"user {user_id!r} has no live membership")
        member.omitted, member.fragment_key = member.omitted | frozenset(names), None
        return member

    def omit_tier_attributes(self, tier_id: str, *names: str) -> FakeTier:
        """The tier is sent without these attributes even when `fields[tier]` asks for them."""
        tier = self.tiers[tier_id]
        tier.omitted = tier.omitted | frozenset(names)
        return tier

    def blank_identity(self, user_id: str, shape: str = "empty") -> None:
        """/identity answers this user's token with a document that names nobody (see `BLANK_IDENTITY_SHAPES`)."""
        if shape not in BLANK_IDENTITY_SHAPES:
            raise ValueError(f"shape must be one of {BLANK_IDENTITY_SHAPES}, not {shape!r}")
        self.users[user_id].identity_shape = shape

    def seed_members(self, n: int, tier_ids: Iterable[str] | None = None, rng_seed: int = 0) -> list[str]:
        """`n` users with memberships (85% paying, 8% declined, 7% former), deterministic for a seed."""
        rng = random.Random(rng_seed)
        choices = list(tier_ids) if tier_ids is not None else [t.id for t in self.tiers.values() if t.amount_cents]
        if not choices:
            choices = [self.free_tier.id]
        tiers = [self.tiers[t] for t in choices]
        now = self.now
        last_paid, next_paid, start = now - timedelta(days=3), now + timedelta(days=27), now - timedelta(days=60)
        user_ids: list[str] = []
        # The first campaign keeps its historical ids; another campaign's seeded patrons are other people.
        position = list(self.directory.campaigns).index(self.campaign_id)
        prefix, offset = ("", 0) if position == 0 else (f"c{self.campaign_id}-", position * 10**12)
        for _ in range(n):
            self._seed_counter += 1
            user_id = f"{prefix}seed{rng_seed}-{self._seed_counter}"
            discord_id = 10**17 + offset + rng_seed * 10**7 + self._seed_counter if rng.random() < 0.9 else None
            user = FakeUser(user_id, f"Seeded Patron {self._seed_counter}", discord_id, f"{user_id}@example.test")
            self.users[user_id] = user
            tier = tiers[rng.randrange(len(tiers))]
            roll = rng.random()
            member = self.new_member(user_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            member.pledge_relationship_start = start
            member.last_charge_date = last_paid
            member.pledge_cadence = 1
            member.campaign_lifetime_support_cents = tier.amount_cents * 2
            if roll < 0.85:
                member.patron_status, member.last_charge_status = "active_patron", "Paid"
                member.next_charge_date = next_paid
                member.tier_ids = (tier.id,)
                member.currently_entitled_amount_cents = member.will_pay_amount_cents = tier.amount_cents
            elif roll < 0.93:
                member.patron_status, member.last_charge_status = "declined_patron", "Declined"
            else:
                member.patron_status, member.last_charge_status = "former_patron", "Deleted"
            self.adjust_counts(member, +1)
            user_ids.append(user_id)
        return user_ids

    def listing(self, start: int, count: int) -> tuple[list[FakeMember], int | None]:
        """Up to `count` live members from order index `start`, and the index to continue from (None: done)."""
        page: list[FakeMember] = []
        index, order, members = start, self.order, self.members
        while index < len(order) and len(page) < count:
            member = members[order[index]]
            index += 1
            if not member.deleted:
                page.append(member)
        while index < len(order) and members[order[index]].deleted:
            index += 1
        return page, (index if index < len(order) else None)
