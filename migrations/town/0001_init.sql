-- TownDO: all control-plane state of one town.
CREATE TABLE town_meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  town_id TEXT NOT NULL,
  name TEXT NOT NULL,
  owner_user_id TEXT NOT NULL,
  config TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE TABLE rigs (
  rig_id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  git_url TEXT NOT NULL,
  default_branch TEXT NOT NULL,
  bead_prefix TEXT NOT NULL,
  created_at TEXT NOT NULL
);

-- Every object is a bead; satellites below add type-specific columns.
CREATE TABLE beads (
  bead_id TEXT PRIMARY KEY,
  type TEXT NOT NULL CHECK (type IN ('issue','message','escalation','merge_request','convoy','molecule','agent')),
  status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open','in_progress','in_review','closed','failed')),
  title TEXT NOT NULL,
  body TEXT,
  rig_id TEXT,
  parent_bead_id TEXT,
  assignee_agent_id TEXT,
  priority TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('critical','high','medium','low')),
  labels TEXT NOT NULL DEFAULT '[]',
  metadata TEXT NOT NULL DEFAULT '{}',
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  closed_at TEXT
);
CREATE INDEX idx_beads_rig_status ON beads(rig_id, status);
CREATE INDEX idx_beads_type_status ON beads(type, status);
CREATE INDEX idx_beads_assignee ON beads(assignee_agent_id, type, status);
CREATE INDEX idx_beads_parent ON beads(parent_bead_id);

-- Append-only audit log; event_id is the town-wide cursor.
CREATE TABLE bead_events (
  event_id INTEGER PRIMARY KEY AUTOINCREMENT,
  bead_id TEXT NOT NULL,
  rig_id TEXT,
  agent_id TEXT,
  actor TEXT NOT NULL,
  event_type TEXT NOT NULL,
  old_value TEXT,
  new_value TEXT,
  metadata TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL
);
CREATE INDEX idx_bead_events_bead ON bead_events(bead_id, event_id);
CREATE INDEX idx_bead_events_rig ON bead_events(rig_id, event_id);

CREATE TABLE bead_dependencies (
  bead_id TEXT NOT NULL,
  depends_on_bead_id TEXT NOT NULL,
  dependency_type TEXT NOT NULL CHECK (dependency_type IN ('blocks','tracks','parent-child')),
  created_at TEXT NOT NULL,
  PRIMARY KEY (bead_id, depends_on_bead_id, dependency_type)
);
CREATE INDEX idx_bead_deps_depends_on ON bead_dependencies(depends_on_bead_id);

-- Satellite of type='agent' beads.
CREATE TABLE agents (
  bead_id TEXT PRIMARY KEY,
  role TEXT NOT NULL CHECK (role IN ('mayor','polecat','refinery','witness')),
  name TEXT NOT NULL,
  rig_id TEXT,
  status TEXT NOT NULL DEFAULT 'idle' CHECK (status IN ('idle','working','stalled','dead')),
  hook_bead_id TEXT,
  dispatch_attempts INTEGER NOT NULL DEFAULT 0,
  spawn_epoch INTEGER NOT NULL DEFAULT 0,
  checkpoint TEXT,
  last_activity_at TEXT
);
-- Polecat names are unique in the town; every other role is a singleton per rig (mayor: per town).
CREATE UNIQUE INDEX idx_agents_polecat_name ON agents(name) WHERE role = 'polecat';
CREATE UNIQUE INDEX idx_agents_singleton ON agents(COALESCE(rig_id, ''), role) WHERE role != 'polecat';
CREATE INDEX idx_agents_hook ON agents(hook_bead_id);

-- Satellite of type='message' beads.
CREATE TABLE mail (
  bead_id TEXT PRIMARY KEY,
  from_address TEXT NOT NULL,
  to_agent_id TEXT NOT NULL,
  read_at TEXT
);
CREATE INDEX idx_mail_to ON mail(to_agent_id, read_at);

-- Satellite of type='merge_request' beads.
CREATE TABLE reviews (
  bead_id TEXT PRIMARY KEY,
  source_bead_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  branch TEXT NOT NULL,
  target_branch TEXT NOT NULL,
  merge_commit TEXT,
  pr_url TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  output TEXT,
  processed_at TEXT
);

-- Satellite of type='escalation' beads.
CREATE TABLE escalations (
  bead_id TEXT PRIMARY KEY,
  severity TEXT NOT NULL CHECK (severity IN ('low','medium','high','critical')),
  category TEXT,
  source_agent_id TEXT,
  acknowledged_at TEXT,
  re_escalation_count INTEGER NOT NULL DEFAULT 0,
  last_escalated_at TEXT NOT NULL
);

-- Satellite of type='convoy' beads.
CREATE TABLE convoys (
  bead_id TEXT PRIMARY KEY,
  landed_at TEXT
);
