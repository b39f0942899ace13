-- The run whose exit was last reported. The container reports a run's start and its exit
-- separately, so a quick run's exit can arrive first; its start, arriving after, must not mark
-- the agent as running again.
ALTER TABLE agents ADD COLUMN exited_epoch INTEGER;
