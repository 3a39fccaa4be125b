"""Identity.membership_for: with many campaigns in one install, a patron's membership counts only for its own."""

from bot.domain.models import Identity, MembershipSnapshot, PatreonUser


def _identity(*campaign_ids: str | None) -> Identity:
    memberships = tuple(
        MembershipSnapshot(patreon_user_id="p-1", member_id=f"m-{n}", campaign_id=campaign_id)
        for n, campaign_id in enumerate(campaign_ids)
    )
    return Identity(user=PatreonUser(id="p-1"), memberships=memberships)


def test_a_membership_is_found_only_for_its_own_campaign():
    identity = _identity("A", "B")
    assert identity.membership_for("A").member_id == "m-0"
    assert identity.membership_for("B").member_id == "m-1"
    assert identity.membership_for("C") is None


def test_a_membership_without_its_campaign_is_not_taken_for_any_campaign():
    """Before: the one unlabelled membership was returned for ANY campaign asked, so a patron of campaign A
    would have been read as a patron of a connected campaign B."""
    assert _identity(None).membership_for("B") is None
