-- Whether custody_sweep_moved_nothing_total has counted this sweep item (a booked sweep that moved
-- none of an asset it was planned for). A sweep reorged out is unbooked (its items' `swept` back
-- to NULL) and booked again when it mines again: without this, the same sweep's pair was counted
-- (and logged) a second time. Items already booked as moved nothing were counted when booked.
ALTER TABLE custody.sweep_items ADD COLUMN moved_nothing_counted BOOLEAN NOT NULL DEFAULT false;
UPDATE custody.sweep_items SET moved_nothing_counted = true WHERE swept = 0 AND planned > 0;
