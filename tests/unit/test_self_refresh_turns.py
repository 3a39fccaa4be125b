"""`/patreon refresh`'s turns (bot/accounts/self_refresh.py): once a minute per patron, and a cap for everyone, so
no number of patrons (or one patron with many clicks) can push the bot past Patreon's limits."""

from datetime import UTC, datetime, timedelta

from bot.accounts.self_refresh import RefreshTurns

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def turns(limit: int = 3) -> RefreshTurns:
    return RefreshTurns(timedelta(seconds=60), limit, timedelta(seconds=60))


def test_one_turn_per_user_per_minute_with_the_seconds_left():
    gate = turns()
    assert gate.claim(1, T0) is None
    assert gate.claim(1, T0 + timedelta(seconds=20.2)) == "You refreshed a moment ago; try again in 40 s."
    assert gate.claim(1, T0 + timedelta(seconds=60)) is None


def test_a_refused_click_does_not_restart_the_minute():
    gate = turns()
    assert gate.claim(1, T0) is None
    for second in range(1, 60, 7):
        assert gate.claim(1, T0 + timedelta(seconds=second)) is not None
    assert gate.claim(1, T0 + timedelta(seconds=60)) is None


def test_everyone_together_is_capped_per_window():
    gate = turns(limit=3)
    assert [gate.claim(user, T0 + timedelta(seconds=user)) for user in (1, 2, 3)] == [None, None, None]
    assert gate.claim(4, T0 + timedelta(seconds=10)) == "Many patrons are refreshing right now; try again in 51 s."
    assert gate.claim(4, T0 + timedelta(seconds=61)) is None, "the oldest turn left the window"
    assert gate.claim(5, T0 + timedelta(seconds=61)) is not None


def test_a_user_refused_by_the_cap_keeps_no_turn():
    gate = turns(limit=1)
    assert gate.claim(1, T0) is None
    assert gate.claim(2, T0 + timedelta(seconds=1)) is not None
    assert gate.claim(2, T0 + timedelta(seconds=60)) is None, "the refusal did not start user 2's own minute"
