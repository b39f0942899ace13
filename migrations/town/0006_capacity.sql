-- The container's own limit on agents running at once, as it last reported it (NULL: not yet
-- known). The town never claims more runs than this, so a full container means "wait", not a
-- failed attempt.
ALTER TABLE town_meta ADD COLUMN container_max_agents INTEGER;
