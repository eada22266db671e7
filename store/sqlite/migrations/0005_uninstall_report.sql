-- Issue 9: an ONAPPUNINSTALL that Bitrix24 could not confirm is only a
-- report: the time it came (UTC unix milliseconds) and whether it asked to
-- delete the app's data. A verified frame clears it; after the grace
-- period the portal is uninstalled as reported. NULL / 0 when none.
ALTER TABLE portals ADD COLUMN uninstall_reported_at INTEGER;
ALTER TABLE portals ADD COLUMN uninstall_clean INTEGER NOT NULL DEFAULT 0;
