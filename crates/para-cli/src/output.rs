//! Human output on stderr: findings with code frames, `hint:` lines, summaries. The `error:` and
//! `hint:` labels are coloured only on a terminal and never when `NO_COLOR` is set
//! (<https://no-color.org>); everything else is plain text, so logs read the same.

use std::io::IsTerminal as _;

use para_project::{Diagnostic, SourceLookup, render};

/// Whether to colour stderr: a terminal, and `NO_COLOR` unset or empty.
pub fn color() -> bool {
    !crate::config::env().no_color() && std::io::stderr().is_terminal()
}

fn label(text: &str, ansi: &str) -> String {
    if color() { format!("\x1b[{ansi}m{text}\x1b[0m") } else { text.to_string() }
}

/// Prints one line for the user (stderr: stdout is kept for data).
pub fn say(message: impl AsRef<str>) {
    eprintln!("{}", message.as_ref());
}

/// Prints an error with an optional hint.
pub fn error(message: impl AsRef<str>, hint: Option<&str>) {
    eprintln!("{} {}", label("error:", "1;31"), message.as_ref());
    if let Some(hint) = hint {
        eprintln!("{} {hint}", label("hint:", "1;36"));
    }
}

/// Renders every finding, separated by blank lines.
pub fn render_all(diagnostics: &[Diagnostic], sources: &dyn SourceLookup) -> String {
    diagnostics.iter().map(|d| render(d, sources)).collect::<Vec<_>>().join("\n")
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") }
}
