"""`/patreon-admin patrons`: who pays, who linked, who holds roles in grace, whose link points at someone gone.

The top complaint about every such bot is "I paid and got no role" from patrons who never linked, so the report
leads with them. It reads only what the bot stored (memberships from the refresh and the webhooks, links, the
grant ledger) and what Discord's cache knows of this server's members: running it costs Patreon nothing.

What it shows stays within what this server may know: only a server that takes part may run it, a link counts
here only as `Link.counts_in` says (a link made by hand in another server is not shown as a link here), and no
e-mail address is ever stored, so none can leak. The CSV's cells are Patreon names and Discord names, which
their owners choose: a cell starting with `=`, `+`, `-`, `@` (or a tab or carriage return) would be read as a
formula by a spreadsheet, so it is prefixed with `'` (OWASP, "CSV Injection").
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, PatronStatus, Tier, TierRoleMap
from bot.domain.policy import decide_roles, managed_role_ids
from bot.guild_admin.service import AdminError
from bot.store import Store
from bot.store.patron_report import REPORT_CHUNK
from bot.sync.participation import Participation
from bot.sync.role_gateway import RoleGateway

log = logging.getLogger(__name__)

#: How many unlinked paying patrons the summary names (all of them are in the CSV).
NAMED_IN_SUMMARY = 10
#: Members not in Discord's cache asked for one by one, at most (the linked ones are normally all cached).
MAX_MEMBER_LOOKUPS = 50
CSV_NAME = "patrons.csv"
#: Past this size the CSV goes zipped (Discord refuses a bot's file over 10 MiB; a big campaign's CSV can be more).
ZIP_ABOVE_BYTES = 8 * 1024 * 1024
CSV_COLUMNS = (
    "patreon_name",
    "patreon_user_id",
    "tier",
    "status",
    "discord_account",
    "discord_user_id",
    "in_server",
    "roles_here",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
STATUS_WORDS = {
    PatronStatus.ACTIVE: "active",
    PatronStatus.DECLINED: "declined",
    PatronStatus.FORMER: "former",
}


@dataclass(frozen=True, slots=True)
class PatronRow:
    """One member of the campaign as this server sees them."""

    patreon_name: str
    patreon_user_id: str
    tiers: tuple[str, ...]
    status: str
    paying: bool
    discord_user_id: int | None = None
    discord_name: str = ""
    #: None when nobody is linked here (or Discord couldn't say).
    in_server: bool | None = None
    roles_here: tuple[str, ...] = ()
    #: The policy's summary when it holds this member's roles (grace, paid-through, billing-day gap).
    held_because: str | None = None


@dataclass
class PatronsReport:
    rows: list[PatronRow] = field(default_factory=list)
    #: The server's active comps, one line each (bot/guild_admin/comps.py): not Patreon's, so not in the CSV.
    comps: list[str] = field(default_factory=list)

    @property
    def unlinked_paying(self) -> list[PatronRow]:
        return [row for row in self.rows if row.paying and row.discord_user_id is None]

    @property
    def linked_here(self) -> list[PatronRow]:
        return [row for row in self.rows if row.discord_user_id is not None and row.in_server]

    @property
    def in_grace(self) -> list[PatronRow]:
        return [row for row in self.linked_here if row.held_because is not None and row.roles_here]

    @property
    def linked_gone(self) -> list[PatronRow]:
        return [row for row in self.rows if row.discord_user_id is not None and row.in_server is False]

    def summary(self) -> str:
        """The ephemeral answer (Discord mentions; the cog sends it with mentions turned off)."""
        unlinked = self.unlinked_paying
        lines = [f"**Patrons of the campaign: {len(self.rows)}** (the CSV has every one)."]
        if unlinked:
            names = ", ".join(_plain(row.patreon_name) for row in unlinked[:NAMED_IN_SUMMARY])
            more = f" and {len(unlinked) - NAMED_IN_SUMMARY} more" if len(unlinked) > NAMED_IN_SUMMARY else ""
            lines.append(
                f"💸 **Paying but not linked here: {len(unlinked)}**: {names}{more}. Point them to `/patreon link` "
                "(or the Link-account panel)."
            )
        else:
            lines.append("💸 Paying but not linked here: none.")
        by_tier = Counter(tier for row in self.linked_here for tier in (row.tiers or ("no tier",)))
        if by_tier:
            tiers = ", ".join(f"{_plain(tier)}: {count}" for tier, count in sorted(by_tier.items()))
            lines.append(f"🔗 **Linked members here: {len(self.linked_here)}** ({tiers}).")
        else:
            lines.append("🔗 Linked members here: none.")
        grace = self.in_grace
        if grace:
            lines.append(f"⏳ **Holding roles while the policy waits: {len(grace)}**")
            lines += [f"- <@{row.discord_user_id}>: {row.held_because}" for row in grace[:NAMED_IN_SUMMARY]]
        gone = self.linked_gone
        if gone:
            names = ", ".join(
                f"{_plain(row.patreon_name)} (<@{row.discord_user_id}>)" for row in gone[:NAMED_IN_SUMMARY]
            )
            more = f" and {len(gone) - NAMED_IN_SUMMARY} more" if len(gone) > NAMED_IN_SUMMARY else ""
            lines.append(f"🚪 **Linked to someone no longer in this server: {len(gone)}**: {names}{more}.")
        if self.comps:
            lines.append(f"🎁 **Comps: {len(self.comps)}**")
            lines += [f"- {line}" for line in self.comps[:NAMED_IN_SUMMARY]]
        return "\n".join(lines)

    def csv_bytes(self) -> bytes:
        """Every patron, one row each, every cell neutralised (`safe_cell`); UTF-8 with a BOM so spreadsheet
        programs read the names right."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for row in self.rows:
            writer.writerow(
                safe_cell(value)
                for value in (
                    row.patreon_name,
                    row.patreon_user_id,
                    "; ".join(row.tiers),
                    row.status,
                    row.discord_name,
                    "" if row.discord_user_id is None else str(row.discord_user_id),
                    {True: "yes", False: "no", None: ""}[row.in_server],
                    "; ".join(row.roles_here),
                )
            )
        return out.getvalue().encode("utf-8-sig")


