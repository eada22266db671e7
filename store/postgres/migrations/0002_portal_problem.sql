-- A lasting problem the portal reported (PORTAL_DELETED, OVERLOAD_LIMIT):
-- the Bitrix24 error code and when it was seen, for operators and alerts.
-- '' / NULL when there is none.
ALTER TABLE portals
    ADD COLUMN problem    text        NOT NULL DEFAULT '',
    ADD COLUMN problem_at timestamptz;
