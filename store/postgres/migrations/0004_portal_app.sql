-- Issue 8: the app as the portal knows it (app.info ID and CODE), read at
-- install with the installer's token. A frame's token is then checked to
-- belong to this app on this portal; older on-premise portals, whose
-- frames carry no APPLICATION_TOKEN, are verified on this alone.
-- 0 / '' for portals installed before it was recorded.
ALTER TABLE portals
    ADD COLUMN app_id   bigint NOT NULL DEFAULT 0,
    ADD COLUMN app_code text   NOT NULL DEFAULT '';
