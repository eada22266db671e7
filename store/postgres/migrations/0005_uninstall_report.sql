-- Issue 9: an ONAPPUNINSTALL that Bitrix24 could not confirm is only a
-- report: when it came and whether it asked to delete the app's data. A
-- verified frame clears it; after the grace period the portal is
-- uninstalled as reported. NULL / false when none.
ALTER TABLE portals
    ADD COLUMN uninstall_reported_at timestamptz,
    ADD COLUMN uninstall_clean       boolean NOT NULL DEFAULT false;
