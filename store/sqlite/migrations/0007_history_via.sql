-- Issue 14: the same removal is offered in the tab, the lead list's row
-- menu, an automation rule and the admins' bulk runs. The history says
-- where each entry came from (via: tab, list, automation, bulk) and, for a
-- bulk run, which run (run_id, 0 otherwise). Older rows came from the tab.
ALTER TABLE history ADD COLUMN via TEXT NOT NULL DEFAULT 'tab';
ALTER TABLE history ADD COLUMN run_id INTEGER NOT NULL DEFAULT 0;
