-- Issue 14: admins' bulk runs. A run is one portal's removal over the
-- leads a filter matches, worked by the job engine in batches; its row
-- holds the filter, the state, the cursor (last_lead, the last lead id claimed) and
-- the counters the progress bar reads, and a lease (owner, until) so
-- that one instance at a time works it. session_ref is the admin's
-- session id, sealed: the run acts with that admin's own tokens.
CREATE TABLE bulk_runs (
    id           bigserial   NOT NULL PRIMARY KEY,
    member_id    text    NOT NULL REFERENCES portals (member_id) ON DELETE CASCADE,
    user_id      bigint  NOT NULL,
    user_name    text    NOT NULL DEFAULT '',
    lang         text    NOT NULL DEFAULT '',
    session_ref  text    NOT NULL,
    filter       text    NOT NULL,
    state        text    NOT NULL,
    error_code   text    NOT NULL DEFAULT '',
    last_lead    bigint  NOT NULL DEFAULT 0,
    matched      bigint  NOT NULL DEFAULT 0,
    leads        bigint  NOT NULL DEFAULT 0,
    removed      bigint  NOT NULL DEFAULT 0,
    refused      bigint  NOT NULL DEFAULT 0,
    undo_state   text    NOT NULL DEFAULT '',
    restored     bigint  NOT NULL DEFAULT 0,
    kept         bigint  NOT NULL DEFAULT 0,
    lease_owner  text    NOT NULL DEFAULT '',
    lease_until  timestamptz NOT NULL DEFAULT 'epoch',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    undo_until   timestamptz
);

-- One run in progress per portal: two admins (or two clicks) cannot
-- start two runs over the same leads.
CREATE UNIQUE INDEX bulk_runs_active ON bulk_runs (member_id)
    WHERE state IN ('queued', 'running', 'paused');

-- A run's leads: claimed before their batch is sent, settled after it
-- (done, refused, skipped), so a batch whose answer was lost is checked,
-- never sent blindly again, and nothing is counted or recorded twice.
-- links is what the run removed (the undo puts it back).
CREATE TABLE bulk_leads (
    run_id     bigint  NOT NULL REFERENCES bulk_runs (id) ON DELETE CASCADE,
    lead_id    bigint  NOT NULL,
    title      text    NOT NULL DEFAULT '',
    state      text    NOT NULL,
    links      text    NOT NULL,
    error_code text    NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, lead_id)
);

CREATE INDEX bulk_leads_state ON bulk_leads (run_id, state, lead_id);
