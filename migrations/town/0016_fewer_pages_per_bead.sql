-- A write's cost on this runtime follows the pages its commit writes (each one a frame of the
-- write-ahead log before the commit's fsync) more than its statements, and a new bead wrote
-- about thirteen (`node bench/pages.mjs create-bead`). Four of the indexes below wrote more
-- pages than they needed:
--
-- * The rig's pages newest first had their indexes in descending time order, so every new bead
--   went in at the front of its rig's range. SQLite splits a page cheaply only when a key goes
--   at the end; at the front each split rebalanced the page with its neighbours, and the two
--   indexes wrote 2.1-2.2 pages per new bead instead of one. In ascending order a new bead is
--   appended, and SQLite reads the same page by walking the index backwards, which serves
--   `ORDER BY created_at DESC, bead_id DESC` without a sort (beads of the same millisecond now
--   come in descending id order; ids are random, so neither order meant anything).
-- * Most beads have no parent and no assignee, yet each new bead put an entry for its NULL into
--   both indexes, and a status change moved an unassigned bead's entry in `idx_beads_assignee`
--   (status is in its key). Every lookup by either column names a value (`= ?`, `IN (…)`),
--   which implies NOT NULL, so SQLite still uses the partial indexes for them.
--
-- The native plan and step tests hold every read to these indexes.
DROP INDEX idx_beads_rig_created;
CREATE INDEX idx_beads_rig_created ON beads(rig_id, created_at, bead_id);
DROP INDEX idx_beads_rig_status_created;
CREATE INDEX idx_beads_rig_status_created ON beads(rig_id, status, created_at, bead_id);
DROP INDEX idx_beads_parent;
CREATE INDEX idx_beads_parent ON beads(parent_bead_id) WHERE parent_bead_id IS NOT NULL;
DROP INDEX idx_beads_assignee;
CREATE INDEX idx_beads_assignee ON beads(assignee_agent_id, type, status) WHERE assignee_agent_id IS NOT NULL;
