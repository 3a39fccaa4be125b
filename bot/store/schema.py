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
    # 8: many campaigns in one install. `campaigns` holds each connected campaign (its creator tokens stay sealed in
    # `tokens` under `token_subject`; its webhook secret is sealed the same way) and `guild_campaigns` which campaign
    # a server follows (at most one). Memberships, tombstones and tiers are keyed by campaign; a webhook event
    # remembers the campaign whose URL and secret received it. The single campaign of an older database is the
    # `campaign_id` fact, else the one its memberships or tiers name, else unknown yet: '' (bot/store/campaigns.py
    # `UNKNOWN_CAMPAIGN`), re-keyed to the real id once the creator token tells it. Links, grants, settings, maps
    # and both queues keep every row.
    """
    CREATE TABLE campaigns (
        campaign_id TEXT PRIMARY KEY,
        token_subject TEXT NOT NULL,
        webhook_secret TEXT,
        webhook_id TEXT,
        source TEXT NOT NULL CHECK (source IN ('env', 'oauth')),
        connected_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'revoked'))
    );
    CREATE TABLE guild_campaigns (
        guild_id INTEGER PRIMARY KEY,
        campaign_id TEXT NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
        bound_by INTEGER,
        bound_at TEXT NOT NULL
    );
    CREATE INDEX guild_campaigns_by_campaign ON guild_campaigns (campaign_id);
    CREATE TEMP TABLE legacy_campaign AS SELECT COALESCE(
        (SELECT json_extract(value, '$') FROM service_state WHERE key = 'campaign_id'
            AND json_valid(value) AND json_type(value) = 'text'),
        (SELECT campaign_id FROM memberships WHERE campaign_id IS NOT NULL AND campaign_id != ''
            GROUP BY campaign_id ORDER BY COUNT(*) DESC LIMIT 1),
        (SELECT campaign_id FROM campaign_tiers GROUP BY campaign_id ORDER BY COUNT(*) DESC LIMIT 1),
        ''
    ) AS id;

    CREATE TABLE memberships_8 (
        campaign_id TEXT NOT NULL,
        patreon_user_id TEXT NOT NULL,
        member_id TEXT,
        social_discord_id INTEGER,
        snapshot TEXT NOT NULL,
        observed_at TEXT NOT NULL,
        snapshot_hash BLOB,
        PRIMARY KEY (campaign_id, patreon_user_id)
    );
    INSERT INTO memberships_8
        SELECT (SELECT id FROM legacy_campaign), patreon_user_id, member_id, social_discord_id, snapshot,
               observed_at, snapshot_hash
        FROM memberships;
    DROP TABLE memberships;
    ALTER TABLE memberships_8 RENAME TO memberships;
    CREATE INDEX memberships_by_social_discord ON memberships (social_discord_id);
    CREATE INDEX memberships_by_member ON memberships (campaign_id, member_id);
    CREATE INDEX memberships_by_user ON memberships (patreon_user_id);

    CREATE TABLE membership_tombstones_8 (
        campaign_id TEXT NOT NULL,
        patreon_user_id TEXT NOT NULL,
        member_id TEXT,
        gone_at TEXT NOT NULL,
        PRIMARY KEY (campaign_id, patreon_user_id)
    );
    INSERT INTO membership_tombstones_8
        SELECT (SELECT id FROM legacy_campaign), patreon_user_id, member_id, gone_at FROM membership_tombstones;
    DROP TABLE membership_tombstones;
    ALTER TABLE membership_tombstones_8 RENAME TO membership_tombstones;

    CREATE TABLE campaign_tiers_8 (
        campaign_id TEXT NOT NULL,
        tier_id TEXT NOT NULL,
        title TEXT NOT NULL,
        amount_cents INTEGER NOT NULL,
        patron_count INTEGER,
        published INTEGER,
        PRIMARY KEY (campaign_id, tier_id)
    );
    INSERT INTO campaign_tiers_8
        SELECT campaign_id, tier_id, title, amount_cents, patron_count, published FROM campaign_tiers;
    DROP TABLE campaign_tiers;
    ALTER TABLE campaign_tiers_8 RENAME TO campaign_tiers;

    ALTER TABLE webhook_events ADD COLUMN addressed_campaign_id TEXT;
    UPDATE webhook_events SET addressed_campaign_id = (SELECT id FROM legacy_campaign);
    CREATE INDEX webhook_events_by_campaign ON webhook_events (addressed_campaign_id, state);
    DROP TABLE legacy_campaign;
    """,
    # 9: Linked Roles (bot/store/role_connections.py): per Discord user, the metadata Discord last accepted and the
    # metadata waiting to be pushed, with its attempts and next try (the push queue); `state` 'revoked' once Discord
    # refused the user's token. The token pair itself is sealed in `tokens` under 'discord:<user id>'.
    """
    CREATE TABLE role_connections (
        discord_user_id INTEGER PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
        platform_username TEXT,
        pushed TEXT,
        pushed_at TEXT,
        wanted TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX role_connections_due ON role_connections (state, next_attempt_at) WHERE wanted IS NOT NULL;
    """,
    # 10 (issue 12): the daily count behind `/patreon-admin stats` (bot/store/daily_counts.py), one row per server,
    # day and tier ('' is the whole server: patrons and how many linked), written once a day, never rewritten; and
    # the outbox of opt-in DMs (bot/store/dm_outbox.py), one row per DM, unique per what makes it one DM.
    """
    CREATE TABLE daily_counts (
        guild_id INTEGER NOT NULL,
        day TEXT NOT NULL,
        tier_id TEXT NOT NULL,
        tier_title TEXT NOT NULL,
        patrons INTEGER NOT NULL,
        linked INTEGER NOT NULL,
        PRIMARY KEY (guild_id, day, tier_id)
    );
    CREATE TABLE dm_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        guild_id INTEGER NOT NULL,
        discord_user_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        dedupe_key TEXT NOT NULL,
        params TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'blocked', 'failed', 'dropped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        sending_at TEXT,
        created_at TEXT NOT NULL,
        done_at TEXT,
        last_error TEXT,
        UNIQUE (guild_id, discord_user_id, kind, dedupe_key)
    );
    CREATE INDEX dm_outbox_due ON dm_outbox (state, next_attempt_at);
    CREATE INDEX dm_outbox_user ON dm_outbox (discord_user_id, state);
    """,
    # 11 (issue 12, items 4 and 5; bot/store/comps.py): comps, a managed role an admin gives a member for a while
    # whatever they pledge, one row per (server, member, role), 'active' until it expires or is revoked ('ended',
    # which the expiry sweep sets once, after queueing the member's role job); and lapses, the moment the engine
    # took the last tier role it had given a member who had pledged (kick on lapse counts from it; a kick or a new
    # grant clears it).
    """
    CREATE TABLE comps (
        guild_id INTEGER NOT NULL,
        discord_user_id INTEGER NOT NULL,
        role_id INTEGER NOT NULL,
        expires_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        granted_by INTEGER NOT NULL,
        granted_at TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'ended')),
        ended_at TEXT,
        ended_why TEXT,
        PRIMARY KEY (guild_id, discord_user_id, role_id)
    );
    CREATE INDEX comps_due ON comps (state, expires_at);
    CREATE TABLE lapses (
        guild_id INTEGER NOT NULL,
        discord_user_id INTEGER NOT NULL,
        lapsed_at TEXT NOT NULL,
        PRIMARY KEY (guild_id, discord_user_id)
    );
    """,
    # 12 (issue 11, item 6; bot/store/claims.py): a claim on a role job and on a webhook event, so processes
    # sharing one database never run the same one twice: which process holds it (`claimed_by`, unique per process
    # run) and until when (`claim_expires_at`, fixed-width UTC text); a claim whose lease ran out (the process was
    # killed) is free again. NULL: nobody's.
    """
    ALTER TABLE role_jobs ADD COLUMN claimed_by TEXT;
    ALTER TABLE role_jobs ADD COLUMN claim_expires_at TEXT;
    ALTER TABLE webhook_events ADD COLUMN claimed_by TEXT;
    ALTER TABLE webhook_events ADD COLUMN claim_expires_at TEXT;
    """,
    # 13 (issue 11, item 6; bot/store/dm_outbox.py): a claim on a queued DM, as on a role job (12), so processes
    # sharing one database never both send one: which process holds it and until when; NULL: nobody's.
    """
    ALTER TABLE dm_outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE dm_outbox ADD COLUMN claim_expires_at TEXT;
    """,
    # 14 (issue 9, item 4; bot/patreon/member_rows.py, bot/domain/billing.py `time_moments`): each membership's
    # listing hash, the hash of the raw bytes the members listing last showed for it, so the next refresh skips an
    # unchanged member without decoding it (written only with a snapshot read from those bytes; any other write, a
    # webhook's re-fetch, clears it; NULL: compare by value); and the moments time alone may change its roles at
    # (the next charge, the end of the paid period, the last charge: fixed-width UTC text, '' when time can't
    # matter), so a refresh asks for the members due instead of reading every one. Rows from before (NULL) are
    # read from their snapshots at the first start after the upgrade (`DueMomentsStore.fill_due_moments`).
    """
    ALTER TABLE memberships ADD COLUMN listing_hash BLOB;
    ALTER TABLE memberships ADD COLUMN due_next_charge TEXT;
    ALTER TABLE memberships ADD COLUMN due_paid_end TEXT;
    ALTER TABLE memberships ADD COLUMN due_last_charge TEXT;
    """,
    # 15 (issue 9; bot/store/bulk.py): what the refresh reads of every listed member, its hashes and when it was
    # seen, in an index of their own: the lookups (100,000 a refresh) and the sweep then read a few MB of index
    # instead of the whole table's pages, snapshots and all (0.86 -> 0.4 s of a 100,000-member refresh's CPU).
    """
    CREATE INDEX memberships_listing ON memberships
        (campaign_id, patreon_user_id, snapshot_hash, listing_hash, observed_at);
    """,
    # 16 (issue 9; bot/sync/refresh.py `_members_not_on_a_page`): what each scheduled refresh asks after the listing,
    # from indexes: the members whose moments fall due (`DueMomentsStore.memberships_due_by_time`) from the index
    # the listing reads, now holding the moments too, instead of every row of the table (0.10 s of a
    # 100,000-member refresh's CPU); a changed member's entry stays where it was, so no other index page is written.
    # And the links made since the last plan (`links_made_since`) by their time, instead of every link.
    """
    DROP INDEX memberships_listing;
    CREATE INDEX memberships_listing ON memberships
        (campaign_id, patreon_user_id, snapshot_hash, listing_hash, observed_at, due_next_charge, due_paid_end,
         due_last_charge);
    CREATE INDEX links_by_linked_at ON links (linked_at);
    """,
)
