-- Issue 5: the lead tab's Undo and the admins' history.

-- The links one removal took away, kept for the session that removed them
-- (at most one snapshot per session). No token or name is stored; deleting
-- the session (expiry sweep, uninstall) deletes the snapshot with it.
CREATE TABLE undo_snapshots (
    session_lookup text        NOT NULL PRIMARY KEY REFERENCES sessions (id_lookup) ON DELETE CASCADE,
    member_id      text        NOT NULL,
    lead_id        bigint      NOT NULL,
    user_id        bigint      NOT NULL,
    items          text        NOT NULL, -- JSON [{"c":contact,"s":sort,"p":primary}]
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);

-- Every removal and undo, for the portal's administrators. Ids only.
CREATE TABLE history (
    id          bigserial   PRIMARY KEY,
    member_id   text        NOT NULL REFERENCES portals (member_id) ON DELETE CASCADE,
    lead_id     bigint      NOT NULL,
    user_id     bigint      NOT NULL,
    action      text        NOT NULL,
    contact_ids text        NOT NULL, -- JSON array of ids
    outcome     text        NOT NULL,
    error_code  text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL
);

-- The admin page reads a portal's newest rows; the retention sweep
-- deletes by age.
CREATE INDEX history_member_created_idx ON history (member_id, created_at);
CREATE INDEX history_created_idx ON history (created_at);
