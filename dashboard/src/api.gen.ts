// Generated from the Worker's route table and Rust types by `npm run gen:api`; do not edit.
// `npm test` fails when this file no longer matches the code.
/* eslint-disable */

export type AddToConvoyInput = {
  bead_ids: Array<string>;
};

export type AdvanceInput = {
  summary?: string | null;
};

/** An agent as the API returns it (the agent's identity bead plus its satellite row). */
export type Agent = {
  checkpoint: unknown;
  created_at: string;
  dispatch_attempts: number;
  hook_bead_id: string | null;
  id: string;
  last_activity_at: string | null;
  name: string;
  rig_id: string | null;
  role: AgentRole;
  spawn_epoch: number;
  status: AgentStatus;
};

export type AgentConfig = {
  /** For `custom`: the command line; `{prompt_file}` and `{model}` are substituted. */
  command: string | null;
  model: string | null;
  /** Keyed by rig id. */
  rig_overrides: Record<string, RuntimeChoice>;
  /** Keyed by role name. */
  role_overrides: Record<string, RuntimeChoice>;
  runtime: Runtime;
};

export type AgentEvent = {
  created_at: string;
  data: unknown;
  event_type: string;
  id: number;
};

export type AgentPatch = {
  command?: string | null;
  model?: string | null;
  rig_overrides?: Record<string, RuntimeChoiceInput | null> | null;
  role_overrides?: Record<string, RuntimeChoiceInput | null> | null;
  runtime?: Runtime | null;
};

/** `GET …/agents?role=&status=`. */
export type AgentQuery = {
  role?: AgentRole | null;
  status?: AgentStatus | null;
};

export type AgentRole = "mayor" | "polecat" | "refinery" | "witness";

export type AgentStatus = "idle" | "working" | "stalled" | "dead";

/** A bead as the API returns it. */
export type Bead = {
  assignee_agent_id: string | null;
  body: string | null;
  closed_at: string | null;
  created_at: string;
  created_by: string;
  id: string;
  labels: Array<string>;
  /** A JSON object. */
  metadata: Record<string, unknown>;
  parent_id: string | null;
  priority: Priority;
  rig_id: string | null;
  status: BeadStatus;
  title: string;
  type: BeadType;
  updated_at: string;
};

export type BeadEvent = {
  actor: string;
  agent_id: string | null;
  bead_id: string;
  created_at: string;
  event_type: string;
  /** Monotonic within the town: doubles as a cursor. */
  id: number;
  /** A JSON object. */
  metadata: Record<string, unknown>;
  new_value: string | null;
  old_value: string | null;
  rig_id: string | null;
};

/** `GET …/beads?status=&type=&assignee_agent_id=&parent_id=&limit=&offset=`. */
export type BeadQuery = {
  assignee_agent_id?: string | null;
  limit?: number | null;
  offset?: number | null;
  parent_id?: string | null;
  status?: BeadStatus | null;
  type?: BeadType | null;
};

export type BeadStatus = "open" | "in_progress" | "in_review" | "closed" | "failed";

export type BeadType = "issue" | "message" | "escalation" | "merge_request" | "convoy" | "molecule" | "agent";

export type Capacity = {
  max_polecats_per_rig: number;
  max_polecats_per_town: number;
};

export type CapacityPatch = {
  max_polecats_per_rig?: number | null;
  max_polecats_per_town?: number | null;
};

export type CheckpointInput = {
  data: unknown;
};

export type CloseInput = {
  reason?: string | null;
};

/** A partial update. Maps merge key by key; `null` deletes a key or clears a field. */
export type ConfigPatch = {
  agent?: AgentPatch | null;
  capacity?: CapacityPatch | null;
  env_vars?: Record<string, string | null> | null;
  escalations?: EscalationPatch | null;
  git_auth?: GitAuthPatch | null;
  refinery?: RefineryPatch | null;
  witness?: WitnessPatch | null;
};

