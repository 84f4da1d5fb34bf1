//! One module per command: argument handling and printing around library calls.

pub mod build;
pub mod completions;
pub mod init;
pub mod new;

/// Exit codes.
pub const SUCCESS: i32 = 0;
pub const FINDINGS: i32 = 1;
pub const USAGE: i32 = 2;
