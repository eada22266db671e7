-- A lasting problem the portal reported (PORTAL_DELETED, OVERLOAD_LIMIT):
-- the Bitrix24 error code and when it was seen (UTC unix milliseconds),
-- for operators and alerts. '' / NULL when there is none.
ALTER TABLE portals ADD COLUMN problem TEXT NOT NULL DEFAULT '';
ALTER TABLE portals ADD COLUMN problem_at INTEGER;
