//! TypeScript in, JavaScript values out: transpiling with oxc and evaluating in a sandboxed
//! QuickJS runtime.
//!
//! This crate knows nothing about Paragraph's DSL, HTTP or databases. The compiler decides which
//! virtual modules exist and what they export; this crate only enforces the sandbox (no ambient
//! I/O, a time limit per call, a memory limit) and maps errors back to TypeScript positions.
//! [`run_function`] runs a workflow's function step in the same sandbox (with the clock allowed),
//! in a locked-down realm per thread that no call can change; all function steps of the process
//! share one memory budget ([`SandboxMemoryConfig`]).

mod engine;
mod functions;
mod memory;
mod sandbox;
mod transpile;

pub use engine::{
    Engine, JsError, JsErrorKind, Limits, Modules, VirtualModules, normalize_path, resolve_relative,
};
pub use functions::{FunctionError, FunctionLimits, run_function};
pub use memory::{
    SandboxMemory, SandboxMemoryConfig, reset_sandbox_memory_peak, sandbox_memory,
    sandbox_memory_config, set_sandbox_memory_config,
};
pub use transpile::{Import, PropertySite, Transpiled, transpile};
