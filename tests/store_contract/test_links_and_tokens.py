"""Contract: links are one-to-one, auto-match respects opt-outs, tokens and webhook secrets are stored sealed.

Run against every backend (conftest.py `store`); ids above 2**31 because Discord's are.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.models import TokenPair
from bot.store import CREATOR_SUBJECT, patron_subject
from bot.store.token_cipher import PREFIX, TokenCipher, TokenKeyError, new_key

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ANN, BOB = 310_000_000_000_000_001, 310_000_000_000_000_002
GUILD, OTHER_GUILD = 900_000_000_000_000_001, 900_000_000_000_000_002


async def test_a_patreon_account_links_to_one_discord_user_and_moving_it_says_who_lost_it(store):
    assert await store.save_link(ANN, "p1", GUILD, "oauth") is None
    replaced = await store.save_link(BOB, "p1", GUILD, "oauth")
    assert replaced is not None and replaced.discord_user_id == ANN
    assert await store.get_link_by_discord(ANN) is None
    assert (await store.get_link_by_patreon("p1")).discord_user_id == BOB
    await store.save_link(BOB, "p2", GUILD, "oauth")  # the same Discord user links another Patreon account
    assert await store.get_link_by_patreon("p1") is None
    assert [(link.discord_user_id, link.patreon_user_id) for link in await store.all_links()] == [(BOB, "p2")]


async def test_add_links_never_replaces_either_side_of_an_existing_link(store):
    await store.save_link(ANN, "p1", None, "oauth")
    added = await store.add_links([(ANN, "p9", None, "auto"), (BOB, "p1", None, "auto"), (BOB, "p2", None, "auto")], T0)
    assert added == 1
    assert await store.link_map() == {ANN: "p1", BOB: "p2"}


async def test_an_unlink_opts_the_pair_out_of_auto_match_until_an_explicit_link(store):
    await store.save_link(ANN, "p1", GUILD, "auto")
    removed = await store.delete_link(ANN, opt_out_at=T0)
    assert removed is not None and removed.patreon_user_id == "p1"
    assert await store.auto_match_optouts() == {(ANN, "p1")}
    assert await store.add_auto_links([(ANN, "p1", GUILD, "auto"), (BOB, "p2", GUILD, "auto")], T0) == 1
    assert await store.get_link_by_discord(ANN) is None
    await store.save_link(ANN, "p1", GUILD, "admin")  # an admin's link by hand: only its server's word
    assert await store.auto_match_optouts() == {(ANN, "p1")}
    await store.save_link(ANN, "p1", GUILD, "oauth")  # Ann links it herself: the opt-out goes
    assert await store.auto_match_optouts() == set()


async def test_a_link_by_hand_counts_only_in_the_server_whose_admin_made_it(store):
    await store.save_link(ANN, "p1", GUILD, "admin")
    await store.save_link(BOB, "p2", GUILD, "oauth")
    assert await store.links_counting_in(GUILD) == {ANN: "p1", BOB: "p2"}
    assert await store.links_counting_in(OTHER_GUILD) == {BOB: "p2"}
    assert await store.links_counting_in_for_patreon(OTHER_GUILD, ["p1", "p2"]) == {BOB: "p2"}
    assert await store.links_counting_in_for_discord(GUILD, [ANN]) == {ANN: "p1"}
    assert await store.linked_patreon_ids(["p1", "p3"]) == {"p1"}
    assert await store.linked_patreon_ids(["p1", "p2", "p3"], by_hand_too=False) == {"p2"}, "Ann's is by hand"
    assert await store.links_made_since(GUILD, datetime.now(UTC) - timedelta(minutes=1)) == {ANN, BOB}


async def test_tokens_are_stored_sealed_and_round_trip(store):
    pair = TokenPair("access-secret", "refresh-secret", T0 + timedelta(days=31), ("identity", "identity.memberships"))
    await store.save_tokens(patron_subject("p1"), pair)
    await store.save_tokens(patron_subject("p1"), pair)  # saved again: replaced, not duplicated
    await store.save_tokens(CREATOR_SUBJECT, TokenPair("c", "r", T0))
    assert await store.get_tokens(patron_subject("p1")) == pair
    async with store._db.execute("SELECT access_token || refresh_token FROM tokens") as cursor:
        stored = " ".join(row[0] for row in await cursor.fetchall())
    assert "secret" not in stored and stored.count(PREFIX) >= 4
    expiring = await store.tokens_expiring("patron:", T0 + timedelta(days=40))
    assert [subject for subject, _ in expiring] == [patron_subject("p1")]
    await store.delete_tokens(patron_subject("p1"))
    assert await store.get_tokens(patron_subject("p1")) is None


async def test_a_store_opened_with_another_key_refuses_to_start_and_changes_nothing(open_store):
    store = await open_store()
    await store.save_tokens(CREATOR_SUBJECT, TokenPair("c", "r", T0))
    await store.save_campaign("c1", token_subject=CREATOR_SUBJECT, source="env", webhook_secret="whsec")
    await store.close()
    with pytest.raises(TokenKeyError):
        await open_store(TokenCipher([new_key().encode()], "a wrong key"))
    again = await open_store()
    assert (await again.get_tokens(CREATOR_SUBJECT)).access_token == "c"
    assert (await again.get_campaign("c1")).webhook_secret == "whsec"


async def test_rotating_the_key_reseals_tokens_and_secrets(open_store, cipher):
    store = await open_store()
    await store.save_tokens(CREATOR_SUBJECT, TokenPair("c", "r", T0))
    await store.save_campaign("c1", token_subject=CREATOR_SUBJECT, source="env", webhook_secret="whsec")
    fresh = new_key().encode()
    assert await store.reencrypt_tokens(TokenCipher([fresh, *cipher.keys], "new and old")) == 1
    await store.close()
    reopened = await open_store(TokenCipher([fresh], "the new key alone"))
    assert (await reopened.get_tokens(CREATOR_SUBJECT)).refresh_token == "r"
    assert (await reopened.get_campaign("c1")).webhook_secret == "whsec"


async def test_an_oauth_state_is_consumed_once(store):
    expires = datetime.now(UTC) + timedelta(minutes=15)
    assert await store.consume_state("nonce-1", expires)
    assert not await store.consume_state("nonce-1", expires)
    assert await store.consume_state("nonce-2", expires)
