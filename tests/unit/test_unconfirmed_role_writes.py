"""The overlay of the bot's own role writes when Discord's gateway echo arrives before the HTTP answer.

Discord sends GUILD_MEMBER_UPDATE on the gateway and the PUT's 204 on another connection; nothing orders the
two, and discord.py may apply the echo to its cache while `add_roles` is still awaiting its answer. The write is
then recorded against a cache that shows it already. Before the fix it stayed "unconfirmed" for the whole settle
time, so a moderator's removal in that minute was hidden: the refresh that planned the member (and used up its
Discord mark) saw the role as held and gave nothing back (tests/convergence found it: "roles differ").
"""

from bot.discord_io.roles import UnconfirmedRoleWrites

GUILD, USER, GOLD, VIP = 1, 2, 10, 20


def clock() -> tuple[dict[str, float], UnconfirmedRoleWrites]:
    now = {"t": 1000.0}
    return now, UnconfirmedRoleWrites(60.0, lambda: now["t"])


def test_a_write_the_cache_showed_before_its_answer_hides_no_later_removal() -> None:
    now, writes = clock()
    writes.record(GUILD, USER, GOLD, True, frozenset({GOLD, VIP}))  # the echo came first
    now["t"] += 1
    writes.seen(GUILD, USER, frozenset({VIP}))  # a moderator takes the role off moments later
    assert writes.overlay(GUILD, USER, frozenset({VIP})) == {VIP}


def test_a_removal_the_cache_showed_before_its_answer_hides_no_later_grant() -> None:
    now, writes = clock()
    writes.record(GUILD, USER, GOLD, False, frozenset({VIP}))
    now["t"] += 1
    writes.seen(GUILD, USER, frozenset({GOLD, VIP}))  # a moderator gives it back by hand
    assert writes.overlay(GUILD, USER, frozenset({GOLD, VIP})) == {GOLD, VIP}


def test_a_write_the_cache_does_not_show_yet_still_counts_until_its_echo() -> None:
    now, writes = clock()
    writes.record(GUILD, USER, GOLD, True, frozenset({VIP}))
    now["t"] += 1
    assert writes.overlay(GUILD, USER, frozenset({VIP})) == {GOLD, VIP}, "the echo is late: our PUT counts"
    writes.seen(GUILD, USER, frozenset({GOLD, VIP}))
    writes.seen(GUILD, USER, frozenset({VIP}))  # then a moderator's removal counts at once
    assert writes.overlay(GUILD, USER, frozenset({VIP})) == {VIP}


def test_reversing_our_own_unconfirmed_write_still_waits_for_the_bound() -> None:
    """A cache that agrees with the second write because it still shows the state before the first proves
    nothing: that write keeps counting until the settle time."""
    now, writes = clock()
    writes.record(GUILD, USER, GOLD, True, frozenset({VIP}))
    writes.record(GUILD, USER, GOLD, False, frozenset({VIP}))
    now["t"] += 1
    assert writes.overlay(GUILD, USER, frozenset({GOLD, VIP})) == {VIP}, "the PUT's late echo doesn't undo it"
    now["t"] += 60
    assert writes.overlay(GUILD, USER, frozenset({GOLD, VIP})) == {GOLD, VIP}
