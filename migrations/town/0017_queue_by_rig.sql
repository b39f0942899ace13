-- The dispatch queue was walked whole on every op that may create work: the drive loop's check
-- for due work looked for a queued bead that was no longer open, and for a queued bead whose rig
-- had a free slot (a count of the rig's polecats per queued bead), and filling from the queue
-- first deleted every entry whose bead had left `open`, then read and sorted the whole queue.
-- A backlog behind full rigs (the normal case: more slung than there are polecats) made every
-- status change and sling pay for it (1.3 ms of SQLite per op at 1000 queued, in workerd).
--
-- Now SQLite keeps the queue to open beads itself, so nothing has to look for the others, and
-- the queue is reached by rig: the rigs with queued work are found from the rigs (few), a seek
-- each, and only the queues of rigs with a free slot are read.
DELETE FROM dispatch_queue
WHERE NOT EXISTS (SELECT 1 FROM beads b WHERE b.bead_id = dispatch_queue.bead_id AND b.status = 'open');

CREATE INDEX idx_dispatch_queue_rig ON dispatch_queue(rig_id);

CREATE TRIGGER dispatch_queue_not_open AFTER UPDATE OF status ON beads
WHEN NEW.status != 'open'
BEGIN
  DELETE FROM dispatch_queue WHERE bead_id = NEW.bead_id;
END;

CREATE TRIGGER dispatch_queue_deleted AFTER DELETE ON beads
BEGIN
  DELETE FROM dispatch_queue WHERE bead_id = OLD.bead_id;
END;
