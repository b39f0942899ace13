-- `idx_beads_status` (0009) served the count of unfinished beads, which the tally (0014) now
-- keeps. Nothing else needs it: the reads by status name a type, a rig or an assignee as well
-- and use the indexes that start with those. Every status change and every new bead paid for it.
DROP INDEX idx_beads_status;
