-- Issue 14: admins' bulk runs. A run is one portal's removal over the
-- leads a filter matches, worked by the job engine in batches; its row
-- holds the filter, the state, the cursor (last_lead, the last lead id claimed) and
-- the counters the progress bar reads, and a lease (owner, until) so
-- that one instance at a time works it. session_ref is the admin's
-- session id, sealed: the run acts with that admin's own tokens.
CREATE TABLE bulk_runs (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    member_id    TEXT    NOT NULL REFERENCES portals (member_id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL,
    user_name    TEXT    NOT NULL DEFAULT '',
    lang         TEXT    NOT NULL DEFAULT '',
    session_ref  TEXT    NOT NULL,
    filter       TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    error_code   TEXT    NOT NULL DEFAULT '',
    last_lead    INTEGER NOT NULL DEFAULT 0,
    matched      INTEGER NOT NULL DEFAULT 0,
    leads        INTEGER NOT NULL DEFAULT 0,
    removed      INTEGER NOT NULL DEFAULT 0,
    refused      INTEGER NOT NULL DEFAULT 0,
    undo_state   TEXT    NOT NULL DEFAULT '',
    restored     INTEGER NOT NULL DEFAULT 0,
    kept         INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT    NOT NULL DEFAULT '',
    lease_until  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    undo_until   INTEGER
) STRICT;

-- One run in progress per portal: two admins (or two clicks) cannot
-- start two runs over the same leads.
CREATE UNIQUE INDEX bulk_runs_active ON bulk_runs (member_id)
    WHERE state IN ('queued', 'running', 'paused');

-- A run's leads: claimed before their batch is sent, settled after it
-- (done, refused, skipped), so a batch whose answer was lost is checked,
-- never sent blindly again, and nothing is counted or recorded twice.
-- links is what the run removed (the undo puts it back).
CREATE TABLE bulk_leads (
    run_id     INTEGER NOT NULL REFERENCES bulk_runs (id) ON DELETE CASCADE,
    lead_id    INTEGER NOT NULL,
    title      TEXT    NOT NULL DEFAULT '',
    state      TEXT    NOT NULL,
    links      TEXT    NOT NULL,
    error_code TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, lead_id)
) STRICT;

CREATE INDEX bulk_leads_state ON bulk_leads (run_id, state, lead_id);
