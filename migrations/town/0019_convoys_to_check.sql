-- While any convoy was unlanded, every pass of the drive loop ran the whole claim and read
-- every unlanded convoy's beads to find the stranded ones (ready work, nothing of theirs held
-- or queued): a town with 50 convoys in flight paid for 500 beads on every op that may create
-- work. A convoy can become stranded only when one of its beads changes, so SQLite now notes
-- the convoys that need a look as it happens, and the pass reads those alone (and none when
-- nothing changed). A convoy is noted when
-- * a bead it tracks changes status (ready again, or the last one held is done), or a bead it
--   tracks was blocked by one that changed status;
-- * a bead it tracks stops being held (an agent's hook moves or the agent is deleted) or
--   queued;
-- * it tracks a new bead, stops tracking one, or a block on one of its beads is removed;
-- * it is reopened.
CREATE TABLE convoys_to_check (
  convoy_id TEXT PRIMARY KEY
);
INSERT INTO convoys_to_check SELECT bead_id FROM convoys WHERE landed_at IS NULL;

CREATE TRIGGER convoys_check_status AFTER UPDATE OF status ON beads
BEGIN
  INSERT OR IGNORE INTO convoys_to_check
    SELECT d.bead_id FROM bead_dependencies d WHERE d.depends_on_bead_id = NEW.bead_id AND d.dependency_type = 'tracks';
  INSERT OR IGNORE INTO convoys_to_check
    SELECT d.bead_id FROM bead_dependencies x
    JOIN bead_dependencies d ON d.depends_on_bead_id = x.bead_id AND d.dependency_type = 'tracks'
    WHERE x.depends_on_bead_id = NEW.bead_id AND x.dependency_type = 'blocks';
END;

CREATE TRIGGER convoys_check_unhooked AFTER UPDATE OF hook_bead_id ON agents
WHEN OLD.hook_bead_id IS NOT NULL AND OLD.hook_bead_id IS NOT NEW.hook_bead_id
BEGIN
  INSERT OR IGNORE INTO convoys_to_check
    SELECT d.bead_id FROM bead_dependencies d WHERE d.depends_on_bead_id = OLD.hook_bead_id AND d.dependency_type = 'tracks';
END;

CREATE TRIGGER convoys_check_agent_deleted AFTER DELETE ON agents
WHEN OLD.hook_bead_id IS NOT NULL
BEGIN
  INSERT OR IGNORE INTO convoys_to_check
    SELECT d.bead_id FROM bead_dependencies d WHERE d.depends_on_bead_id = OLD.hook_bead_id AND d.dependency_type = 'tracks';
END;

CREATE TRIGGER convoys_check_unqueued AFTER DELETE ON dispatch_queue
BEGIN
  INSERT OR IGNORE INTO convoys_to_check
    SELECT d.bead_id FROM bead_dependencies d WHERE d.depends_on_bead_id = OLD.bead_id AND d.dependency_type = 'tracks';
END;

CREATE TRIGGER convoys_check_tracked AFTER INSERT ON bead_dependencies
WHEN NEW.dependency_type = 'tracks'
BEGIN
  INSERT OR IGNORE INTO convoys_to_check VALUES (NEW.bead_id);
END;

CREATE TRIGGER convoys_check_dependency_removed AFTER DELETE ON bead_dependencies
BEGIN
  INSERT OR IGNORE INTO convoys_to_check SELECT OLD.bead_id WHERE OLD.dependency_type = 'tracks';
  INSERT OR IGNORE INTO convoys_to_check
    SELECT d.bead_id FROM bead_dependencies d
    WHERE OLD.dependency_type = 'blocks' AND d.depends_on_bead_id = OLD.bead_id AND d.dependency_type = 'tracks';
END;

CREATE TRIGGER convoys_check_reopened AFTER UPDATE OF landed_at ON convoys
WHEN NEW.landed_at IS NULL
BEGIN
  INSERT OR IGNORE INTO convoys_to_check VALUES (NEW.bead_id);
END;