/** A convoy with its progress (`closed` of `total` tracked beads). */
export type Convoy = {
  bead_ids: Array<string>;
  closed: number;
  created_at: string;
  created_by: string;
  id: string;
  landed_at: string | null;
  /** `open` or `landed`. */
  status: string;
  title: string;
  total: number;
};

/** A convoy with its tracked beads (`GET …/convoys/:convoyId`). */
export type ConvoyDetail = {
  bead_ids: Array<string>;
  beads: Array<Bead>;
  closed: number;
  created_at: string;
  created_by: string;
  id: string;
  landed_at: string | null;
  /** `open` or `landed`. */
  status: string;
  title: string;
  total: number;
};

export type CreateBeadInput = {
  body?: string | null;
  labels?: Array<string>;
  metadata?: unknown;
  parent_id?: string | null;
  priority?: Priority | null;
  title: string;
  type?: BeadType;
};

export type CreateConvoyInput = {
  bead_ids?: Array<string>;
  title: string;
};

export type CreateRig = {
  bead_prefix?: string | null;
  default_branch?: string;
  git_url: string;
  name: string;
  town_id: string;
};

export type CreateTown = {
  name: string;
};

export type DepInput = {
  depends_on_bead_id: string;
  type?: DependencyType;
};

export type DependencyType = "blocks" | "tracks" | "parent-child";

export type DoneInput = {
  branch: string;
  pr_url?: string | null;
  summary?: string | null;
};

export type Error = {
  error: string;
  success: false;
};

/** `gt escalate`: a problem that needs a person (or the mayor). */
export type EscalateInput = {
  category?: string | null;
  message: string;
  severity?: Severity | null;
};

export type Escalation = {
  /** The bead the escalation is about, if any. */
  about: string | null;
  acknowledged: boolean;
  acknowledged_at: string | null;
  category: string | null;
  created_at: string;
  id: string;
  last_escalated_at: string;
  message: string;
  re_escalation_count: number;
  rig_id: string | null;
  severity: Severity;
  source_agent_id: string | null;
};

/** How unacknowledged escalations are chased. */
export type EscalationConfig = {
  /** At most this many times. */
  max_reescalations: number;
  /** An unacknowledged escalation is raised again (severity bumped) after this long. */
  reescalate_after_secs: number;
};

export type EscalationPatch = {
  max_reescalations?: number | null;
  reescalate_after_secs?: number | null;
};

/** `?acknowledged=true|false` narrows the list; `?limit=`: the newest n (1–500; 500 when not given). */
export type EscalationQuery = {
  acknowledged?: boolean | null;
  limit?: number | null;
};

/** What appending to an agent's log answers: the new event's id (its cursor for `?after=`). */
export type EventAppended = {
  id: number;
};

export type EventInput = {
  data?: unknown;
  event_type: string;
};

/** `GET …/rigs/:rigId/events?bead_id=&after_id=&since=&limit=`. */
export type EventQuery = {
  after_id?: number | null;
  bead_id?: string | null;
  limit?: number | null;
  /** An ISO-8601 time: events at or after it. */
  since?: string | null;
};

export type ForgeKind = "github" | "gitlab";

export type GitAuth = {
  github_token: string | null;
  /** GitHub Enterprise base URL. A token is only ever sent to its forge's configured host (`github.com` / `gitlab.com` unless set), never to any other. */
  github_url: string | null;
  gitlab_instance_url: string | null;
  gitlab_token: string | null;
  /** Verifies the forges' webhooks (GitHub's HMAC key, GitLab's token). Masked like the tokens; never sent to the container. */
  webhook_secret: string | null;
};

export type GitAuthPatch = {
  github_token?: string | null;
  github_url?: string | null;
  gitlab_instance_url?: string | null;
  gitlab_token?: string | null;
  webhook_secret?: string | null;
};

export type Health = {
  service: string;
  status: string;
  version: string;
  /** The isolate's wasm heap (null outside wasm). */
  wasm_memory_bytes: number | null;
};

export type HookInput = {
  bead_id: string;
};

