import pytest

from fakes.world import FakeWorld


@pytest.fixture
async def world(tmp_path):
    started = await FakeWorld(tmp_path / "bot.sqlite3").start()
    try:
        yield started
    finally:
        await started.close()
