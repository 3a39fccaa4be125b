"""A server's role policy as its admins set it: `GuildSettings`, and what each field is to an admin.

Split from bot/domain/models.py (what Patreon told us): every field carries its `SettingSpec`, so the admin
commands, their validation and the policy's special roles all come from `GUILD_SETTINGS` here. Frozen and free of
I/O, like the rest of the domain.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import StrEnum


class RoleMode(StrEnum):
    """How several entitled tiers turn into roles."""

    STACK = "stack"
    HIGHEST = "highest"


class SettingKind(StrEnum):
    """What a guild setting holds, which decides how an admin enters it and how it is shown."""

    DAYS = "days"
    SWITCH = "switch"
    MODE = "mode"
    ROLE = "role"
    CHANNEL = "channel"
    #: Stored in cents, entered in whole units of the campaign's currency and shown with its code.
    DOLLARS = "dollars"
    #: An ISO 4217 code among Patreon's supported currencies (bot/domain/money.py).
    CURRENCY = "currency"
    #: A role whose place in the role list is a threshold (kick on lapse); the policy never hands it out.
    RANK = "rank"


@dataclass(frozen=True)
class SettingSpec:
    """One field of GuildSettings as an admin sees it: the option of `/patreon-admin settings` that sets it,
    the label of its line in the settings view, and the option's description in Discord."""

    option: str
    kind: SettingKind
    label: str
    help: str
    #: The GuildSettings field (filled in by GUILD_SETTINGS).
    name: str = ""


def _admin(option: str, kind: SettingKind, label: str, help: str) -> dict[str, SettingSpec]:
    """A GuildSettings field's metadata: how an admin sets and sees it."""
    return {"setting": SettingSpec(option, kind, label, help)}


