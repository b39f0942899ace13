-- An escalation nobody acknowledges is raised again a few times and then stays open, done
-- re-escalating, for as long as nobody looks: in a town left alone these pile up. Every pass of
-- the drive loop and the alarm asked for the open escalations due again through
-- `idx_escalations_open` (by last raised), where the ones done re-escalating, raised longest
-- ago, come first and were walked each time; and the open list sorted every open one by time.
-- With 300 ignored (the native step test): a claim 676 -> 3820 steps, the next wake 281 ->
-- 1531, a page of one open escalation 67 -> 8167.
--
-- Now the due ones are found by re-escalation count first: only those raised fewer times than
-- the limit are read (each is raised again within hours until it reaches the limit, so they are
-- few). The open list is read newest first off an index that holds only the open rows, in the
-- order they were raised (the table's own: an escalation's row is written with its bead).
DROP INDEX idx_escalations_open;
CREATE INDEX idx_escalations_due ON escalations(re_escalation_count, last_escalated_at) WHERE acknowledged_at IS NULL;
CREATE INDEX idx_escalations_open ON escalations(acknowledged_at) WHERE acknowledged_at IS NULL;