export type Lifecycle = {
  epoch: number;
  event: "started";
} | {
  code?: number | null;
  epoch: number;
  event: "exited";
  reason?: string | null;
  /** The last lines of its terminal, as plain text (an error, a prompt it gave up at). */
  screen?: string | null;
  signal?: number | null;
};

/** An event log's cursor: `?after_id=&limit=`. */
export type LogQuery = {
  after_id?: number | null;
  limit?: number | null;
};

export type Mail = {
  body: string;
  created_at: string;
  from: string;
  id: string;
  read: boolean;
  read_at: string | null;
  subject: string;
  to_agent_id: string;
};

/** `?unread=true`: unread mail only. */
export type MailQuery = {
  unread?: boolean;
};

export type MayorMessage = {
  message: string;
};

export type MayorSling = {
  body?: string | null;
  /** Track the new bead in this convoy. */
  convoy_id?: string | null;
  /** Instantiate this built-in formula on the new bead (its polecat walks the steps). */
  formula?: string | null;
  labels?: Array<string>;
  metadata?: unknown;
  priority?: Priority | null;
  /** The rig to sling to. */
  rig_id: string;
  title: string;
};

/** `starting`: a run was started and has not reported in; `active`: running; `idle`. */
export type MayorState = "starting" | "active" | "idle";

/** Whether the mayor runs, as `GET …/mayor/status` answers. */
export type MayorStatus = {
  agent: Agent | null;
  /** Started again whenever it stops (`POST …/mayor/ensure`, or mail from a person). */
  keep_alive: boolean;
  status: MayorState;
};

export type Me = {
  email: string | null;
  kind: string;
  user_id: string;
};

export type MergeStrategy = "direct" | "pr";

export type Molecule = {
  formula: string;
  id: string;
  root_bead_id: string;
  status: BeadStatus;
  steps: Array<MoleculeStep>;
};

export type MoleculeInput = {
  /** A built-in formula's name… */
  formula?: string | null;
  /** …or a formula of the caller's own, as TOML. */
  formula_toml?: string | null;
};

export type MoleculeStep = {
  bead_id: string;
  needs: Array<string>;
  /** Open with every step it needs closed. */
  ready: boolean;
  status: BeadStatus;
  step: string;
  title: string;
};

/** `?limit=`: at most n, the newest (1–500; 500 when not given). */
export type NewestQuery = {
  limit?: number | null;
};

/** A merge request's pull request, as the merge queue shows it. */
export type PrView = {
  /** pending | success | failure */
  checks: string | null;
  forge: string;
  head_sha: string | null;
  next_poll_at: string | null;
  number: number;
  repo: string;
  /** none | approved | changes_requested | commented */
  review: string | null;
  /** open | merged | closed */
  state: string | null;
  url: string | null;
};

export type Priority = "critical" | "high" | "medium" | "low";

export type RefineryConfig = {
  /** With `pr`: merge an approved pull request whose checks are green. */
  auto_merge: boolean;
  gate_timeout_secs: number;
  /** Shell commands run in the merged tree; all must exit 0 before a push. */
  gates: Array<string>;
  /** Merge requests of one rig merged as one train with one gate run (1: one at a time). */
  max_batch: number;
  merge_strategy: MergeStrategy;
  /** With `pr`: how often an open pull request is polled when no webhook arrives (backing off while nothing changes). */
  pr_poll_secs: number;
};

export type RefineryPatch = {
  auto_merge?: boolean | null;
  gate_timeout_secs?: number | null;
  gates?: Array<string> | null;
  max_batch?: number | null;
  merge_strategy?: MergeStrategy | null;
  pr_poll_secs?: number | null;
};

export type RegisterAgentInput = {
  /** Polecats only; the next free pool name when absent. */
  name?: string | null;
  role: AgentRole;
};

export type ReviewEntry = {
  agent_id: string;
  attempts: number;
  branch: string;
  created_at: string;
  id: string;
  merge_commit: string | null;
  /** Gate, conflict or push output of the last failed attempt. */
  output: string | null;
  /** The pull request it was delivered as (merge strategy `pr`). */
  pr: PrView | null;
  rig_id: string | null;
  source_bead_id: string;
  /** pending | running | in_review (its pull request is open) | merged | failed — the merge-queue view of the MR bead's status. */
  status: string;
  summary: string | null;
  target_branch: string;
};

