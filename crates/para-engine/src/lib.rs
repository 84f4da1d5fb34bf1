//! The workflow engine's pure core: resolving the build's value sources against what a run
//! knows (`values`), and evaluating conditions (`conditions`) — for conditional steps,
//! pagination stop conditions and workflow permissions. No I/O here; the durable execution
//! around it (issue 6) lives on `para-store`'s runs.

pub mod conditions;
pub mod values;

pub use conditions::holds;
pub use values::{Scope, resolve, resolve_text};
