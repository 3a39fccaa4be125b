"""Connected campaigns and which campaign each server follows (migration 8).

A campaign's creator tokens live in `tokens` under its `token_subject`, sealed like every token; its webhook secret
is sealed the same way here. A server follows at most one campaign (`guild_campaigns`): the binding is what lets a
server act for a campaign, so only the connect flow (the creator's own OAuth) writes it.

A server whose admin disconnected it keeps a marker (`service_state`, `guild-disconnected:<id>`, written in the
same commit as the unbinding, cleared by the next `bind_guild`): `guild_bindings` maps it to `DISCONNECTED`, which
no campaign is, so it follows nothing and the `.env` campaign's ownership rule (bot/sync/participation.py) never
takes it back, nor counts it as a rival of the creator's server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.store.queues import UPSERT_FACT, SqlRunner, iso_utc
from bot.store.token_cipher import TokenCipher

#: The campaign key of rows migrated from a database whose campaign id was not known yet; `adopt_unknown_campaign`
#: re-keys them once the creator token tells the id.
UNKNOWN_CAMPAIGN = ""
ENV_SOURCE = "env"
OAUTH_SOURCE = "oauth"
ACTIVE = "active"
REVOKED = "revoked"
#: What `guild_bindings` says of a server disconnected on purpose: no campaign has this id (Patreon's are digits).
DISCONNECTED = "(disconnected)"
_DISCONNECTED_PREFIX = "guild-disconnected:"

#: Tables whose rows belong to one campaign (`campaign_id` column): what `adopt_unknown_campaign` re-keys.
#: Each with the rest of its primary key.
_CAMPAIGN_TABLES = {
    "memberships": "patreon_user_id",
    "membership_tombstones": "patreon_user_id",
    "campaign_tiers": "tier_id",
}


def campaign_token_subject(campaign_id: str) -> str:
    """Where a connected (OAuth) campaign's creator tokens are stored; the `.env` campaign keeps `creator`."""
    return f"campaign:{campaign_id}"


#: Where a creator's token pair waits while the connect flow's campaign picker is open (`pending_connect_subject`).
PENDING_CONNECT_PREFIX = "connect-pending:"


def pending_connect_subject(nonce: str, expires_at: datetime) -> str:
    """The picker's pair, named with the moment its attempt ends, so `forget_pending_connects` can tell an
    abandoned one from its name alone (the tokens' own `updated_at` is the wall clock, not the bot's)."""
    return f"{PENDING_CONNECT_PREFIX}{int(expires_at.timestamp())}:{nonce}"


def _secret_label(campaign_id: str) -> str:
    return f"campaign:{campaign_id}/webhook"


@dataclass(frozen=True)
class CampaignRecord:
    campaign_id: str
    token_subject: str
    source: str
    connected_at: datetime
    state: str
    webhook_id: str | None = None
    #: Decrypted; never logged (repr hides it).
    webhook_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GuildBinding:
    guild_id: int
    campaign_id: str
    #: The Discord user who connected the server (None: the `.env` import).
    bound_by: int | None
    bound_at: datetime


