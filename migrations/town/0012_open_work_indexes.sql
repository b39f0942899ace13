-- The drive loop (after every op that may create work) and the alarm ask on each pass what is
-- open, due or running. These partial indexes hold only those rows, so each pass costs what is
-- open, not everything the town has ever done: acknowledged escalations and landed convoys stay
-- out of them. (Mail needs none: the passes read the running agents first, then their unread
-- mail through idx_mail_to.)
CREATE INDEX idx_escalations_open ON escalations(last_escalated_at) WHERE acknowledged_at IS NULL;
CREATE INDEX idx_convoys_unlanded ON convoys(bead_id) WHERE landed_at IS NULL;