@dataclass(frozen=True)
class GuildSettings:
    """A server's role policy. Defaults are what a new server gets.

    Every field but `guild_id` carries its SettingSpec: the admin commands, their validation and the policy's
    special roles all come from `GUILD_SETTINGS`, so a new field is exposed everywhere at once.
    """

    guild_id: int
    #: The admin's consent that this server acts for the campaign; off until turned on (bot/sync/participation.py).
    enabled: bool = field(
        default=False,
        metadata=_admin(
            "enabled",
            SettingKind.SWITCH,
            "The bot manages Patreon roles here",
            "Let the bot manage Patreon roles in this server (off until an admin turns it on)",
        ),
    )
    #: Days a declined payment keeps its roles (Patreon retries; most declines are fixed within a week).
    decline_grace_days: int = field(
        default=7,
        metadata=_admin(
            "grace_days",
            SettingKind.DAYS,
            "Grace days after a declined payment",
            "Days a declined payment keeps its roles (default 7)",
        ),
    )
    #: After a cancel, keep the roles until the period already paid for ends.
    keep_until_paid_through: bool = field(
        default=True,
        metadata=_admin(
            "keep_until_paid_through",
            SettingKind.SWITCH,
            "Keep roles until the paid-through date after a cancel",
            "After a cancel, keep roles until the paid period ends",
        ),
    )
    role_mode: RoleMode = field(
        default=RoleMode.STACK,
        metadata=_admin(
            "role_mode",
            SettingKind.MODE,
            "Several tiers give",
            "stack: every entitled tier's roles; highest: only the top tier's",
        ),
    )
    free_member_role_id: int | None = field(
        default=None,
        metadata=_admin("free_role", SettingKind.ROLE, "Free-member role", "Role for free members (never pledged)"),
    )
    free_trial_role_id: int | None = field(
        default=None, metadata=_admin("trial_role", SettingKind.ROLE, "Free-trial role", "Role for free trials")
    )
    #: Whether a free trial also earns the roles of the tiers it is trialling.
    trial_gets_tier_roles: bool = field(
        default=True,
        metadata=_admin(
            "trial_gets_tier_roles",
            SettingKind.SWITCH,
            "Free trials also get their tier's roles",
            "Free trials also get their tier's roles",
        ),
    )
    gifted_role_id: int | None = field(
        default=None,
        metadata=_admin("gifted_role", SettingKind.ROLE, "Gifted-membership role", "Role for gifted memberships"),
    )
    former_patron_role_id: int | None = field(
        default=None,
        metadata=_admin("former_role", SettingKind.ROLE, "Former-patron role", "Role for former patrons"),
    )
    lifetime_role_id: int | None = field(
        default=None,
        metadata=_admin(
            "lifetime_role", SettingKind.ROLE, "Lifetime-support role", "Role for lifetime support above a threshold"
        ),
    )
    lifetime_threshold_cents: int | None = field(
        default=None,
        metadata=_admin(
            "lifetime_dollars",
            SettingKind.DOLLARS,
            "Lifetime-support threshold (in the campaign's currency)",
            "Lifetime support, in whole units of the campaign's currency, that earns the lifetime role",
        ),
    )
    #: The campaign's currency: tier prices, lifetime support and the threshold above are in it (docs/policy.md).
    currency: str = field(
        default="USD",
        metadata=_admin(
            "currency",
            SettingKind.CURRENCY,
            "The campaign's currency",
            "The currency the Patreon campaign prices its tiers in (default USD)",
        ),
    )
    log_channel_id: int | None = field(
        default=None,
        metadata=_admin(
            "log_channel", SettingKind.CHANNEL, "Log channel", "Channel for one line per role change, link and failure"
        ),
    )
    welcome_on_link: bool = field(
        default=False,
        metadata=_admin(
            "welcome", SettingKind.SWITCH, "Welcome message on a new link", "Post a welcome message when someone links"
        ),
    )
    #: Where the welcome goes; the log channel when unset.
    welcome_channel_id: int | None = field(
        default=None,
        metadata=_admin(
            "welcome_channel",
            SettingKind.CHANNEL,
            "Welcome channel (the log channel when not set)",
            "Channel for the welcome message (default: the log channel)",
        ),
    )
    auto_match_discord: bool = field(
        default=False,
        metadata=_admin(
            "auto_match",
            SettingKind.SWITCH,
            "Auto-match patrons by the Discord account on their Patreon",
            "Also match patrons by the Discord account linked on their Patreon",
        ),
    )
    #: Invite each new member, once, to link (in the welcome channel; never repeated on a rejoin).
    invite_new_members: bool = field(
        default=False,
        metadata=_admin(
            "welcome_link",
            SettingKind.SWITCH,
            "Invite new members to link (in the welcome channel)",
            "Invite each new member once, in the welcome channel, to link their Patreon",
        ),
    )
    #: Post the `/patreon-admin patrons` summary and CSV to the log channel once a week.
    patrons_report_weekly: bool = field(
        default=False,
        metadata=_admin(
            "patrons_report_weekly",
            SettingKind.SWITCH,
            "Weekly patrons report in the log channel",
            "Post the patrons report (who paid but hasn't linked, and a CSV) to the log channel weekly",
        ),
    )

    #: Opt-in direct messages (bot/sync/patron_dms.py): each off until an admin turns it on.
    dm_welcome: bool = field(
        default=False,
        metadata=_admin(
            "dm_welcome", SettingKind.SWITCH, "DM a welcome after linking", "Send a member a DM when they link"
        ),
    )
    dm_declined: bool = field(
        default=False,
        metadata=_admin(
            "dm_declined",
            SettingKind.SWITCH,
            "DM when a payment is declined",
            "DM a member whose payment was declined, saying until when their roles are kept",
        ),
    )
    dm_removed: bool = field(
        default=False,
        metadata=_admin(
            "dm_removed",
            SettingKind.SWITCH,
            "DM when Patreon roles are removed",
            "DM a member when the bot takes their Patreon roles away, saying why",
        ),
    )

    #: Kick on lapse (bot/guild_admin/lapse_kicks.py): off (0) until an admin sets the days.
    kick_after_days: int = field(
        default=0,
        metadata=_admin(
            "kick_after_days",
            SettingKind.DAYS,
            "Kick members this many days after their entitlement ended (0 is never)",
            "Kick members whose Patreon entitlement ended more than this many days ago (0, the default: never)",
        ),
    )
    #: Kick on lapse never removes anyone holding a role the bot didn't give at or above this one (unset: any).
    kick_protect_rank_id: int | None = field(
        default=None,
        metadata=_admin(
            "kick_protect_role",
            SettingKind.RANK,
            "Never kick anyone with a role the bot didn't give at or above (any such role when not set)",
            "Kick on lapse spares anyone holding a role the bot didn't give at or above this one",
        ),
    )

    def special_role_ids(self) -> frozenset[int]:
        """Roles the policy hands out that are not tied to a tier."""
        ids = (getattr(self, name) for name in ROLE_SETTINGS)
        return frozenset(role_id for role_id in ids if role_id is not None)


def _setting_specs() -> tuple[SettingSpec, ...]:
    specs = []
    for item in fields(GuildSettings):
        if item.name == "guild_id":
            continue
        if "setting" not in item.metadata:
            raise TypeError(f"GuildSettings.{item.name} needs its SettingSpec: `field(..., metadata=_admin(...))`")
        specs.append(replace(item.metadata["setting"], name=item.name))
    return tuple(specs)


#: Every guild setting in declaration order: the one list the admin commands, their checks and the policy use.
GUILD_SETTINGS: tuple[SettingSpec, ...] = _setting_specs()
#: The settings that name a role the policy hands out (not tied to a tier).
ROLE_SETTINGS: tuple[str, ...] = tuple(spec.name for spec in GUILD_SETTINGS if spec.kind is SettingKind.ROLE)