class CampaignStore(SqlRunner):
    """Mixed into `Store`; every method commits before it returns.

    Which campaign each server follows is asked on every reconcile, so `guild_bindings` is kept in memory; every
    write to `guild_campaigns` goes through this class and drops it (one process per database: the lock file)."""

    _cipher: TokenCipher
    _bindings: dict[int, str] | None = None

    async def save_campaign(
        self,
        campaign_id: str,
        *,
        token_subject: str,
        source: str,
        webhook_secret: str | None = None,
        webhook_id: str | None = None,
        at: datetime | None = None,
    ) -> CampaignRecord:
        """Record (or re-connect) a campaign as active. A secret or webhook id left None keeps the stored one."""
        if source not in (ENV_SOURCE, OAUTH_SOURCE):
            raise ValueError(f"unknown campaign source {source!r}")
        if not campaign_id:
            raise ValueError("a campaign needs its id")
        sealed = None if webhook_secret is None else self._cipher.seal(_secret_label(campaign_id), webhook_secret)
        await self._run(
            "INSERT INTO campaigns VALUES (?, ?, ?, ?, ?, ?, 'active') ON CONFLICT (campaign_id) DO UPDATE SET"
            " token_subject = excluded.token_subject, source = excluded.source, state = 'active',"
            " webhook_secret = COALESCE(excluded.webhook_secret, campaigns.webhook_secret),"
            " webhook_id = COALESCE(excluded.webhook_id, campaigns.webhook_id)",
            (campaign_id, token_subject, sealed, webhook_id, source, iso_utc(at or datetime.now(UTC))),
        )
        await self._db.commit()
        record = await self.get_campaign(campaign_id)
        assert record is not None
        return record

    async def set_campaign_webhook(self, campaign_id: str, webhook_id: str | None, webhook_secret: str | None) -> None:
        """The webhook registered for this campaign (None, None: it was deleted)."""
        sealed = None if webhook_secret is None else self._cipher.seal(_secret_label(campaign_id), webhook_secret)
        await self._run(
            "UPDATE campaigns SET webhook_id = ?, webhook_secret = ? WHERE campaign_id = ?",
            (webhook_id, sealed, campaign_id),
        )
        await self._db.commit()

    async def set_campaign_state(self, campaign_id: str, state: str) -> None:
        if state not in (ACTIVE, REVOKED):
            raise ValueError(f"unknown campaign state {state!r}")
        await self._run("UPDATE campaigns SET state = ? WHERE campaign_id = ?", (state, campaign_id))
        await self._db.commit()

    async def get_campaign(self, campaign_id: str) -> CampaignRecord | None:
        async with self._db.execute("SELECT * FROM campaigns WHERE campaign_id = ?", (campaign_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else self._campaign(row)

    async def campaign_records(self) -> list[CampaignRecord]:
        """Every connected campaign (active or revoked), oldest first."""
        async with self._db.execute("SELECT * FROM campaigns ORDER BY connected_at, campaign_id") as cursor:
            rows = [row async for row in cursor]
        return [self._campaign(row) for row in rows]

    async def forget_campaign(self, campaign_id: str) -> list[int]:
        """Remove the campaign, its bindings and its creator tokens in one commit; return the servers that
        followed it. Its memberships and tiers stay until a refresh or a re-connect (nothing grants from them once
        no server follows the campaign), and the grant ledger stays so a final sync can take roles back."""
        record = await self.get_campaign(campaign_id)
        guilds = await self.guilds_following(campaign_id)
        self._bindings = None
        for guild_id in guilds:
            await self._mark_disconnected(guild_id, campaign_id)
        await self._run("DELETE FROM guild_campaigns WHERE campaign_id = ?", (campaign_id,))
        await self._run("DELETE FROM campaigns WHERE campaign_id = ?", (campaign_id,))
        if record is not None:
            await self._run("DELETE FROM tokens WHERE subject = ?", (record.token_subject,))
        await self._db.commit()
        return guilds

    async def forget_pending_connects(self, now: datetime) -> int:
        """Delete the creator pairs of connect attempts that ended by `now` unpicked (an abandoned picker), and any
        whose name tells no end (written before names carried it); one commit; return how many."""
        async with self._db.execute(
            "SELECT subject FROM tokens WHERE subject LIKE ?", (f"{PENDING_CONNECT_PREFIX}%",)
        ) as cursor:
            subjects = [str(row[0]) async for row in cursor]
        expired = [subject for subject in subjects if _pending_ends(subject) <= now.timestamp()]
        if expired:
            await self._run_many("DELETE FROM tokens WHERE subject = ?", [(subject,) for subject in expired])
            await self._db.commit()
        return len(expired)

    def _campaign(self, row: Any) -> CampaignRecord:
        secret = row["webhook_secret"]
        return CampaignRecord(
            campaign_id=row["campaign_id"],
            token_subject=row["token_subject"],
            source=row["source"],
            connected_at=datetime.fromisoformat(row["connected_at"]),
            state=row["state"],
            webhook_id=row["webhook_id"],
            webhook_secret=None if secret is None else self._cipher.open(_secret_label(row["campaign_id"]), secret),
        )

    # -- which campaign a server follows -------------------------------------------------------------

    async def bind_guild(self, guild_id: int, campaign_id: str, by: int | None, *, at: datetime | None = None) -> None:
        """Make the server follow `campaign_id` (replacing any campaign it followed). The campaign must be saved
        first (`save_campaign`); ValueError otherwise, and nothing changes."""
        if await self.get_campaign(campaign_id) is None:
            raise ValueError(f"campaign {campaign_id} is not connected")
        self._bindings = None
        await self._run(
            "INSERT INTO guild_campaigns VALUES (?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
            " campaign_id = excluded.campaign_id, bound_by = excluded.bound_by, bound_at = excluded.bound_at",
            (guild_id, campaign_id, by, iso_utc(at or datetime.now(UTC))),
        )
        await self._run("DELETE FROM service_state WHERE key = ?", (f"{_DISCONNECTED_PREFIX}{guild_id}",))
        await self._db.commit()

    async def unbind_guild(self, guild_id: int) -> str | None:
        """Stop the server following a campaign, on purpose (a disconnect): it follows none from now on, the `.env`
        campaign included, until it is bound again. Return the campaign it followed, if any."""
        binding = await self.guild_binding(guild_id)
        if binding is not None:
            self._bindings = None
            await self._mark_disconnected(guild_id, binding.campaign_id)
            await self._run("DELETE FROM guild_campaigns WHERE guild_id = ?", (guild_id,))
            await self._db.commit()
        return None if binding is None else binding.campaign_id

    async def _mark_disconnected(self, guild_id: int, campaign_id: str) -> None:
        """Part of an unbinding's commit (the caller commits): a crash can't leave the server unbound unmarked."""
        value = json.dumps({"campaign_id": campaign_id, "at": iso_utc(datetime.now(UTC))})
        await self._run(UPSERT_FACT, (f"{_DISCONNECTED_PREFIX}{guild_id}", value))

    async def disconnected_guilds(self) -> frozenset[int]:
        """The servers disconnected on purpose and not bound since."""
        async with self._db.execute(
            "SELECT key FROM service_state WHERE key LIKE ?", (f"{_DISCONNECTED_PREFIX}%",)
        ) as cursor:
            keys = [str(row[0]) async for row in cursor]
        return frozenset(int(key.removeprefix(_DISCONNECTED_PREFIX)) for key in keys)

    async def guild_binding(self, guild_id: int) -> GuildBinding | None:
        async with self._db.execute("SELECT * FROM guild_campaigns WHERE guild_id = ?", (guild_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _binding(row)

    async def guild_bindings(self) -> dict[int, str]:
        """Every explicit choice: server → the campaign id it is bound to, or `DISCONNECTED` for a server whose
        admin disconnected it (a copy; read from memory after the first call)."""
        if self._bindings is None:
            found = dict.fromkeys(await self.disconnected_guilds(), DISCONNECTED)
            async with self._db.execute("SELECT guild_id, campaign_id FROM guild_campaigns") as cursor:
                found.update({int(row[0]): row[1] async for row in cursor})
            self._bindings = found
        return dict(self._bindings)

    def forget_cached_bindings(self) -> None:
        """The next `guild_bindings` reads the table again: another process on the same database (shards) may
        have bound or unbound a server (CampaignRegistry.reload calls this every few seconds)."""
        self._bindings = None

    async def guilds_following(self, campaign_id: str) -> list[int]:
        async with self._db.execute(
            "SELECT guild_id FROM guild_campaigns WHERE campaign_id = ? ORDER BY guild_id", (campaign_id,)
        ) as cursor:
            return [int(row[0]) async for row in cursor]

    async def adopt_unknown_campaign(self, campaign_id: str) -> int:
        """Re-key the rows migrated before the campaign id was known (`UNKNOWN_CAMPAIGN`) to `campaign_id`, in one
        commit; return how many rows moved. A row already stored under the real id wins over its migrated twin."""
        if not campaign_id:
            return 0
        moved = 0
        for table, key in _CAMPAIGN_TABLES.items():
            result = await self._run(  # a row whose twin is already stored under the real id stays (and goes next)
                f"UPDATE {table} SET campaign_id = ? WHERE campaign_id = ? AND NOT EXISTS (SELECT 1 FROM {table}"
                f" AS twin WHERE twin.campaign_id = ? AND twin.{key} = {table}.{key})",
                (campaign_id, UNKNOWN_CAMPAIGN, campaign_id),
            )
            moved += max(result.rowcount, 0)
            await self._run(f"DELETE FROM {table} WHERE campaign_id = ?", (UNKNOWN_CAMPAIGN,))
        result = await self._run(
            "UPDATE webhook_events SET addressed_campaign_id = ? WHERE addressed_campaign_id = ?",
            (campaign_id, UNKNOWN_CAMPAIGN),
        )
        moved += max(result.rowcount, 0)
        await self._db.commit()
        return moved

    async def _check_other_secrets(self) -> None:
        """Part of opening the store: every webhook secret opens with the key (TokenKeyError, one line, else)."""
        async with self._db.execute(
            "SELECT campaign_id, webhook_secret FROM campaigns WHERE webhook_secret IS NOT NULL"
        ) as cursor:
            rows = [tuple(row) async for row in cursor]
        for campaign_id, sealed in rows:
            self._cipher.open(_secret_label(campaign_id), sealed)

    async def _reseal_other_secrets(self, cipher: TokenCipher) -> None:
        """Part of `reencrypt_tokens`' commit: every webhook secret under the new key."""
        async with self._db.execute(
            "SELECT campaign_id, webhook_secret FROM campaigns WHERE webhook_secret IS NOT NULL"
        ) as cursor:
            rows = [tuple(row) async for row in cursor]
        await self._run_many(
            "UPDATE campaigns SET webhook_secret = ? WHERE campaign_id = ?",
            [
                (cipher.seal(_secret_label(cid), cipher.open(_secret_label(cid), sealed)), cid)
                for cid, sealed in rows
            ],
        )


def _binding(row: Any) -> GuildBinding:
    return GuildBinding(
        guild_id=int(row["guild_id"]),
        campaign_id=row["campaign_id"],
        bound_by=None if row["bound_by"] is None else int(row["bound_by"]),
        bound_at=datetime.fromisoformat(row["bound_at"]),
    )


def _pending_ends(subject: str) -> float:
    """When a pending connect pair's attempt ends, from its name (0: unreadable, so already ended)."""
    end, _, nonce = subject.removeprefix(PENDING_CONNECT_PREFIX).partition(":")
    return float(end) if end.isdigit() and nonce else 0.0
