-- Issue 13: the admins' history reads names, not ids. The tab's batch
-- reads the lead's title, the contacts' names and the user's own name
-- when the tab opens; the session keeps the user's name and the
-- contacts' names (the title it kept already) until the user acts, and
-- the history entry keeps them with the action. Rows written before have
-- none: '' and '[]', and the admins' page falls back to the ids.
ALTER TABLE sessions
    ADD COLUMN user_name     text NOT NULL DEFAULT '',
    ADD COLUMN contact_names text NOT NULL DEFAULT '{}'; -- JSON {"id":"name"}
ALTER TABLE history
    ADD COLUMN user_name     text NOT NULL DEFAULT '',
    ADD COLUMN lead_title    text NOT NULL DEFAULT '',
    ADD COLUMN contact_names text NOT NULL DEFAULT '[]'; -- JSON array, parallel to contact_ids
