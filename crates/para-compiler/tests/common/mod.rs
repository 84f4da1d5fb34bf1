//! Set-up shared by the compiler's test files.

use std::path::Path;
use std::time::Duration;

use para_compiler::{EvaluationLimits, Options};
use para_project::Project;

/// Compile options for tests; `direct` chooses direct recording or the engine for every file.
pub fn options(direct: bool) -> Options {
    Options {
        // Short, so the endless-loop fixture fails fast; ample for everything else.
        limits: EvaluationLimits {
            time_per_call: Duration::from_millis(750),
            ..EvaluationLimits::default()
        },
        generator: "para (test)".into(),
        threads: 0,
        teardown: true,
        direct,
        trace_direct: false,
    }
}

/// Loads the project at `dir`.
pub fn load(dir: &Path) -> Project {
    let (root, marker) =
        para_project::root_at(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    para_project::load(&root, marker).unwrap()
}
