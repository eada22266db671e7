-- Installed portals and the lead tab's frame sessions.
-- Token columns hold secret.Keyring.Seal output ("v1:<key id>:<base64>")
-- or '' once wiped: never a token in clear.

CREATE TABLE portals (
    member_id      text        NOT NULL PRIMARY KEY,
    domain         text        NOT NULL DEFAULT '',
    rest_endpoint  text        NOT NULL DEFAULT '',
    oauth_server   text        NOT NULL DEFAULT '',
    scope          text        NOT NULL DEFAULT '',
    status         text        NOT NULL DEFAULT '',
    app_token_hash text        NOT NULL DEFAULT '',
    installed_by   bigint      NOT NULL DEFAULT 0,
    lang           text        NOT NULL DEFAULT '',
    access_token   text        NOT NULL DEFAULT '',
    refresh_token  text        NOT NULL DEFAULT '',
    token_expiry   timestamptz,
    installed_at   timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    uninstalled_at timestamptz,
    version        bigint      NOT NULL
);

-- id_lookup is secret.Keyring.Lookup of the raw session id, so a copy of
-- the database does not hand out live session references.
CREATE TABLE sessions (
    id_lookup     text        NOT NULL PRIMARY KEY,
    member_id     text        NOT NULL REFERENCES portals (member_id) ON DELETE CASCADE,
    user_id       bigint      NOT NULL,
    lead_id       bigint      NOT NULL,
    lead_title    text        NOT NULL DEFAULT '',
    lang          text        NOT NULL DEFAULT '',
    access_token  text        NOT NULL DEFAULT '',
    refresh_token text        NOT NULL DEFAULT '',
    token_version bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);

-- Uninstall deletes by portal; the sweeper deletes by expiry.
CREATE INDEX sessions_member_id_idx ON sessions (member_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
