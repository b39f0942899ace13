//! The one contract between the Gastown Worker and its container.
//!
//! Both sides depend on this crate so that what the API accepts is exactly what the container
//! can act on: a rig whose git URL the container would refuse must be refused when it is
//! created (a 400), not discovered on every dispatch; and the requests the Worker sends are
//! the very structs the container reads (`container`), town config included in the body, as
//! the replies the Worker reads are the structs the container writes; and one percent-encoding
//! (`text`) serves both. Pure Rust (serde, thiserror) so it builds
//! for the Worker's wasm32 target and natively for the container.

pub mod container;
pub mod text;
pub mod validate;

pub use container::{
    AgentSnapshot, AgentState, BranchOutcome, CheckReply, CheckRequest, ContainerTownConfig, ErrorReply, ExitInfo, ExitReason, GateReport,
    GateRunReport, MergeBatchReply, MergeBatchRequest, MergeStrategy, NudgeRequest, PushReply, PushRequest, RemoteCheck, Role,
    StartAgentRequest, StartReply, StopRequest,
};
pub use text::percent_encode;
pub use validate::{GitUrl, Invalid, UrlKind};
