//! What an evaluation session finds besides its diagnostics, handed on to the project-wide merge:
//! declared workflow ids, display-order entries naming other integrations' workflows, secrets,
//! and how descriptions were recorded. Plain data: this module imports no other module of the
//! crate, so `eval.rs` (which fills it) and `workflows.rs` (which reads it) both can.

use std::collections::BTreeSet;

use para_project::Diagnostic;

/// What a session found, handed to the project-wide merge.
pub struct Findings {
    pub diagnostics: Vec<Diagnostic>,
    pub declared: Vec<Declared>,
    pub foreign_order: Vec<ForeignOrder>,
    pub secrets: BTreeSet<String>,
    pub recorded: Recorded,
}

/// A workflow id and the file that declares it.
pub struct Declared {
    pub id: String,
    pub file: String,
}

/// A `workflowDisplayOrder` entry that names a workflow outside its integration.
pub struct ForeignOrder {
    pub config_file: String,
    pub index: usize,
    pub id: String,
}

/// How many file descriptions were recorded directly from the syntax tree, and how many by the
/// JavaScript engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    pub directly: usize,
    pub by_engine: usize,
}

impl std::ops::AddAssign for Recorded {
    fn add_assign(&mut self, other: Recorded) {
        self.directly += other.directly;
        self.by_engine += other.by_engine;
    }
}
