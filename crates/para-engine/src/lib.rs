//! The workflow engine's core: resolving the build's value sources against what a run knows
//! (`values`), evaluating conditions (`conditions`) — for conditional steps, pagination stop
//! conditions and workflow permissions —, deciding whether a request passes a custom webhook
//! trigger's filters (`custom_triggers`), reading `Retry-After` (`retry_after`, shared with
//! `para-connect`), and executing a run's step graph against its
//! journal (`run`). No I/O here: HTTP, the JavaScript sandbox and the database are the
//! [`run::Host`]'s, implemented by `para-server`.

pub mod conditions;
pub mod custom_triggers;
pub mod redaction;
pub mod retry_after;
pub mod run;
pub mod values;

pub use conditions::holds;
pub use values::{Outputs, Scope, resolve, resolve_text};
