-- Issue 13: the admins' history reads names, not ids. The tab's batch
-- reads the lead's title, the contacts' names and the user's own name
-- when the tab opens; the session keeps the user's name and the
-- contacts' names (the title it kept already) until the user acts, and
-- the history entry keeps them with the action. Rows written before have
-- none: '' and '[]', and the admins' page falls back to the ids.
ALTER TABLE sessions ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN contact_names TEXT NOT NULL DEFAULT '{}'; -- JSON {"id":"name"}
ALTER TABLE history ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE history ADD COLUMN lead_title TEXT NOT NULL DEFAULT '';
ALTER TABLE history ADD COLUMN contact_names TEXT NOT NULL DEFAULT '[]'; -- JSON array, parallel to contact_ids
