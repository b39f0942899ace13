-- Dispatch and the refinery queue.
-- Slung beads that found no free polecat slot wait here, dispatched by priority then age.
CREATE TABLE dispatch_queue (
  bead_id TEXT PRIMARY KEY,
  rig_id TEXT NOT NULL,
  queued_at TEXT NOT NULL
);
-- Backoff between dispatch attempts, and the last reason an attempt failed.
ALTER TABLE agents ADD COLUMN next_dispatch_at TEXT;
ALTER TABLE agents ADD COLUMN last_error TEXT;
-- When a merge started running (stuck merges are recovered after a timeout).
ALTER TABLE reviews ADD COLUMN started_at TEXT;