export type Rig = {
  bead_prefix: string;
  created_at: string;
  default_branch: string;
  /** The forge its pull requests go to, when the git URL does not say (e.g. a mirror). */
  forge: ForgeKind | null;
  /** The repository on that forge (`owner/name`, `group/project`), when not the git URL's path. */
  forge_repo: string | null;
  git_url: string;
  id: string;
  /** Overrides the town's `refinery.merge_strategy` for this rig. */
  merge_strategy: MergeStrategy | null;
  name: string;
};

/** The registry's record of the new rig, with what the town made of it. */
export type RigCreated = {
  bead_prefix: string | null;
  created_at: string;
  default_branch: string;
  /** Present when the repository could not be checked (`git ls-remote` through the container). */
  git_check?: unknown;
  git_url: string;
  id: string;
  name: string;
  town_id: string;
  updated_at: string;
};

export type RigDeleted = {
  deleted: string;
};

/** `PATCH /api/towns/:townId/rigs/:rigId`: a rig's own settings; `null` clears one (back to the town's). */
export type RigPatch = {
  forge?: ForgeKind | null;
  forge_repo?: string | null;
  merge_strategy?: MergeStrategy | null;
};

/** `GET /api/users/:userId/rigs?town_id=`. */
export type RigQuery = {
  town_id?: string | null;
};

export type Runtime = "claude" | "codex" | "gemini" | "opencode" | "kilo" | "demo" | "custom";

export type RuntimeChoice = {
  command: string | null;
  model: string | null;
  runtime: Runtime | null;
};

export type RuntimeChoiceInput = {
  command?: string | null;
  model?: string | null;
  runtime?: Runtime | null;
};

export type SendMailInput = {
  body: string;
  priority?: Priority | null;
  subject: string;
  to: string;
};

/** One agent's terminal session. */
export type Session = {
  agent_id: string;
  name: string;
  rig_id: string | null;
  role: AgentRole;
  /** `active` (its process runs), `idle` or `dead`. */
  status: string;
  /** Only the mayor's terminal takes input. */
  writable: boolean;
};

export type Severity = "low" | "medium" | "high" | "critical";

export type SlingInput = {
  body?: string | null;
  /** Track the new bead in this convoy. */
  convoy_id?: string | null;
  /** Instantiate this built-in formula on the new bead (its polecat walks the steps). */
  formula?: string | null;
  labels?: Array<string>;
  metadata?: unknown;
  priority?: Priority | null;
  title: string;
};

export type SlingResult = {
  /** `None` when every polecat slot is taken: the bead waits in the queue. */
  agent: Agent | null;
  bead: Bead;
};

export type StatusInput = {
  reason?: string | null;
  status: BeadStatus;
};

/** `?since=<seq>`: replay what came after it first. */
export type StreamQuery = {
  since?: number | null;
};

export type Ticket = {
  expires_in_secs: number;
  ticket: string;
  /** The terminal's WebSocket URL with the ticket (path and query). */
  url: string;
};

export type TownConfig = {
  agent: AgentConfig;
  capacity: Capacity;
  env_vars: Record<string, string>;
  escalations: EscalationConfig;
  git_auth: GitAuth;
  refinery: RefineryConfig;
  witness: WitnessConfig;
};

export type TownDeleted = {
  deleted: string;
  rigs_deleted: number;
};

/** `GET …/events?rig_id=&bead_id=&after_id=&since=&limit=`. */
export type TownEventQuery = {
  after_id?: number | null;
  bead_id?: string | null;
  limit?: number | null;
  rig_id?: string | null;
  /** An ISO-8601 time: events at or after it. */
  since?: string | null;
};

export type TownInfo = {
  created_at: string;
  id: string;
  name: string;
  owner_user_id: string;
  rigs: Array<Rig>;
  updated_at: string;
};

