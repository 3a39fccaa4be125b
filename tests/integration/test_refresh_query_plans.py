"""What each scheduled refresh asks the store after its listing is answered from an index, never by reading every row
(migration 16): over a 100,000-member campaign the moments-due query read the whole table, snapshots and all (0.10 s
of a refresh's CPU), and the links-made-since query every link. SQLite's own query plan says which it does."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from bot.store import Store
from bot.store.due_moments import DUE_BY_TIME
from bot.store.plan_inputs import LINKS_MADE_SINCE


@pytest.fixture
async def db_path(tmp_path):
    path = tmp_path / "bot.sqlite3"
    store = await Store.open(path)
    await store.close()
    return path


def _plan(path, sql: str, parameters: tuple[object, ...]) -> str:
    with closing(sqlite3.connect(path)) as db:
        return " / ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", parameters))


async def test_the_members_due_by_time_are_read_from_the_index_that_holds_their_moments(db_path):
    plan = _plan(db_path, DUE_BY_TIME, ("c1", "a", "b", "a", "b", "a", "b"))
    assert "COVERING INDEX memberships_listing" in plan, plan


async def test_the_links_made_since_the_last_plan_are_read_from_the_index_of_their_times(db_path):
    plan = _plan(db_path, LINKS_MADE_SINCE, (1, "2026-12-01T00:00:00.000000Z"))
    assert "INDEX links_by_linked_at" in plan and "SCAN links" not in plan, plan
