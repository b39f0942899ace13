-- Lookups of one thing in a table that grows with the town's history, each of which walked the
-- whole table: a webhook's pull request (by number; `lower(pr_repo)` kept SQLite from using
-- reviews_pr), a bead's merge requests (its rework count, a retry's reset, a rework carrying
-- its pull request over) and an agent's earlier merge request from a branch (a repeated
-- `gt done`).
DROP INDEX reviews_pr;
CREATE INDEX idx_reviews_pr ON reviews(pr_number);
CREATE INDEX idx_reviews_source ON reviews(source_bead_id);
CREATE INDEX idx_reviews_agent_branch ON reviews(agent_id, branch);
-- No statement reads it (idx_beads_rig_created serves every lookup by rig), and every status
-- change rewrote it.
DROP INDEX idx_beads_rig_status;
