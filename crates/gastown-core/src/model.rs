//! The beads data model: the enums every object shares, the allowed status transitions, and the
//! JSON shapes the API returns. Everything in a town is a bead; agents, reviews, escalations,
//! convoys and mail add a 1:1 satellite row with their own fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CoreError, CoreResult};

/// Declares a string-valued enum with `as_str`, `parse` (naming the field and the allowed values on
/// error) and serde in snake_case.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        pub enum $name { $(#[serde(rename = $s)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            pub fn parse(field: &str, s: &str) -> CoreResult<Self> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(CoreError::bad(field, format!(
                        "unknown value {s:?}; expected one of: {}",
                        [$($s),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(BeadType {
    Issue => "issue",
    Message => "message",
    Escalation => "escalation",
    MergeRequest => "merge_request",
    Convoy => "convoy",
    Molecule => "molecule",
    Agent => "agent",
});

str_enum!(BeadStatus {
    Open => "open",
    InProgress => "in_progress",
    InReview => "in_review",
    Closed => "closed",
    Failed => "failed",
});

str_enum!(Priority {
    Critical => "critical",
    High => "high",
    Medium => "medium",
    Low => "low",
});

str_enum!(AgentRole {
    Mayor => "mayor",
    Polecat => "polecat",
    Refinery => "refinery",
    Witness => "witness",
});

str_enum!(AgentStatus {
    Idle => "idle",
    Working => "working",
    Stalled => "stalled",
    Dead => "dead",
});

str_enum!(DependencyType {
    Blocks => "blocks",
    Tracks => "tracks",
    ParentChild => "parent-child",
});

str_enum!(Severity {
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
});

str_enum!(EventType {
    Created => "created",
    StatusChanged => "status_changed",
    Hooked => "hooked",
    Unhooked => "unhooked",
    Assigned => "assigned",
    MailSent => "mail_sent",
    MailRead => "mail_read",
    ReviewSubmitted => "review_submitted",
    ReviewCompleted => "review_completed",
    Escalated => "escalated",
    Closed => "closed",
    Reopened => "reopened",
    Updated => "updated",
    DependencyAdded => "dependency_added",
    DependencyRemoved => "dependency_removed",
    Checkpoint => "checkpoint",
    AgentRegistered => "agent_registered",
    AgentSpawned => "agent_spawned",
    AgentExited => "agent_exited",
    DispatchFailed => "dispatch_failed",
    Queued => "queued",
    Deleted => "deleted",
    Redispatched => "redispatched",
    AgentStalled => "agent_stalled",
    GuppViolation => "gupp_violation",
    Nudged => "nudged",
    ConvoyLanded => "convoy_landed",
    ConvoyReopened => "convoy_reopened",
    MoleculeCreated => "molecule_created",
    PrOpened => "pr_opened",
    PrUpdated => "pr_updated",
});

impl BeadStatus {
    /// The status machine. Terminal states only leave through an explicit reopen/retry to `open`;
    /// review is only reachable from work in progress.
    pub fn can_transition_to(self, to: BeadStatus) -> bool {
        use BeadStatus::*;
        matches!(
            (self, to),
            (Open, InProgress | Closed | Failed)
                | (InProgress, Open | InReview | Closed | Failed)
                | (InReview, InProgress | Open | Closed | Failed)
                | (Closed, Open)
                | (Failed, Open)
        )
    }

    pub fn check_transition(self, to: BeadStatus) -> CoreResult<()> {
        if self.can_transition_to(to) {
            Ok(())
        } else {
            Err(CoreError::Conflict(format!("a bead cannot go from {self} to {to}")))
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, BeadStatus::Closed | BeadStatus::Failed)
    }
}

impl Priority {
    /// Lower sorts first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Medium => 2,
            Priority::Low => 3,
        }
    }
}

