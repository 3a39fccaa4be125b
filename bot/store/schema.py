"""The SQLite schema as an ordered list of migrations; `PRAGMA user_version` says how many have run.

Append only: a migration that has shipped is never edited, since databases out there already ran it.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: links, tokens, memberships, per-guild settings and tier→role maps, the grant ledger, used OAuth states.
    """
    CREATE TABLE links (
        discord_user_id INTEGER PRIMARY KEY,
        patreon_user_id TEXT NOT NULL UNIQUE,
        linked_in_guild_id INTEGER,
        source TEXT NOT NULL,
        linked_at TEXT NOT NULL
    );
    CREATE TABLE tokens (
        subject TEXT PRIMARY KEY,
        access_token TEXT NOT NULL,
        refresh_token TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        scope TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE memberships (
        patreon_user_id TEXT PRIMARY KEY,
        member_id TEXT,
        campaign_id TEXT,
        social_discord_id INTEGER,
        snapshot TEXT NOT NULL,
        observed_at TEXT NOT NULL
    );
    CREATE INDEX memberships_by_social_discord ON memberships (social_discord_id);
    CREATE TABLE guild_settings (
        guild_id INTEGER PRIMARY KEY,
        settings TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE tier_roles (
        guild_id INTEGER NOT NULL,
        tier_id TEXT NOT NULL,
        role_id INTEGER NOT NULL,
        PRIMARY KEY (guild_id, tier_id, role_id)
    );
    CREATE TABLE role_grants (
        guild_id INTEGER NOT NULL,
        discord_user_id INTEGER NOT NULL,
        role_id INTEGER NOT NULL,
        granted_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (guild_id, discord_user_id, role_id)
    );
    CREATE TABLE used_states (
        nonce TEXT PRIMARY KEY,
        expires_at TEXT NOT NULL
    );
    CREATE TABLE campaign_tiers (
        tier_id TEXT PRIMARY KEY,
        campaign_id TEXT NOT NULL,
        title TEXT NOT NULL,
        amount_cents INTEGER NOT NULL,
        patron_count INTEGER,
        published INTEGER
    );
    CREATE TABLE service_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: the durable queues. Webhook events are recorded before the answer and applied afterwards; role jobs hold
    # one pending reconcile per (guild, member), coalesced, until Discord has applied it.
    """
    CREATE TABLE webhook_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at TEXT NOT NULL,
        trigger TEXT NOT NULL,
        resource_type TEXT,
        member_id TEXT,
        patreon_user_id TEXT,
        campaign_id TEXT,
        body_sha256 TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        finished_at TEXT
    );
    CREATE INDEX webhook_events_due ON webhook_events (state, next_attempt_at);
    CREATE TABLE role_jobs (
        guild_id INTEGER NOT NULL,
        discord_user_id INTEGER NOT NULL,
        cause TEXT NOT NULL,
        state TEXT NOT NULL,
        seq INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        enqueued_at TEXT NOT NULL,
        last_error TEXT,
        reported INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (guild_id, discord_user_id)
    );
    CREATE INDEX role_jobs_due ON role_jobs (state, next_attempt_at);
    """,
    # 3: pairs auto-match must leave alone because the link was removed on purpose (`/patreon unlink`, or an admin's
    # unlink-user). An explicit OAuth or admin link of the same pair deletes the row again.
    """
    CREATE TABLE auto_match_optouts (
        discord_user_id INTEGER NOT NULL,
        patreon_user_id TEXT NOT NULL,
        opted_out_at TEXT NOT NULL,
        PRIMARY KEY (discord_user_id, patreon_user_id)
    );
    """,
    # 4: when Patreon last said a membership was gone, so a listing page fetched before that can't bring it back.
    """
    CREATE TABLE membership_tombstones (
        patreon_user_id TEXT PRIMARY KEY,
        member_id TEXT,
        gone_at TEXT NOT NULL
    );
    """,
    # 5: servers set up before the `enabled` switch existed were all managed; keep them so after the upgrade by
    # turning it on for every server the database knows (mappings or settings), as a settings row of its own when
    # it had only mappings ('{}' decodes to the defaults). A value already there (an admin's explicit choice) stays.
    # Taking part still needs the server to be the creator's (ALLOWED_GUILD_IDS or the one-server rule). A fresh
    # database has no rows yet, so it turns nothing on.
    """
    INSERT INTO guild_settings (guild_id, settings, updated_at)
        SELECT DISTINCT guild_id, '{}', strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM tier_roles
        WHERE guild_id NOT IN (SELECT guild_id FROM guild_settings);
    UPDATE guild_settings SET settings = json_set(settings, '$.enabled', json('true'))
        WHERE CASE WHEN json_valid(settings) THEN json_type(settings, '$.enabled') IS NULL ELSE 0 END;
    """,
    # 6: the Link-account panel each server posted (so `panel` edits it instead of posting a second one, and
    # `map`/`unmap` re-render it), and the members already invited to link on joining (at most once each).
    """
    CREATE TABLE link_panels (
        guild_id INTEGER PRIMARY KEY,
        channel_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        title TEXT,
        body TEXT,
        posted_at TEXT NOT NULL
    );
    CREATE TABLE link_invitations (
        guild_id INTEGER NOT NULL,
        discord_user_id INTEGER NOT NULL,
        sent_at TEXT NOT NULL,
        PRIMARY KEY (guild_id, discord_user_id)
    );
    """,
    # 7: a hash of each stored snapshot (bot/store/codec.py `snapshot_hash`), so the refresh finds the members
    # Patreon describes differently without encoding every one. Rows from before have none and count as changed
    # once.
    """
    ALTER TABLE memberships ADD COLUMN snapshot_hash BLOB;
    """,
)
