"""Every guild setting is exposed the same way everywhere: one option of `/patreon-admin settings`, one line of its
view, clearable when it is a role or a channel, checked as a role when it is one, and counted by the policy.

A new field of GuildSettings that misses one of these fails here.
"""

import dataclasses

from discord import AppCommandOptionType

from bot.domain.guild_settings import GUILD_SETTINGS, ROLE_SETTINGS, GuildSettings, SettingKind
from cogs.admin import CLEARABLE_FIELDS, Admin, describe_settings

OPTION_TYPES = {
    SettingKind.DAYS: AppCommandOptionType.integer,
    SettingKind.DOLLARS: AppCommandOptionType.integer,
    SettingKind.SWITCH: AppCommandOptionType.boolean,
    SettingKind.MODE: AppCommandOptionType.string,
    SettingKind.ROLE: AppCommandOptionType.role,
    SettingKind.CHANNEL: AppCommandOptionType.channel,
    SettingKind.CURRENCY: AppCommandOptionType.string,
    SettingKind.RANK: AppCommandOptionType.role,
}


def test_every_field_but_the_guild_id_is_a_setting():
    fields = [field.name for field in dataclasses.fields(GuildSettings) if field.name != "guild_id"]
    assert [spec.name for spec in GUILD_SETTINGS] == fields
    assert len({spec.option for spec in GUILD_SETTINGS}) == len(GUILD_SETTINGS), "option names are unique"


def test_the_settings_command_has_one_described_option_per_setting():
    parameters = {parameter.name: parameter for parameter in Admin.settings.parameters}
    assert set(parameters) == {spec.option for spec in GUILD_SETTINGS} | {"clear"}
    for spec in GUILD_SETTINGS:
        parameter = parameters[spec.option]
        assert parameter.type is OPTION_TYPES[spec.kind], spec
        assert not parameter.required, spec
        assert parameter.description == spec.help and parameter.description != "…", spec


def test_each_kind_fits_its_field():
    types = {field.name: str(field.type) for field in dataclasses.fields(GuildSettings)}
    for spec in GUILD_SETTINGS:
        assert (spec.kind is SettingKind.ROLE) == spec.name.endswith("_role_id"), spec
        assert (spec.kind is SettingKind.CHANNEL) == spec.name.endswith("_channel_id"), spec
        assert (spec.kind is SettingKind.SWITCH) == (types[spec.name] == "bool"), spec
        assert (spec.kind is SettingKind.DOLLARS) == spec.name.endswith("_cents"), spec
        assert (spec.kind is SettingKind.RANK) == spec.name.endswith("_rank_id"), spec


def test_roles_and_channels_can_be_cleared_and_nothing_else():
    ids = [spec for spec in GUILD_SETTINGS if spec.name.endswith(("_role_id", "_channel_id", "_rank_id"))]
    assert {spec.option: spec.name for spec in ids} == CLEARABLE_FIELDS
    (clear,) = [parameter for parameter in Admin.settings.parameters if parameter.name == "clear"]
    assert {choice.value for choice in clear.choices} == {spec.option for spec in ids}


def test_every_role_setting_is_checked_and_counted_by_the_policy():
    role_fields = [spec.name for spec in GUILD_SETTINGS if spec.kind is SettingKind.ROLE]
    assert set(ROLE_SETTINGS) == set(role_fields)
    settings = GuildSettings(guild_id=1, **{name: 100 + index for index, name in enumerate(role_fields)})
    assert settings.special_role_ids() == {100 + index for index in range(len(role_fields))}


def test_the_settings_view_shows_every_setting():
    view = describe_settings(GuildSettings(guild_id=1, lifetime_threshold_cents=2500, log_channel_id=9))
    lines = view.splitlines()[1:]
    assert [line.split(": ")[0] for line in lines] == [spec.label for spec in GUILD_SETTINGS]
    assert "Lifetime-support threshold (in the campaign's currency): 25.00 USD" in lines
    assert "Log channel: <#9>" in lines
    assert "Grace days after a declined payment: 7" in lines and "Free-member role: not set" in lines
    assert "Several tiers give: every entitled tier's roles" in lines
