-- GastownUserDO: the towns and rigs one user owns (the ownership source of truth).
CREATE TABLE user_towns (
  town_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE TABLE user_rigs (
  rig_id TEXT PRIMARY KEY,
  town_id TEXT NOT NULL,
  name TEXT NOT NULL,
  git_url TEXT NOT NULL,
  default_branch TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (town_id, name)
);
CREATE INDEX idx_user_rigs_town ON user_rigs(town_id);
