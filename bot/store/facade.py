"""The one store: a SQLite file (WAL) behind aiosqlite, keyed so many guilds share one campaign."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, Tier, TierRoleMap
from bot.store.bulk import UPSERT_MEMBERSHIP, BulkStore, campaign_key, membership_row
from bot.store.campaigns import CampaignStore
from bot.store.claims import ClaimStore
from bot.store.codec import decode_settings, decode_snapshot, encode_settings
from bot.store.comps import CompStore
from bot.store.daily_counts import DailyCountStore
from bot.store.database import POSTGRES, SQLITE, Database
from bot.store.dm_outbox import DmOutboxStore
from bot.store.due_moments import DueMomentsStore
from bot.store.files import StoreUnusable, explain, keep_private, prepare_database_file
from bot.store.links import LinkStore
from bot.store.opening import PRAGMAS, check_writable, execute, key_file_cipher, postgres_db
from bot.store.panels import PanelStore
from bot.store.patron_report import PatronReportStore
from bot.store.plan_inputs import PlanInputsStore
from bot.store.queue_store import QueueStore
from bot.store.queues import UPSERT_FACT, iso_utc
from bot.store.role_connections import RoleConnectionStore
from bot.store.schema import MIGRATIONS
from bot.store.stats import StatsStore
from bot.store.token_cipher import TokenCipher
from bot.store.tokens import TokenStore

log = logging.getLogger(__name__)

CREATOR_SUBJECT = "creator"
#: Facts (`set_fact`) that `/patreon-admin check` reads: when a webhook last arrived, how the last refresh went.
WEBHOOK_LAST_SEEN = "webhook_last_seen"
LAST_REFRESH = "last_refresh"


def patron_subject(patreon_user_id: str) -> str:
    return f"patron:{patreon_user_id}"


class Store(
    LinkStore,
    ClaimStore,
    CampaignStore,
    TokenStore,
    QueueStore,
    BulkStore,
    DueMomentsStore,
    PlanInputsStore,
    PanelStore,
    StatsStore,
    RoleConnectionStore,
    DailyCountStore,
    DmOutboxStore,
    CompStore,
    PatronReportStore,
):
    """All persistence goes through here; methods commit before they return.

    The account links (`LinkStore`), the connected campaigns and server bindings (`CampaignStore`), the encrypted
    tokens (`TokenStore`), the durable queues (`QueueStore`), the refresh's bulk reads and writes (`BulkStore`),
    the moments members fall due at (`DueMomentsStore`), what its plan reads of a guild (`PlanInputsStore`) and
    the Link-account panels (`PanelStore`) live in their own modules but share this one connection.

    Memberships and tiers belong to one campaign (migration 8). Their methods take `campaign_id`; the sync engine
    always passes it. None is for single-campaign callers (tests, benches): a write goes under the snapshot's own
    campaign, a read looks in every campaign (the latest look wins).
    """

    def __init__(self, db: Database, cipher: TokenCipher, dialect: str = SQLITE) -> None:
        self._db = db
        self._cipher = cipher
        self._dialect = dialect

    @classmethod
    async def open(cls, path: str | Path, cipher: TokenCipher | None = None) -> Store:
        """Open and migrate the database (created 0600), sealing tokens with `cipher`; None means the key file
        beside the database, made on first start (what the bot does when TOKEN_ENCRYPTION_KEY is unset).

        Raises StoreUnusable or TokenKeyError, one line each, and leaves no connection (nor its thread) open.
        """
        path = Path(path)
        prepare_database_file(path)
        try:
            db = await aiosqlite.connect(path)
        except (sqlite3.Error, OSError) as error:
            raise StoreUnusable(explain(error, path)) from None
        try:
            db.row_factory = aiosqlite.Row
            for pragma in PRAGMAS:
                await execute(db, pragma)
            await check_writable(db)
            store = cls(db, cipher or await key_file_cipher(db, path))
            await store._migrate()
            await store._check_token_key()
            sealed = await store._seal_plain_tokens()
            keep_private(path)
        except (sqlite3.Error, OSError) as error:
            await db.close()
            raise StoreUnusable(explain(error, path)) from None
        except BaseException:
            await db.close()
            raise
        if sealed:
            log.info("encrypted %d stored token pair(s) that were plain text", sealed)
        return store

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        """How many of this engine's migrations have run (bot/store/schema.py, or schema_postgres.py)."""
        if self._dialect == POSTGRES:
            return await postgres_db().schema_version(self._db)
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        if self._dialect == POSTGRES:
            await postgres_db().migrate(self._db)
        else:
            current = await self.schema_version()
            for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
                await self._run_script(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
        filled = await self.fill_due_moments()
        if filled:
            log.info("store: the moments time may change roles at, read for %d membership(s) (migration 14)", filled)

    # -- membership snapshots ----------------------------------------------------------------------

    async def save_membership(self, snapshot: MembershipSnapshot, campaign_id: str | None = None) -> bool:
        """Store the snapshot under its campaign unless a newer one is already stored, or Patreon said this
        membership was gone after it was read (a tombstone, the rule `save_membership_page` applies too); say
        whether it was stored.

        This is what keeps an old webhook, arriving late, from rolling state back, and another process's look
        fetched before its 404 from bringing a lapsed membership back.
        """
        if snapshot.patreon_user_id is None:
            raise ValueError("a membership without a Patreon user id cannot be stored")
        key = campaign_key(snapshot, campaign_id)
        row = membership_row(snapshot, datetime.now(UTC), key)
        look = (key, snapshot.patreon_user_id, row[5], snapshot.member_id, snapshot.member_id)
        if await self._gone_after(look):
            return False
        result = await self._run(UPSERT_MEMBERSHIP, row)
        await self._db.commit()
        if result.rowcount > 0 and await self._gone_after(look):  # another process's 404 landed in between
            await self._run(
                "DELETE FROM memberships WHERE campaign_id = ? AND patreon_user_id = ? AND observed_at = ?", look[:3]
            )
            await self._db.commit()
            return False
        return result.rowcount > 0

    async def _gone_after(self, look: tuple[object, ...]) -> bool:
        """Whether a tombstone of (campaign, user) is later than the look and covers its membership id (a
        renewal has another id; a tombstone without one covers every membership of the user)."""
        async with self._db.execute(
            "SELECT 1 FROM membership_tombstones WHERE campaign_id = ? AND patreon_user_id = ? AND gone_at > ?"
            " AND (member_id IS NULL OR CAST(? AS TEXT) IS NULL OR member_id = ?)",
            look,
        ) as cursor:
            return await cursor.fetchone() is not None

    async def get_membership(self, patreon_user_id: str, campaign_id: str | None = None) -> MembershipSnapshot | None:
        """The user's membership of `campaign_id` (None: of any campaign, the latest look)."""
        async with self._db.execute(
            "SELECT snapshot, observed_at FROM memberships WHERE patreon_user_id = ?"
            " AND (CAST(? AS TEXT) IS NULL OR campaign_id = ?)"
            " ORDER BY observed_at DESC LIMIT 1",
            (patreon_user_id, campaign_id, campaign_id),
        ) as cursor:
            row = await cursor.fetchone()
        return decode_snapshot(row["snapshot"], datetime.fromisoformat(row["observed_at"])) if row else None

    async def delete_membership(self, patreon_user_id: str, campaign_id: str | None = None) -> None:
        await self._run(
            "DELETE FROM memberships WHERE patreon_user_id = ? AND (CAST(? AS TEXT) IS NULL OR campaign_id = ?)",
            (patreon_user_id, campaign_id, campaign_id),
        )
        await self._db.commit()

    # -- guild settings and tier maps --------------------------------------------------------------

    async def get_settings(self, guild_id: int) -> GuildSettings:
        async with self._db.execute("SELECT settings FROM guild_settings WHERE guild_id = ?", (guild_id,)) as cursor:
            row = await cursor.fetchone()
        return decode_settings(guild_id, row["settings"]) if row else GuildSettings(guild_id=guild_id)

    async def save_settings(self, settings: GuildSettings) -> None:
        await self._run(
            "INSERT INTO guild_settings VALUES (?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
            " settings = excluded.settings, updated_at = excluded.updated_at",
            (settings.guild_id, encode_settings(settings), _now()),
        )
        await self._db.commit()

    async def map_tier_role(self, guild_id: int, tier_id: str, role_id: int) -> bool:
        result = await self._run(
            "INSERT INTO tier_roles VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (guild_id, tier_id, role_id)
        )
        await self._db.commit()
        return result.rowcount > 0

    async def unmap_tier_role(self, guild_id: int, tier_id: str, role_id: int | None = None) -> int:
        """Remove one mapping, or all of a tier's when `role_id` is None; return how many went."""
        if role_id is None:
            result = await self._run("DELETE FROM tier_roles WHERE guild_id = ? AND tier_id = ?", (guild_id, tier_id))
        else:
            result = await self._run(
                "DELETE FROM tier_roles WHERE guild_id = ? AND tier_id = ? AND role_id = ?",
                (guild_id, tier_id, role_id),
            )
        await self._db.commit()
        return result.rowcount

    async def get_tier_roles(self, guild_id: int) -> TierRoleMap:
        roles: dict[str, set[int]] = {}
        async with self._db.execute(
            "SELECT tier_id, role_id FROM tier_roles WHERE guild_id = ?", (guild_id,)
        ) as cursor:
            async for row in cursor:
                roles.setdefault(row["tier_id"], set()).add(int(row["role_id"]))
        return TierRoleMap({tier: frozenset(ids) for tier, ids in roles.items()})

    async def configured_guild_ids(self) -> list[int]:
        async with self._db.execute(
            "SELECT guild_id FROM tier_roles UNION SELECT guild_id FROM guild_settings ORDER BY 1"
        ) as cursor:
            return [int(row[0]) async for row in cursor]

    # -- the ledger of roles this bot granted --------------------------------------------------------

    async def record_grants(
        self, guild_id: int, discord_user_id: int, role_ids: Iterable[int], reason: str, *, at: datetime | None = None
    ) -> None:
        """`at` is the engine's clock (the settle check compares against it); the wall clock when not given."""
        now = _iso(at) if at is not None else _now()
        await self._run_many(
            # A re-grant restarts the clock: `_settled_forgets` trusts the cache only for grants older than a minute.
            "INSERT INTO role_grants VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, discord_user_id, role_id)"
            " DO UPDATE SET granted_at = excluded.granted_at, reason = excluded.reason",
            [(guild_id, discord_user_id, role_id, now, reason) for role_id in role_ids],
        )
        await self._db.commit()

    async def forget_grants(self, guild_id: int, discord_user_id: int, role_ids: Iterable[int]) -> None:
        await self._run_many(
            "DELETE FROM role_grants WHERE guild_id = ? AND discord_user_id = ? AND role_id = ?",
            [(guild_id, discord_user_id, role_id) for role_id in role_ids],
        )
        await self._db.commit()

    async def granted_roles(self, guild_id: int, discord_user_id: int) -> frozenset[int]:
        async with self._db.execute(
            "SELECT role_id FROM role_grants WHERE guild_id = ? AND discord_user_id = ?",
            (guild_id, discord_user_id),
        ) as cursor:
            return frozenset([int(row[0]) async for row in cursor])

    async def grant_times(self, guild_id: int, discord_user_id: int) -> dict[int, datetime]:
        """When each of this member's grants was recorded (UTC)."""
        async with self._db.execute(
            "SELECT role_id, granted_at FROM role_grants WHERE guild_id = ? AND discord_user_id = ?",
            (guild_id, discord_user_id),
        ) as cursor:
            return {int(row[0]): datetime.fromisoformat(row[1]) async for row in cursor}

    async def users_with_grants(self, guild_id: int) -> list[int]:
        async with self._db.execute(
            "SELECT DISTINCT discord_user_id FROM role_grants WHERE guild_id = ? ORDER BY 1", (guild_id,)
        ) as cursor:
            return [int(row[0]) async for row in cursor]

    # -- OAuth states, campaign tiers, service facts --------------------------------------------------

    async def consume_state(self, nonce: str, expires_at: datetime) -> bool:
        """Mark a state used; False when it had been used before (a replay)."""
        await self._run("DELETE FROM used_states WHERE expires_at < ?", (_now(),))
        result = await self._run(
            "INSERT INTO used_states VALUES (?, ?) ON CONFLICT DO NOTHING", (nonce, _iso(expires_at))
        )
        await self._db.commit()
        return result.rowcount > 0

    async def save_tiers(self, campaign_id: str, tiers: Iterable[Tier]) -> None:
        """Replace this campaign's tier catalogue (other campaigns' stay)."""
        await self._run("DELETE FROM campaign_tiers WHERE campaign_id = ?", (campaign_id,))
        await self._run_many(
            "INSERT INTO campaign_tiers (campaign_id, tier_id, title, amount_cents, patron_count, published)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (campaign_id, tier_id) DO UPDATE SET title = excluded.title,"
            " amount_cents = excluded.amount_cents, patron_count = excluded.patron_count,"
            " published = excluded.published",
            [
                (campaign_id, tier.id, tier.title, tier.amount_cents, tier.patron_count, tier.published)
                for tier in tiers
            ],
        )
        await self._db.commit()

    async def get_tiers(self, campaign_id: str | None = None) -> dict[str, Tier]:
        """One campaign's tiers (None: every campaign's, for single-campaign callers)."""
        async with self._db.execute(
            "SELECT * FROM campaign_tiers WHERE CAST(? AS TEXT) IS NULL OR campaign_id = ?"
            " ORDER BY amount_cents, tier_id",
            (campaign_id, campaign_id),
        ) as cursor:
            return {
                row["tier_id"]: Tier(
                    id=row["tier_id"],
                    title=row["title"],
                    amount_cents=int(row["amount_cents"]),
                    patron_count=row["patron_count"],
                    published=None if row["published"] is None else bool(row["published"]),
                )
                async for row in cursor
            }

    async def set_fact(self, key: str, value: object) -> None:
        await self._run(UPSERT_FACT, (key, json.dumps(value)))
        await self._db.commit()

    async def get_fact(self, key: str) -> object | None:
        async with self._db.execute("SELECT value FROM service_state WHERE key = ?", (key,)) as cursor:
            row = await cursor.fetchone()
        return json.loads(row[0]) if row else None


_iso = iso_utc


def _now() -> str:
    return _iso(datetime.now(UTC))
