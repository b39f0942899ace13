-- The drive loop (after every op that may create work) and the alarm ask on each pass what is
-- open, due or running. These partial indexes hold only those rows, so each pass costs what is
-- open, not everything the town has ever done: acknowledged escalations, landed convoys and
-- read or already-notified mail stay out of them.
CREATE INDEX idx_escalations_open ON escalations(last_escalated_at) WHERE acknowledged_at IS NULL;
CREATE INDEX idx_convoys_unlanded ON convoys(bead_id) WHERE landed_at IS NULL;
CREATE INDEX idx_mail_unnotified ON mail(to_agent_id) WHERE read_at IS NULL AND nudged_at IS NULL;
