-- Which TownDO instance is performing a running merge. The instance that claimed it awaits the
-- container's answer; if the Worker restarts meanwhile that answer is lost with it, so a merge
-- claimed by another instance than the current one is put back in the queue at once (the
-- container's repository lock makes the repeat wait for, and then find, the first one's result).
ALTER TABLE reviews ADD COLUMN claimed_by TEXT;
