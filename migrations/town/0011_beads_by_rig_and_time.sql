-- A rig's beads newest first, the order every list is served in: a page is read straight off
-- this index and stops at its limit, however many beads the rig holds.
CREATE INDEX idx_beads_rig_created ON beads(rig_id, created_at DESC, bead_id);
