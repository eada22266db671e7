-- Installed portals and the lead tab's frame sessions.
-- Times are UTC unix milliseconds; NULL stands for "not set".
-- Token columns hold secret.Keyring.Seal output ("v1:<key id>:<base64>")
-- or '' once wiped: never a token in clear.

CREATE TABLE portals (
    member_id      TEXT    NOT NULL PRIMARY KEY,
    domain         TEXT    NOT NULL DEFAULT '',
    rest_endpoint  TEXT    NOT NULL DEFAULT '',
    oauth_server   TEXT    NOT NULL DEFAULT '',
    scope          TEXT    NOT NULL DEFAULT '',
    status         TEXT    NOT NULL DEFAULT '',
    app_token_hash TEXT    NOT NULL DEFAULT '',
    installed_by   INTEGER NOT NULL DEFAULT 0,
    lang           TEXT    NOT NULL DEFAULT '',
    access_token   TEXT    NOT NULL DEFAULT '',
    refresh_token  TEXT    NOT NULL DEFAULT '',
    token_expiry   INTEGER,
    installed_at   INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    uninstalled_at INTEGER,
    version        INTEGER NOT NULL
) STRICT;

-- id_lookup is secret.Keyring.Lookup of the raw session id, so a copy of
-- the database does not hand out live session references.
CREATE TABLE sessions (
    id_lookup     TEXT    NOT NULL PRIMARY KEY,
    member_id     TEXT    NOT NULL REFERENCES portals (member_id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL,
    lead_id       INTEGER NOT NULL,
    lead_title    TEXT    NOT NULL DEFAULT '',
    lang          TEXT    NOT NULL DEFAULT '',
    access_token  TEXT    NOT NULL DEFAULT '',
    refresh_token TEXT    NOT NULL DEFAULT '',
    token_version INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;

-- Uninstall deletes by portal; the sweeper deletes by expiry.
CREATE INDEX sessions_member_id ON sessions (member_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
