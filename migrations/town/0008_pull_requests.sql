-- Merge through pull requests (merge strategy `pr`): a rig's own strategy and forge, and the
-- pull request a merge request was delivered as, followed to its end by webhooks and polls.
ALTER TABLE rigs ADD COLUMN merge_strategy TEXT;
ALTER TABLE rigs ADD COLUMN forge TEXT;
ALTER TABLE rigs ADD COLUMN forge_repo TEXT;

ALTER TABLE reviews ADD COLUMN pr_forge TEXT;
ALTER TABLE reviews ADD COLUMN pr_repo TEXT;
ALTER TABLE reviews ADD COLUMN pr_number INTEGER;
ALTER TABLE reviews ADD COLUMN pr_head_sha TEXT;
-- open | merged | closed
ALTER TABLE reviews ADD COLUMN pr_state TEXT;
-- pending | success | failure (the forge's checks on the head, ours excluded)
ALTER TABLE reviews ADD COLUMN pr_checks TEXT;
-- none | approved | changes_requested | commented
ALTER TABLE reviews ADD COLUMN pr_review TEXT;
-- The newest review / note id acted on: each is acted on once, whether by webhook or poll.
ALTER TABLE reviews ADD COLUMN pr_cursor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reviews ADD COLUMN pr_next_poll_at TEXT;
ALTER TABLE reviews ADD COLUMN pr_unchanged_polls INTEGER NOT NULL DEFAULT 0;
-- Auto-merge was asked of the forge (once per head).
ALTER TABLE reviews ADD COLUMN pr_merge_asked TEXT;
CREATE INDEX reviews_pr ON reviews (pr_repo, pr_number);
