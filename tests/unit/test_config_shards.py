"""SHARD_COUNT and SHARD_IDS: several processes only on a database they can share, each bad value named."""

import pytest

from bot.config import ConfigError, load_config
from bot.domain.shards import ShardSpec, shard_of
from tests.unit.test_config import VALID

NO_ENV_CAMPAIGN = {
    k: v for k, v in VALID.items() if k not in ("PATREON_CREATOR_ACCESS_TOKEN", "PATREON_CREATOR_REFRESH_TOKEN",
                                                "PATREON_WEBHOOK_SECRET")
}


def config(**extra: str):
    return load_config({**NO_ENV_CAMPAIGN, **extra}, env_file=None)


def test_unsharded_by_default_owns_every_server():
    loaded = config()
    assert loaded.shard_count is None
    assert loaded.shards == ShardSpec(1, (0,))
    assert loaded.shards.every_shard and loaded.shards.owns(123456789012345678)


def test_shard_count_alone_runs_every_shard_in_this_process_even_on_sqlite():
    loaded = config(SHARD_COUNT="3")
    assert (loaded.shard_count, loaded.shard_ids) == (3, ())
    assert loaded.shards == ShardSpec(3, (0, 1, 2)) and loaded.shards.every_shard


def test_some_shards_of_several_need_postgresql():
    with pytest.raises(ConfigError, match="DATABASE_URL to PostgreSQL") as caught:
        config(SHARD_COUNT="2", SHARD_IDS="1")
    assert "\n" not in str(caught.value)


def test_some_shards_on_postgresql():
    from bot.store.token_cipher import new_key

    loaded = config(SHARD_COUNT="4", SHARD_IDS="1, 3", DATABASE_URL="postgresql://bot@db/bot",
                    TOKEN_ENCRYPTION_KEY=new_key())
    assert loaded.shards == ShardSpec(4, (1, 3))
    assert not loaded.shards.every_shard
    assert loaded.shards.describe() == "shards 1,3 of 4"


def test_all_shard_ids_listed_is_one_process_and_allowed_on_sqlite():
    assert config(SHARD_COUNT="2", SHARD_IDS="1,0").shards.every_shard


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT must be between 1"),
        ({"SHARD_COUNT": "-2"}, "SHARD_COUNT must be between 1"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT must be a whole number"),
        ({"SHARD_IDS": "0"}, "SHARD_IDS needs SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "2"}, "SHARD_IDS 2 not below SHARD_COUNT 2"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "1,1"}, "names shard 1 more than once"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "1;2"}, "comma-separated shard numbers"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "-1"}, "comma-separated shard numbers"),
    ],
)
def test_bad_shard_settings_are_named(extra, named):
    with pytest.raises(ConfigError, match=named) as caught:
        config(**extra)
    assert "\n" not in str(caught.value)


def test_env_campaign_on_some_shards_needs_allowed_guild_ids():
    """A process seeing only its shards' servers would count one unbound server where the install has two, and
    let both act for the .env campaign (the one-server rule can't be judged per process)."""
    from bot.store.token_cipher import new_key

    env = {**VALID, "SHARD_COUNT": "2", "SHARD_IDS": "0", "DATABASE_URL": "postgresql://bot@db/bot",
           "TOKEN_ENCRYPTION_KEY": new_key()}
    with pytest.raises(ConfigError, match="ALLOWED_GUILD_IDS"):
        load_config(env, env_file=None)
    assert load_config({**env, "ALLOWED_GUILD_IDS": "1,2"}, env_file=None).shards == ShardSpec(2, (0,))


def test_shard_formula_is_discords():
    # Discord's example in its sharding docs style: the shard is (guild_id >> 22) % count.
    guild = 81384788765712384
    assert shard_of(guild, 17) == (guild >> 22) % 17 == 7
    spec = ShardSpec(2, (1,))
    assert spec.owned([0, 1 << 22, 2 << 22, 3 << 22]) == [1 << 22, 3 << 22]


def test_shard_spec_refuses_ids_outside_the_count():
    with pytest.raises(ValueError):
        ShardSpec(2, (2,))
    with pytest.raises(ValueError):
        ShardSpec(2, (0, 0))
