-- Agents the town keeps running (the mayor), and which run reported that it started.
ALTER TABLE agents ADD COLUMN keep_alive INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN running_epoch INTEGER;
