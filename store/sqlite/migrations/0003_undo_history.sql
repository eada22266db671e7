-- Issue 5: the lead tab's Undo and the admins' history.
-- Times are UTC unix milliseconds, as in 0001.

-- The links one removal took away, kept for the session that removed them
-- (at most one snapshot per session). No token or name is stored; deleting
-- the session (expiry sweep, uninstall) deletes the snapshot with it.
CREATE TABLE undo_snapshots (
    session_lookup TEXT    NOT NULL PRIMARY KEY REFERENCES sessions (id_lookup) ON DELETE CASCADE,
    member_id      TEXT    NOT NULL,
    lead_id        INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    items          TEXT    NOT NULL, -- JSON [{"c":contact,"s":sort,"p":primary}]
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
) STRICT;

-- Every removal and undo, for the portal's administrators. Ids only.
CREATE TABLE history (
    id          INTEGER PRIMARY KEY,
    member_id   TEXT    NOT NULL REFERENCES portals (member_id) ON DELETE CASCADE,
    lead_id     INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    action      TEXT    NOT NULL,
    contact_ids TEXT    NOT NULL, -- JSON array of ids
    outcome     TEXT    NOT NULL,
    error_code  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;

-- The admin page reads a portal's newest rows; the retention sweep
-- deletes by age.
CREATE INDEX history_member_created ON history (member_id, created_at);
CREATE INDEX history_created ON history (created_at);
