"""The shared data classes: what they show when printed."""

from datetime import UTC, datetime

from bot.domain.models import TokenPair


def test_token_pair_repr_shows_no_token():
    pair = TokenPair("the-access-token", "the-refresh-token", datetime(2030, 1, 1, tzinfo=UTC), ("identity",))
    for shown in (repr(pair), str(pair), repr({"creator": pair})):
        assert "the-access-token" not in shown and "the-refresh-token" not in shown, shown
    assert "access_token='***'" in repr(pair) and "2030" in repr(pair), "the rest is still shown"
    assert pair == TokenPair("the-access-token", "the-refresh-token", datetime(2030, 1, 1, tzinfo=UTC), ("identity",))
