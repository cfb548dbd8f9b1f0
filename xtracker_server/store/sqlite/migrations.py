"""Numbered schema migrations, applied in order at start-up; ``PRAGMA user_version`` holds the
number of the last one applied. Never edit a released migration: add the next one."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: spaces, credentials, links, clicks, the inbox and binds.
    """
    CREATE TABLE spaces (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL,
        created_ms  INTEGER NOT NULL
    );

    -- Secrets are stored only as SHA-256. space_id is NULL for the operator's admin token.
    CREATE TABLE credentials (
        id          INTEGER PRIMARY KEY,
        space_id    INTEGER REFERENCES spaces(id),
        kind        TEXT NOT NULL CHECK (kind IN ('bearer', 'ingest', 'admin')),
        hash        BLOB NOT NULL UNIQUE,
        hint        TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        expires_ms  INTEGER
    );
    CREATE INDEX credentials_space ON credentials(space_id, kind);

    -- A link's slug is unique server-wide: it is the path of its landing page.
    CREATE TABLE links (
        id                 INTEGER PRIMARY KEY,
        space_id           INTEGER NOT NULL REFERENCES spaces(id),
        slug               TEXT NOT NULL UNIQUE,
        kind               TEXT NOT NULL CHECK (kind IN ('bot', 'miniapp', 'channel', 'web')),
        target             TEXT NOT NULL,
        app                TEXT,
        prefix             TEXT NOT NULL DEFAULT 'fb',
        title              TEXT NOT NULL DEFAULT '',
        text               TEXT NOT NULL DEFAULT '',
        button             TEXT NOT NULL DEFAULT 'Open',
        image_url          TEXT,
        auto_redirect      INTEGER NOT NULL DEFAULT 0,
        redirect_delay_ms  INTEGER NOT NULL DEFAULT 0,
        enabled            INTEGER NOT NULL DEFAULT 1,
        created_ms         INTEGER NOT NULL,
        updated_ms         INTEGER NOT NULL
    );
    CREATE INDEX links_space ON links(space_id);

    CREATE TABLE clicks (
        id            INTEGER PRIMARY KEY,
        space_id      INTEGER NOT NULL REFERENCES spaces(id),
        uid           TEXT NOT NULL,
        link_id       INTEGER REFERENCES links(id),
        source        TEXT NOT NULL,
        created_ms    INTEGER NOT NULL,
        ip            TEXT,
        user_agent    TEXT,
        referrer      TEXT,
        fbclid        TEXT,
        fbc           TEXT,
        fbp           TEXT,
        country       TEXT,
        campaign_id   TEXT,
        campaign_name TEXT,
        adset_id      TEXT,
        adset_name    TEXT,
        ad_id         TEXT,
        ad_name       TEXT,
        placement     TEXT,
        utm_source    TEXT,
        utm_medium    TEXT,
        utm_campaign  TEXT,
        utm_content   TEXT,
        utm_term      TEXT,
        raw_query     TEXT,
        UNIQUE (space_id, uid)
    );
    CREATE INDEX clicks_space_time ON clicks(space_id, created_ms);
    CREATE INDEX clicks_link_time ON clicks(link_id, created_ms);

    -- The durable, deduplicated inbox. uid is NULL while an event is unattributed.
    CREATE TABLE inbox (
        id              INTEGER PRIMARY KEY,
        space_id        INTEGER NOT NULL REFERENCES spaces(id),
        dedup_key       BLOB NOT NULL UNIQUE,
        event           TEXT NOT NULL,
        uid             TEXT,
        tg_id           INTEGER,
        eid             TEXT,
        value           TEXT,
        currency        TEXT,
        occurred_at_ms  INTEGER NOT NULL,
        received_ms     INTEGER NOT NULL,
        source          TEXT NOT NULL,
        attributed_by   TEXT
    );
    CREATE INDEX inbox_space_uid ON inbox(space_id, uid);
    CREATE INDEX inbox_space_time ON inbox(space_id, occurred_at_ms);
    CREATE INDEX inbox_unattributed ON inbox(space_id, tg_id) WHERE uid IS NULL;

    -- uid -> Telegram user. The first binding of a uid wins (compare-and-set).
    CREATE TABLE binds (
        space_id    INTEGER NOT NULL REFERENCES spaces(id),
        uid         TEXT NOT NULL,
        tg_id       INTEGER NOT NULL,
        created_ms  INTEGER NOT NULL,
        PRIMARY KEY (space_id, uid)
    );
    CREATE INDEX binds_tg ON binds(space_id, tg_id, created_ms);
    """,
    # 2: destinations, the outbox (one delivery per event and destination) and its attempts.
    """
    CREATE TABLE destinations (
        id             INTEGER PRIMARY KEY,
        space_id       INTEGER NOT NULL REFERENCES spaces(id),
        kind           TEXT NOT NULL CHECK (kind IN ('fb_capi', 'webhook', 's2s_postback')),
        name           TEXT NOT NULL,
        enabled        INTEGER NOT NULL DEFAULT 1,
        config         TEXT NOT NULL,
        secret         TEXT,
        event_map      TEXT NOT NULL,
        proxy          TEXT,
        health_reason  TEXT,
        created_ms     INTEGER NOT NULL,
        updated_ms     INTEGER NOT NULL
    );
    CREATE INDEX destinations_space ON destinations(space_id, enabled);

    CREATE TABLE deliveries (
        id               INTEGER PRIMARY KEY,
        space_id         INTEGER NOT NULL REFERENCES spaces(id),
        destination_id   INTEGER NOT NULL REFERENCES destinations(id),
        inbox_id         INTEGER NOT NULL REFERENCES inbox(id),
        event_id         TEXT NOT NULL,
        event_name       TEXT NOT NULL,
        status           TEXT NOT NULL
                         CHECK (status IN ('pending', 'retrying', 'sent', 'failed_permanently')),
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms  INTEGER NOT NULL,
        lease_owner      TEXT,
        lease_until_ms   INTEGER,
        created_ms       INTEGER NOT NULL,
        age_from_ms      INTEGER NOT NULL,  -- the retry window starts here (reset by a replay)
        updated_ms       INTEGER NOT NULL,
        sent_ms          INTEGER,
        last_status      INTEGER,
        last_error       TEXT,
        UNIQUE (destination_id, inbox_id)
    );
    CREATE INDEX deliveries_due ON deliveries(destination_id, next_attempt_ms)
        WHERE status IN ('pending', 'retrying');
    CREATE INDEX deliveries_space_status ON deliveries(space_id, status, id);

    CREATE TABLE delivery_attempts (
        id            INTEGER PRIMARY KEY,
        delivery_id   INTEGER NOT NULL REFERENCES deliveries(id),
        space_id      INTEGER NOT NULL,
        at_ms         INTEGER NOT NULL,
        status_code   INTEGER,
        latency_ms    INTEGER NOT NULL,
        outcome       TEXT NOT NULL,
        error         TEXT,
        excerpt       TEXT
    );
    CREATE INDEX delivery_attempts_delivery ON delivery_attempts(delivery_id);
    """,
    # 3: postbacks: per-space status and parameter aliases, and the postback log.
    """
    -- A space's changes to the default aliases (domain/postbacks.py). target NULL removes a
    -- default. A status maps to a canonical event or 'ignore', a param to one of our fields.
    CREATE TABLE postback_aliases (
        space_id    INTEGER NOT NULL REFERENCES spaces(id),
        kind        TEXT NOT NULL CHECK (kind IN ('status', 'param')),
        alias       TEXT NOT NULL,
        target      TEXT,
        updated_ms  INTEGER NOT NULL,
        PRIMARY KEY (space_id, kind, alias)
    );

    -- Every authenticated call of /e, kept XTRACKER_POSTBACK_LOG_DAYS. The token is masked.
    CREATE TABLE postback_log (
        id          INTEGER PRIMARY KEY,
        space_id    INTEGER NOT NULL REFERENCES spaces(id),
        at_ms       INTEGER NOT NULL,
        ip          TEXT,
        method      TEXT NOT NULL,
        query       TEXT NOT NULL,
        body        TEXT,
        outcome     TEXT NOT NULL
                    CHECK (outcome IN ('queued', 'duplicate', 'ignored', 'rejected')),
        status      TEXT,
        event       TEXT,
        uid         TEXT,
        value       TEXT,
        currency    TEXT,
        eid         TEXT,
        inbox_id    INTEGER,
        attributed  INTEGER,
        error       TEXT,
        detail      TEXT
    );
    CREATE INDEX postback_log_space ON postback_log(space_id, id);
    CREATE INDEX postback_log_time ON postback_log(at_ms);
    """,
    # 4: reports (docs/reports.md). The report rollup lives in a file of its own
    # (store/sqlite/rollup.py), built from the inbox past a watermark off the write path; this file
    # keeps only what the rollup must learn of later: events that a bind attributes after the
    # rollup passed them, and clicks stored after events of their uid (both rare).
    """
    CREATE TABLE report_backlog (
        id        INTEGER PRIMARY KEY,
        kind      TEXT NOT NULL CHECK (kind IN ('attributed', 'click')),
        inbox_id  INTEGER,            -- attributed: the event that got its uid
        space_id  INTEGER,            -- click: its space, uid and link
        uid       TEXT,
        link_id   INTEGER
    );

    CREATE TRIGGER report_backlog_attributed AFTER UPDATE OF uid ON inbox
    WHEN OLD.uid IS NULL AND NEW.uid IS NOT NULL
    BEGIN
        INSERT INTO report_backlog (kind, inbox_id) VALUES ('attributed', NEW.id);
    END;

    CREATE TRIGGER report_backlog_click AFTER INSERT ON clicks
    WHEN NEW.link_id IS NOT NULL
         AND EXISTS (SELECT 1 FROM inbox WHERE space_id = NEW.space_id AND uid = NEW.uid)
    BEGIN
        INSERT INTO report_backlog (kind, space_id, uid, link_id)
        VALUES ('click', NEW.space_id, NEW.uid, NEW.link_id);
    END;

    -- unattributed events of a window (a partial index: attributed events do not pay for it)
    CREATE INDEX inbox_report_unattributed
        ON inbox(space_id, occurred_at_ms, event, currency, value) WHERE uid IS NULL;
    -- delivery health: counts per destination and status, the last success
    CREATE INDEX deliveries_report_health ON deliveries(destination_id, status, sent_ms);
    -- delivery health: the recent attempts of a space (latency, last error)
    CREATE INDEX delivery_attempts_space_time ON delivery_attempts(space_id, at_ms);
    """,
    # 5: the postback log. "attributed" means "the event has a uid" everywhere else (the event
    # answer, reports), so the log's "a click with that uid exists" becomes click_known. A
    # duplicate whose amount or currency differs from the stored event is flagged (conflict),
    # with the stored amount and currency (the row's value and currency are what was sent).
    """
    ALTER TABLE postback_log RENAME COLUMN attributed TO click_known;
    ALTER TABLE postback_log ADD COLUMN conflict INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE postback_log ADD COLUMN conflict_value TEXT;
    ALTER TABLE postback_log ADD COLUMN conflict_currency TEXT;
    """,
    # 6: who made a bind, and whether a space takes token binds (domain/binds.py: a token bind
    # never replaces a bind, the bot's bearer bind replaces a token bind).
    """
    -- Binds made before this migration count as the bot's: nothing that stood is replaced.
    ALTER TABLE binds ADD COLUMN kind TEXT NOT NULL DEFAULT 'bearer'
        CHECK (kind IN ('bearer', 'token'));
    ALTER TABLE spaces ADD COLUMN token_binds INTEGER NOT NULL DEFAULT 1
        CHECK (token_binds IN (0, 1));

    -- A bearer bind that replaces a token bind moves the events that token bind attributed
    -- (or lets them go): the rollup must take the event off its old uid. The old uid rides
    -- along; an 'attributed' entry without one is a first attribution (migration 4).
    CREATE TRIGGER report_backlog_moved AFTER UPDATE OF uid ON inbox
    WHEN OLD.uid IS NOT NULL AND NEW.uid IS NOT OLD.uid
    BEGIN
        INSERT INTO report_backlog (kind, inbox_id, space_id, uid)
        VALUES ('attributed', NEW.id, OLD.space_id, OLD.uid);
    END;
    """,
    # 7: landing visits answered but not recorded as clicks (bots, past the per-address limit),
    # counted per link, UTC hour and reason (domain/unrecorded.py); keyed for a report's window.
    """
    CREATE TABLE unrecorded_clicks (
        space_id  INTEGER NOT NULL REFERENCES spaces(id),
        hour_ms   INTEGER NOT NULL,
        link_id   INTEGER NOT NULL REFERENCES links(id),
        reason    TEXT NOT NULL CHECK (reason IN ('bot', 'limited')),
        count     INTEGER NOT NULL,
        PRIMARY KEY (space_id, hour_ms, link_id, reason)
    ) WITHOUT ROWID;
    """,
    # 8: named ingest tokens (one per partner network, each revocable on its own; the space's
    # first one is "default"), and which of them each logged postback used.
    """
    ALTER TABLE credentials ADD COLUMN name TEXT;
    UPDATE credentials SET name = 'default' WHERE kind = 'ingest';
    ALTER TABLE postback_log ADD COLUMN token_name TEXT;
    -- a token's last postback, for `xtracker token list`
    CREATE INDEX postback_log_token ON postback_log(space_id, token_name, at_ms);
    """,
    # 9: a space's own currency codes, accepted besides ISO 4217 and the crypto
    # tickers of domain/currencies.py: upper-case codes separated by commas, '' for none.
    """
    ALTER TABLE spaces ADD COLUMN currencies TEXT NOT NULL DEFAULT '';
    """,
    # 10: the database's generation (store/sqlite/generation.py): a random id that `xtracker
    # restore`
    # renews. Files derived from the inbox (the report rollup) record the generation they were
    # built for, and are rebuilt when the database they find carries another.
    """
    CREATE TABLE generation (
        one  INTEGER PRIMARY KEY CHECK (one = 1),
        id   TEXT NOT NULL
    );
    INSERT INTO generation VALUES (1, lower(hex(randomblob(16))));
    """,
    # 11: the idle server's write probe (store/health.py): one row, rewritten every few seconds
    # when nothing else commits, so that /healthz notices a storage that stopped taking writes.
    """
    CREATE TABLE health_probe (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        at_ms  INTEGER NOT NULL
    );
    """,
    # 12: unrecorded_clicks may count 'dropped': clicks whose visitor was sent on while storage
    # failed, lost because the landing's side buffer was full (landing/pending.py). A CHECK
    # cannot be altered in SQLite: the table is rebuilt with its rows.
    """
    CREATE TABLE unrecorded_clicks_new (
        space_id  INTEGER NOT NULL REFERENCES spaces(id),
        hour_ms   INTEGER NOT NULL,
        link_id   INTEGER NOT NULL REFERENCES links(id),
        reason    TEXT NOT NULL CHECK (reason IN ('bot', 'limited', 'dropped')),
        count     INTEGER NOT NULL,
        PRIMARY KEY (space_id, hour_ms, link_id, reason)
    ) WITHOUT ROWID;
    INSERT INTO unrecorded_clicks_new (space_id, hour_ms, link_id, reason, count)
        SELECT space_id, hour_ms, link_id, reason, count FROM unrecorded_clicks;
    DROP TABLE unrecorded_clicks;
    ALTER TABLE unrecorded_clicks_new RENAME TO unrecorded_clicks;
    """,
    # 13: deleting spaces, links and destinations, and erasing a person (store/sqlite/deletion.py).
    # What is being deleted is marked first (deleted_ms), so nothing new lands in it while its
    # rows go in batches; a deleted space stays as a row of its own (its id is never reused).
    # The report rollup learns what left from report_removals, whose ids never repeat
    # (AUTOINCREMENT): the rollup reads it past a watermark, and applied entries are pruned.
    """
    ALTER TABLE spaces ADD COLUMN deleted_ms INTEGER;
    ALTER TABLE links ADD COLUMN deleted_ms INTEGER;
    ALTER TABLE destinations ADD COLUMN deleted_ms INTEGER;
    CREATE INDEX spaces_deleted ON spaces(id) WHERE deleted_ms IS NOT NULL;
    CREATE INDEX links_deleted ON links(id) WHERE deleted_ms IS NOT NULL;
    CREATE INDEX destinations_deleted ON destinations(id) WHERE deleted_ms IS NOT NULL;

    -- uid: every rolled-up event of an erased uid goes; event: one event (rolled up under
    -- uid); link: the rows of a deleted link follow their click again (no link now); space:
    -- every row of a deleted space goes.
    CREATE TABLE report_removals (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        kind      TEXT NOT NULL CHECK (kind IN ('uid', 'event', 'link', 'space')),
        space_id  INTEGER NOT NULL,
        uid       TEXT,
        inbox_id  INTEGER,
        link_id   INTEGER
    );

    -- an erasure blanks the uids the backlog still holds (few rows have one)
    CREATE INDEX report_backlog_uid ON report_backlog(space_id, uid) WHERE uid IS NOT NULL;
    """,
    # 14: indexes that keep queries from walking a whole space as the database grows (issue
    # 14; tests/server/test_query_plans.py pins the plans).
    """
    -- Deleting an event makes SQLite look for its deliveries (the foreign key): without an
    -- index led by inbox_id, and with no statistics, that is a walk of every delivery.
    CREATE INDEX deliveries_inbox ON deliveries(inbox_id);
    -- A deleted link's counts of unrecorded visits, and the same foreign key check for links.
    CREATE INDEX unrecorded_clicks_link ON unrecorded_clicks(link_id);
    -- The postback log of one outcome, newest first (`xtracker postbacks log --outcome`):
    -- without it, a rare outcome is looked for through every row of the space.
    CREATE INDEX postback_log_outcome ON postback_log(space_id, outcome, id);
    """,
    # 15: retention of settled deliveries (housekeeping.py). Pruning finds the oldest settled
    # deliveries through a partial index (pending and retrying rows stay out of it, so ingest
    # does not pay for it), and each destination keeps the tally of what was pruned, so that
    # its delivery health still counts every delivery it ever had (store/sqlite/reports.py).
    """
    CREATE INDEX deliveries_settled ON deliveries(status, updated_ms)
        WHERE status IN ('sent', 'failed_permanently');
    ALTER TABLE destinations ADD COLUMN pruned_sent INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE destinations ADD COLUMN pruned_failed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE destinations ADD COLUMN pruned_last_sent_ms INTEGER;
    """,
    # 16 (issue 14, the outbox): counts of deliveries per space and status kept by triggers,
    # so the admin API's counts and the metrics' outbox depth never count millions of rows;
    # and the leased deliveries indexed on their own (a few rows), so that releasing every
    # lease after a restore reads only them.
    """
    CREATE TABLE delivery_counts (
        space_id  INTEGER NOT NULL,
        status    TEXT NOT NULL,
        n         INTEGER NOT NULL,
        PRIMARY KEY (space_id, status)
    ) WITHOUT ROWID;
    INSERT INTO delivery_counts (space_id, status, n)
        SELECT space_id, status, count(*) FROM deliveries GROUP BY space_id, status;
    CREATE TRIGGER delivery_counts_insert AFTER INSERT ON deliveries
    BEGIN
        INSERT INTO delivery_counts (space_id, status, n) VALUES (NEW.space_id, NEW.status, 1)
            ON CONFLICT (space_id, status) DO UPDATE SET n = n + 1;
    END;
    -- a row goes with the last delivery it counts (a deleted space leaves none behind)
    CREATE TRIGGER delivery_counts_update AFTER UPDATE OF status ON deliveries
        WHEN OLD.status IS NOT NEW.status
    BEGIN
        UPDATE delivery_counts SET n = n - 1 WHERE space_id = OLD.space_id AND status = OLD.status;
        DELETE FROM delivery_counts
            WHERE space_id = OLD.space_id AND status = OLD.status AND n = 0;
        INSERT INTO delivery_counts (space_id, status, n) VALUES (NEW.space_id, NEW.status, 1)
            ON CONFLICT (space_id, status) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER delivery_counts_delete AFTER DELETE ON deliveries
    BEGIN
        UPDATE delivery_counts SET n = n - 1 WHERE space_id = OLD.space_id AND status = OLD.status;
        DELETE FROM delivery_counts
            WHERE space_id = OLD.space_id AND status = OLD.status AND n = 0;
    END;
    CREATE INDEX deliveries_leased ON deliveries(lease_until_ms) WHERE lease_owner IS NOT NULL;
    """,
    # 17 (issue 17 §3): ad costs and the operator's exchange rates (domain/costs.py). One cost
    # per space, day, level and object: entering it again replaces it (an import never
    # doubles a cost). Amounts and rates are exact decimal text; days are YYYY-MM-DD.
    """
    CREATE TABLE costs (
        space_id    INTEGER NOT NULL REFERENCES spaces(id),
        day         TEXT NOT NULL,
        level       TEXT NOT NULL CHECK (level IN ('campaign', 'adset', 'ad', 'link')),
        object_id   TEXT NOT NULL,
        name        TEXT,
        amount      TEXT NOT NULL,
        currency    TEXT NOT NULL,
        updated_ms  INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX costs_key ON costs(space_id, day, level, object_id);
    CREATE TABLE exchange_rates (
        space_id    INTEGER NOT NULL REFERENCES spaces(id),
        base        TEXT NOT NULL,
        quote       TEXT NOT NULL,
        day         TEXT NOT NULL,
        rate        TEXT NOT NULL,
        updated_ms  INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX exchange_rates_key ON exchange_rates(space_id, base, quote, day);
    """,
    # 18 (issue 17 §1, what a click records for grouping): the device type, OS and browser of
    # its user agent, its referrer's domain and its sub-id values (a JSON object), read when it
    # is made; and the query parameters each space declares as sub-ids (a JSON array).
    """
    ALTER TABLE clicks ADD COLUMN device TEXT;
    ALTER TABLE clicks ADD COLUMN os TEXT;
    ALTER TABLE clicks ADD COLUMN browser TEXT;
    ALTER TABLE clicks ADD COLUMN referrer_domain TEXT;
    ALTER TABLE clicks ADD COLUMN sub_ids TEXT;
    ALTER TABLE spaces ADD COLUMN sub_id_params TEXT NOT NULL DEFAULT '[]';
    """,
    # 19: honest funnels (issue 17 §2). Test events (docs/api.md#test-events): stored and shown,
    # never counted in reports nor sent to destinations; their dedup key has a namespace of its
    # own. And a click without a link stored after events of its uid now tells the rollup too:
    # the funnel sets apart the events whose uid has no click (store/sqlite/rollup.py).
    """
    ALTER TABLE inbox ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE postback_log ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
    DROP TRIGGER report_backlog_click;
    CREATE TRIGGER report_backlog_click AFTER INSERT ON clicks
    WHEN EXISTS (SELECT 1 FROM inbox WHERE space_id = NEW.space_id AND uid = NEW.uid)
    BEGIN
        INSERT INTO report_backlog (kind, space_id, uid, link_id)
        VALUES ('click', NEW.space_id, NEW.uid, NEW.link_id);
    END;
    """,
    # 20: deposit reversals (issue 17 §4): the event map of every destination gets a row for
    # deposit.reversed, as a new one of its kind would (domain/destinations.py): sent to
    # webhooks, to S2S postbacks whose template tells it from a conversion, never to CAPI.
    """
    UPDATE destinations SET event_map = json_set(event_map, '$."deposit.reversed"',
        CASE WHEN kind = 'webhook' THEN 'deposit.reversed'
             WHEN kind = 's2s_postback' AND (instr(config, '{status}') OR instr(config, '{event}')
                  OR instr(config, '{canonical}')) THEN 'deposit.reversed'
             ELSE '' END)
    WHERE json_type(event_map, '$."deposit.reversed"') IS NULL;
    """,
    # 21: the funnel's unattributed events (issue 17 §6) read from the index alone: it was made
    # before the test flag, so every row of the window was looked up in the inbox for it (at
    # 10 million events a report's slowest part: random reads of a file larger than the cache).
    # uid and test are columns too (NULL and 0 in every entry): SQLite counts an index as
    # covering only if it holds every column the query names, its WHERE clause's too.
    """
    DROP INDEX inbox_report_unattributed;
    CREATE INDEX inbox_report_unattributed
        ON inbox(space_id, occurred_at_ms, event, currency, value, uid, test)
        WHERE uid IS NULL AND test = 0;
    """,
    # 22: an erased uid's removal names the click it had (issue 17 §6): the report cube keeps
    # each uid's share by its click's id (format 13), and that click is gone when the rollup
    # reads the removal. NULL in the entries of other kinds, and of a uid without a click.
    """
    ALTER TABLE report_removals ADD COLUMN click_id INTEGER;
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this file has not seen yet; returns the schema version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"the database is at schema {version}, newer than this xtracker "
                f"({len(MIGRATIONS)}): upgrade xtracker"
            )
        for number in range(version + 1, len(MIGRATIONS) + 1):
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    # executescript() would commit on its own; splitting keeps each migration in one transaction.
    # A chunk is joined to the next until SQLite calls it complete: a trigger's body holds ";".
    statements, pending = [], ""
    for chunk in script.split(";"):
        pending += chunk + ";"
        if sqlite3.complete_statement(pending):
            if not _only_comments(pending[:-1]):
                statements.append(pending[:-1].strip())
            pending = ""
    return statements


def _only_comments(chunk: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in chunk.splitlines())
