-- Lookups of one thing in a table that grows with the town's history, each of which walked the
-- whole table: a webhook's pull request (by number; `lower(pr_repo)` kept SQLite from using
-- reviews_pr), a bead's merge requests (its rework count, a retry's reset, a rework carrying
-- its pull request over) and an agent's earlier merge request from a branch (a repeated
-- `gt done`).
DROP INDEX reviews_pr;
CREATE INDEX idx_reviews_pr ON reviews(pr_number);
CREATE INDEX idx_reviews_source ON reviews(source_bead_id);
CREATE INDEX idx_reviews_agent_branch ON reviews(agent_id, branch);
-- A rig's beads of one status, newest first (`gt prime` lists the open ones, the dashboard
-- filters by status), read off the index in page order. (rig_id, status) alone was never
-- chosen: SQLite walked the rig's beads in time order, past every bead of other statuses, or
-- every bead of that status in the town and sorted them.
DROP INDEX idx_beads_rig_status;
CREATE INDEX idx_beads_rig_status_created ON beads(rig_id, status, created_at DESC, bead_id);
