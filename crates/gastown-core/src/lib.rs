//! Gastown's control plane as plain Rust. Nothing here calls JavaScript: the Worker's Durable
//! Objects are thin glue that hand these stores a [`db::Db`] and a clock, so every rule below
//! runs under native `cargo test`.

pub mod agent_log;
pub mod auth;
pub mod bounded;
pub mod config;
pub mod container;
pub mod db;
pub mod error;
pub mod forge;
pub mod formulas;
pub mod ids;
pub mod json;
pub mod limits;
pub mod migrate;
pub mod model;
pub mod names;
pub mod prompts;
pub mod time;
pub mod town;
pub mod user;
pub mod validate;
pub mod web;
pub mod witness;

pub use error::{CoreError, CoreResult};
