-- The witness: when an agent was marked stalled and whether that stall was escalated, and the
-- terminal output it had printed at the witness's last look (more output = activity).
ALTER TABLE agents ADD COLUMN stalled_at TEXT;
ALTER TABLE agents ADD COLUMN stall_escalated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN output_seen INTEGER NOT NULL DEFAULT 0;
-- A notice owed to the agent's terminal (e.g. the witness's stall nudge), typed at the next drive.
ALTER TABLE agents ADD COLUMN pending_nudge TEXT;
-- When a mail's arrival was announced in its recipient's terminal (or made moot by a fresh start,
-- whose prompt lists unread mail). Each mail is announced at most once.
ALTER TABLE mail ADD COLUMN nudged_at TEXT;