impl Severity {
    pub fn bumped(self) -> Severity {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

/// A bead as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Bead {
    pub id: String,
    #[serde(rename = "type")]
    pub bead_type: BeadType,
    pub status: BeadStatus,
    pub title: String,
    pub body: Option<String>,
    pub rig_id: Option<String>,
    pub parent_id: Option<String>,
    pub assignee_agent_id: Option<String>,
    pub priority: Priority,
    pub labels: Vec<String>,
    /// A JSON object.
    #[cfg_attr(feature = "schema", schemars(with = "serde_json::Map<String, Value>"))]
    pub metadata: Value,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
}

/// An agent as the API returns it (the agent's identity bead plus its satellite row).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Agent {
    pub id: String,
    pub rig_id: Option<String>,
    pub role: AgentRole,
    pub name: String,
    pub status: AgentStatus,
    pub hook_bead_id: Option<String>,
    pub dispatch_attempts: i64,
    pub spawn_epoch: i64,
    pub last_activity_at: Option<String>,
    pub checkpoint: Option<Value>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BeadEvent {
    /// Monotonic within the town: doubles as a cursor.
    pub id: i64,
    pub bead_id: String,
    pub rig_id: Option<String>,
    pub agent_id: Option<String>,
    pub actor: String,
    pub event_type: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    /// A JSON object.
    #[cfg_attr(feature = "schema", schemars(with = "serde_json::Map<String, Value>"))]
    pub metadata: Value,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Dependency {
    pub bead_id: String,
    pub depends_on_bead_id: String,
    #[serde(rename = "type")]
    pub dependency_type: DependencyType,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Rig {
    pub id: String,
    pub name: String,
    pub git_url: String,
    pub default_branch: String,
    pub bead_prefix: String,
    pub created_at: String,
    /// Overrides the town's `refinery.merge_strategy` for this rig.
    #[serde(default)]
    pub merge_strategy: Option<crate::config::MergeStrategy>,
    /// The forge its pull requests go to, when the git URL does not say (e.g. a mirror).
    #[serde(default)]
    pub forge: Option<crate::forge::ForgeKind>,
    /// The repository on that forge (`owner/name`, `group/project`), when not the git URL's path.
    #[serde(default)]
    pub forge_repo: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Mail {
    pub id: String,
    pub from: String,
    pub to_agent_id: String,
    pub subject: String,
    pub body: String,
    pub read: bool,
    pub created_at: String,
    pub read_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReviewEntry {
    pub id: String,
    pub rig_id: Option<String>,
    pub source_bead_id: String,
    pub agent_id: String,
    pub branch: String,
    pub target_branch: String,
    /// pending | running | in_review (its pull request is open) | merged | failed — the
    /// merge-queue view of the MR bead's status.
    pub status: String,
    pub summary: Option<String>,
    pub merge_commit: Option<String>,
    /// Gate, conflict or push output of the last failed attempt.
    pub output: Option<String>,
    pub attempts: i64,
    pub created_at: String,
    /// The pull request it was delivered as (merge strategy `pr`).
    #[serde(default)]
    pub pr: Option<PrView>,
}

/// A merge request's pull request, as the merge queue shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PrView {
    pub forge: String,
    pub repo: String,
    pub number: i64,
    pub url: Option<String>,
    pub head_sha: Option<String>,
    /// open | merged | closed
    pub state: Option<String>,
    /// pending | success | failure
    pub checks: Option<String>,
    /// none | approved | changes_requested | commented
    pub review: Option<String>,
    pub next_poll_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_lifecycle() {
        use BeadStatus::*;
        assert!(Open.can_transition_to(InProgress));
        assert!(InProgress.can_transition_to(InReview));
        assert!(InReview.can_transition_to(Closed));
        assert!(Closed.can_transition_to(Open), "reopen");
        assert!(Failed.can_transition_to(Open), "retry");
        assert!(!Open.can_transition_to(InReview), "review needs work first");
        assert!(!Closed.can_transition_to(InProgress));
        assert!(!Closed.can_transition_to(Failed));
        assert!(!Failed.can_transition_to(Closed));
        assert!(!Open.can_transition_to(Open));
        let err = Closed.check_transition(InReview).unwrap_err();
        assert_eq!(err.status(), 409);
        assert!(err.to_string().contains("closed") && err.to_string().contains("in_review"));
    }

    #[test]
    fn enum_parse_names_field_and_choices() {
        assert_eq!(BeadStatus::parse("status", "in_review").unwrap(), BeadStatus::InReview);
        let err = BeadStatus::parse("status", "done").unwrap_err();
        assert_eq!(err.status(), 400);
        let msg = err.to_string();
        assert!(msg.starts_with("status:"), "{msg}");
        assert!(msg.contains("in_progress"), "{msg}");
        assert_eq!(DependencyType::parse("type", "parent-child").unwrap(), DependencyType::ParentChild);
        let json = serde_json::to_string(&DependencyType::ParentChild).unwrap();
        assert_eq!(json, "\"parent-child\"");
    }

    #[test]
    fn severity_bump_caps_at_critical() {
        assert_eq!(Severity::Low.bumped(), Severity::Medium);
        assert_eq!(Severity::Critical.bumped(), Severity::Critical);
    }
}
