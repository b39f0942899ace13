-- Counting a town's unfinished beads (the limit checked on every create and sling) reads only
-- the unfinished ones, however many closed beads the town has accumulated.
CREATE INDEX idx_beads_status ON beads(status);
