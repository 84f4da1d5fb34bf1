//! Human output on stderr: findings with code frames, `hint:` lines, summaries. Nothing here is
//! coloured, so it reads the same with or without `NO_COLOR` and in logs.

use para_project::{Diagnostic, SourceLookup, render};

/// Prints one line for the user (stderr: stdout is kept for data).
pub fn say(message: impl AsRef<str>) {
    eprintln!("{}", message.as_ref());
}

/// Prints an error with an optional hint.
pub fn error(message: impl AsRef<str>, hint: Option<&str>) {
    eprintln!("error: {}", message.as_ref());
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
}

/// Renders every finding, separated by blank lines.
pub fn render_all(diagnostics: &[Diagnostic], sources: &dyn SourceLookup) -> String {
    diagnostics.iter().map(|d| render(d, sources)).collect::<Vec<_>>().join("\n")
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") }
}