export type UserRig = {
  created_at: string;
  default_branch: string;
  git_url: string;
  id: string;
  name: string;
  town_id: string;
  updated_at: string;
};

export type UserTown = {
  created_at: string;
  id: string;
  name: string;
  owner_user_id: string;
  updated_at: string;
};

/** The witness's thresholds (all in seconds). */
export type WitnessConfig = {
  /** A stalled agent still silent this long after its nudge is escalated. */
  escalate_stall_after_secs: number;
  /** Work on a hook with nobody running it this long is a GUPP violation (re-dispatched). */
  gupp_after_secs: number;
  /** A working agent with no activity (no `gt` call, no terminal output) this long is stalled. */
  stall_after_secs: number;
  /** A run that has not reported starting this long after dispatch is started again. */
  start_timeout_secs: number;
  /** How often the witness looks while work is active (an idle town is not looked at). */
  tick_secs: number;
};

export type WitnessPatch = {
  escalate_stall_after_secs?: number | null;
  gupp_after_secs?: number | null;
  stall_after_secs?: number | null;
  start_timeout_secs?: number | null;
  tick_secs?: number | null;
};

/** The `data` each route answers with. */
export interface ApiReplies {
  "GET /api/mayor/{townId}/tools/convoys": Array<Convoy>;
  "POST /api/mayor/{townId}/tools/convoys": Convoy;
  "GET /api/mayor/{townId}/tools/convoys/{convoyId}": ConvoyDetail;
  "POST /api/mayor/{townId}/tools/convoys/{convoyId}/beads": Convoy;
  "GET /api/mayor/{townId}/tools/escalations": Array<Escalation>;
  "POST /api/mayor/{townId}/tools/escalations/{escalationId}/acknowledge": Escalation;
  "GET /api/mayor/{townId}/tools/inbox": Array<Mail>;
  "POST /api/mayor/{townId}/tools/inbox/check": Array<Mail>;
  "POST /api/mayor/{townId}/tools/inbox/{mailId}/read": Mail;
  "POST /api/mayor/{townId}/tools/lifecycle": unknown;
  "POST /api/mayor/{townId}/tools/mail": Mail;
  "GET /api/mayor/{townId}/tools/rigs": Array<Rig>;
  "GET /api/mayor/{townId}/tools/rigs/{rigId}/agents": Array<Agent>;
  "GET /api/mayor/{townId}/tools/rigs/{rigId}/beads": Array<Bead>;
  "POST /api/mayor/{townId}/tools/sling": SlingResult;
  "GET /api/me": Me;
  "GET /api/openapi.json": unknown;
  "GET /api/towns/{townId}": TownInfo;
  "GET /api/towns/{townId}/agents": Array<Agent>;
  "GET /api/towns/{townId}/agents/{agentId}/events": Array<AgentEvent>;
  "POST /api/towns/{townId}/agents/{agentId}/stream-ticket": Ticket;
  "GET /api/towns/{townId}/config": TownConfig;
  "PATCH /api/towns/{townId}/config": TownConfig;
  "GET /api/towns/{townId}/convoys": Array<Convoy>;
  "POST /api/towns/{townId}/convoys": Convoy;
  "GET /api/towns/{townId}/convoys/{convoyId}": ConvoyDetail;
  "POST /api/towns/{townId}/convoys/{convoyId}/beads": Convoy;
  "GET /api/towns/{townId}/escalations": Array<Escalation>;
  "POST /api/towns/{townId}/escalations/{escalationId}/acknowledge": Escalation;
  "GET /api/towns/{townId}/events": Array<BeadEvent>;
  "GET /api/towns/{townId}/formulas": unknown;
  "GET /api/towns/{townId}/mail": Array<Mail>;
  "POST /api/towns/{townId}/mayor/ensure": MayorStatus;
  "POST /api/towns/{townId}/mayor/message": unknown;
  "GET /api/towns/{townId}/mayor/status": MayorStatus;
  "GET /api/towns/{townId}/merge-queue": Array<ReviewEntry>;
  "POST /api/towns/{townId}/merge-queue/{mrId}/retry": ReviewEntry;
  "GET /api/towns/{townId}/rigs/{rigId}": Rig;
  "PATCH /api/towns/{townId}/rigs/{rigId}": Rig;
  "GET /api/towns/{townId}/rigs/{rigId}/agents": Array<Agent>;
  "POST /api/towns/{townId}/rigs/{rigId}/agents": Agent;
  "DELETE /api/towns/{townId}/rigs/{rigId}/agents/{agentId}": unknown;
  "GET /api/towns/{townId}/rigs/{rigId}/agents/{agentId}": Agent;
  "POST /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/checkpoint": Agent;
  "POST /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/done": ReviewEntry;
  "GET /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/events": Array<AgentEvent>;
  "POST /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/events": EventAppended;
  "DELETE /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/hook": Agent;
  "POST /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/hook": Agent;
  "POST /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/lifecycle": unknown;
  "GET /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/mail": Array<Mail>;
  "POST /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/mail/check": Array<Mail>;
  "POST /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/mail/{mailId}/read": Mail;
  "POST /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/molecule/advance": unknown;
  "POST /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/molecule/current": unknown;
  "GET /api/towns/{townId}/rigs/{rigId}/agents/{agentId}/prime": unknown;
  "GET /api/towns/{townId}/rigs/{rigId}/beads": Array<Bead>;
  "POST /api/towns/{townId}/rigs/{rigId}/beads": Bead;
  "DELETE /api/towns/{townId}/rigs/{rigId}/beads/{beadId}": unknown;
  "GET /api/towns/{townId}/rigs/{rigId}/beads/{beadId}": Bead;
  "POST /api/towns/{townId}/rigs/{rigId}/beads/{beadId}/close": Bead;
  "GET /api/towns/{townId}/rigs/{rigId}/beads/{beadId}/dependencies": unknown;
  "POST /api/towns/{townId}/rigs/{rigId}/beads/{beadId}/dependencies": unknown;
  "DELETE /api/towns/{townId}/rigs/{rigId}/beads/{beadId}/dependencies/{dependsOn}": unknown;
  "GET /api/towns/{townId}/rigs/{rigId}/beads/{beadId}/molecule": Molecule;
  "POST /api/towns/{townId}/rigs/{rigId}/beads/{beadId}/molecule": Molecule;
  "PATCH /api/towns/{townId}/rigs/{rigId}/beads/{beadId}/status": Bead;
  "POST /api/towns/{townId}/rigs/{rigId}/escalations": Bead;
  "GET /api/towns/{townId}/rigs/{rigId}/events": Array<BeadEvent>;
  "POST /api/towns/{townId}/rigs/{rigId}/mail": Mail;
  "POST /api/towns/{townId}/rigs/{rigId}/sling": SlingResult;
  "GET /api/towns/{townId}/sessions": Array<Session>;
  "GET /api/towns/{townId}/witness": unknown;
  "POST /api/towns/{townId}/witness/tick": unknown;
  "GET /api/users/{userId}/rigs": Array<UserRig>;
  "POST /api/users/{userId}/rigs": RigCreated;
  "DELETE /api/users/{userId}/rigs/{rigId}": RigDeleted;
  "GET /api/users/{userId}/rigs/{rigId}": UserRig;
  "GET /api/users/{userId}/towns": Array<UserTown>;
  "POST /api/users/{userId}/towns": UserTown;
  "DELETE /api/users/{userId}/towns/{townId}": TownDeleted;
  "GET /api/users/{userId}/towns/{townId}": UserTown;
  "GET /api/users/{userId}/towns/{townId}/events": Array<BeadEvent>;
  "GET /api/users/{userId}/towns/{townId}/rigs": Array<UserRig>;
  "POST /api/webhooks/github/{townId}": unknown;
  "POST /api/webhooks/gitlab/{townId}": unknown;
  "GET /health": Health;
}