def attachment(data: bytes, limit: int = ZIP_ABOVE_BYTES) -> tuple[str, bytes]:
    """(file name, bytes) to attach: the CSV itself, or zipped when it is too big for Discord."""
    if len(data) <= limit:
        return CSV_NAME, data
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CSV_NAME, data)
    return f"{CSV_NAME}.zip", buffer.getvalue()


def safe_cell(value: str) -> str:
    """A cell no spreadsheet runs as a formula: a leading `=`, `+`, `-`, `@`, tab or CR gets a `'` before it."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def _plain(text: str) -> str:
    """A name as plain text in a Discord message: no markdown, no mention (names are chosen by their owners)."""
    for mark in ("\\", "*", "_", "`", "~", "|", ">", "<", "@", "#", "["):
        text = text.replace(mark, f"\\{mark}")
    return " ".join(text.split())[:80] or "(no name)"


def describe_status(membership: MembershipSnapshot) -> str:
    words = [STATUS_WORDS[membership.patron_status] if membership.patron_status else "free member"]
    if membership.is_free_trial:
        words.append("free trial")
    if membership.is_gifted:
        words.append("gifted")
    return ", ".join(words)


@dataclass(frozen=True)
class ServerView:
    """What this server holds: its policy and, per linked member, their roles here (None: not a member)."""

    settings: GuildSettings
    tier_roles: TierRoleMap
    tiers: Mapping[str, Tier]
    #: Discord user id → Patreon user id, for every link that counts here.
    links: Mapping[int, str]
    roles_of: Mapping[int, frozenset[int] | None]
    grants: Mapping[int, frozenset[int]]
    role_name: Callable[[int], str]
    user_name: Callable[[int], str]


class ReportBuilder:
    """Builds the report one membership at a time, so the store's snapshots can stream through it a chunk at a time:
    what stays is one small `PatronRow` a patron (the CSV's content), never the snapshots."""

    def __init__(self, server: ServerView, now: datetime) -> None:
        self.server = server
        self.now = now
        self._discord_by_patreon = {patreon: discord for discord, patreon in server.links.items()}
        self._managed = managed_role_ids(server.settings, server.tier_roles)
        self._rows: list[PatronRow] = []

    def add(self, membership: MembershipSnapshot) -> None:
        server = self.server
        patreon_id = membership.patreon_user_id or ""
        tiers = tuple(
            server.tiers[tier].title if tier in server.tiers else tier for tier in membership.entitled_tier_ids
        )
        row = PatronRow(
            patreon_name=membership.full_name or "",
            patreon_user_id=patreon_id,
            tiers=tiers,
            status=describe_status(membership),
            paying=membership.patron_status is PatronStatus.ACTIVE,
        )
        discord_id = self._discord_by_patreon.get(patreon_id)
        if discord_id is not None:
            row = _with_member(row, membership, discord_id, server, self._managed, self.now)
        self._rows.append(row)

    def report(self) -> PatronsReport:
        """The rows by Patreon name (case aside), then Patreon user id."""
        return PatronsReport(rows=sorted(self._rows, key=lambda row: (row.patreon_name.lower(), row.patreon_user_id)))


def build_report(memberships: Iterable[MembershipSnapshot], server: ServerView, now: datetime) -> PatronsReport:
    """The report from stored facts (pure: the tests feed it directly too)."""
    builder = ReportBuilder(server, now)
    for membership in memberships:
        builder.add(membership)
    return builder.report()


def _with_member(
    row: PatronRow,
    membership: MembershipSnapshot,
    discord_id: int,
    server: ServerView,
    managed: frozenset[int],
    now: datetime,
) -> PatronRow:
    row = replace(row, discord_user_id=discord_id, discord_name=server.user_name(discord_id))
    if discord_id not in server.roles_of:
        return row  # Discord couldn't say
    actual = server.roles_of[discord_id]
    if actual is None:
        return replace(row, in_server=False)
    ours = server.grants.get(discord_id, frozenset()) & actual
    decision = decide_roles(membership, server.settings, server.tier_roles, server.tiers, now, held_managed_roles=ours)
    return replace(
        row,
        in_server=True,
        roles_here=tuple(sorted(server.role_name(role) for role in actual & managed)),
        held_because=decision.summary if decision.hold and ours else None,
    )


async def patrons_report(
    store: Store,
    gateway: RoleGateway,
    participation: Participation,
    guild_id: int,
    now: datetime,
    campaign_id: str | None = None,
    chunk: int = REPORT_CHUNK,
) -> PatronsReport:
    """The report for this server; AdminError where the server doesn't take part (the campaign's patrons are the
    creator's business). The campaign's memberships are read `chunk` at a time: a campaign of 100,000 never has
    all its snapshots in memory at once."""
    problem = await participation.refusal(guild_id)
    if problem is not None:
        raise AdminError(problem)
    if campaign_id is None:  # this server's own campaign only: another campaign's patrons are not its business
        campaign = await participation.campaign_for(guild_id)
        if campaign is None:  # never "every campaign's patrons"
            raise AdminError("This server follows no Patreon campaign.")
        campaign_id = await campaign.storage_key()
    links = await store.links_counting_in(guild_id)
    roles_of: dict[int, frozenset[int] | None] = {}
    lookups = 0
    for discord_id in links:
        cached = gateway.cached_member_roles(guild_id, discord_id)
        if cached is not None or gateway.knows_member(guild_id, discord_id):
            roles_of[discord_id] = cached
        elif lookups < MAX_MEMBER_LOOKUPS:
            lookups += 1
            roles_of[discord_id] = await gateway.member_roles(guild_id, discord_id)
    server = ServerView(
        settings=await store.get_settings(guild_id),
        tier_roles=await store.get_tier_roles(guild_id),
        tiers=await store.get_tiers(campaign_id),
        links=links,
        roles_of=roles_of,
        grants=await store.grants_in_guild(guild_id),
        role_name=lambda role_id: gateway.role_name(guild_id, role_id),
        user_name=gateway.user_name,
    )
    builder = ReportBuilder(server, now)
    async for membership in store.iter_stored_memberships(campaign_id, chunk):  # a chunk at a time, never all
        builder.add(membership)
    report = builder.report()
    report.comps = [
        f"<@{comp.user_id}>: @{server.role_name(comp.role_id)}, {comp.describe()}"
        for comps in (await store.guild_comps(guild_id, now)).values()
        for comp in comps
    ]
    log.info(
        "guild=%s patrons report: %d patrons, %d paying unlinked, %d linked here, %d in grace, %d gone",
        guild_id,
        len(report.rows),
        len(report.unlinked_paying),
        len(report.linked_here),
        len(report.in_grace),
        len(report.linked_gone),
    )
    return report
