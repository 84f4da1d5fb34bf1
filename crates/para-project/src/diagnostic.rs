//! Located findings about a project, and how they are shown to a person.
//!
//! Every stage (syntax, evaluation, validation) reports into the same [`Diagnostic`] type so that
//! the CLI prints one consistent list, sorted by file and position, with a code frame where the
//! source has one. Rendering goes through oxc's deterministic, colourless renderer so output is
//! identical on every machine (and therefore snapshot-testable).

use std::fmt::Write as _;

use oxc_diagnostics::{LabeledSpan, NamedSource, OxcDiagnostic};

/// How bad a finding is: errors fail the build (exit code 1), warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: u32, end: u32) -> Self {
        Span { start, end: end.max(start) }
    }
}

/// A place in the project a finding points at. `span` is `None` when only the file is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Path relative to the project root, with `/` separators.
    pub file: String,
    pub span: Option<Span>,
}

/// One finding. `code` is a stable, kebab-case rule name (`duplicate-input-id`) that tests and
/// tooling can match on; `message` says what is wrong and `help` what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub location: Option<Location>,
    /// Label drawn under the primary span.
    pub label: Option<String>,
    /// Other places that matter (the first definition of a duplicate, say).
    pub related: Vec<(Location, String)>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            location: None,
            label: None,
            related: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.location = Some(Location { file: file.into(), span: None });
        self
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_related(mut self, location: Location, what: impl Into<String>) -> Self {
        self.related.push((location, what.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Sort key: file, then position, then message, so output order never depends on the
    /// order in which checks happened to run.
    pub fn sort_key(&self) -> (String, u32, Severity, String) {
        let (file, pos) = match &self.location {
            Some(Location { file, span }) => (file.clone(), span.map_or(0, |s| s.start)),
            None => (String::new(), 0),
        };
        (file, pos, self.severity, self.message.clone())
    }
}

/// Gives the text of a project file by its relative path, for code frames.
pub trait SourceLookup {
    fn source_text(&self, file: &str) -> Option<&str>;
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: u32) -> (usize, usize) {
    let offset = (offset as usize).min(text.len());
    let offset = (0..=offset).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Byte offset of a 1-based line and column (in characters); clamped to the text.
pub fn offset_of(text: &str, line: usize, col: usize) -> u32 {
    let mut offset = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let within: usize = l.chars().take(col.saturating_sub(1)).map(char::len_utf8).sum();
            return (offset + within) as u32;
        }
        offset += l.len();
    }
    text.len() as u32
}

/// Renders one diagnostic as text: a header line, a code frame where a span is known, related
/// places as `file:line:col` notes, and a `help:` line.
pub fn render(diag: &Diagnostic, sources: &dyn SourceLookup) -> String {
    let mut out = String::new();
    let word = match diag.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let framed = diag.location.as_ref().and_then(|loc| {
        let span = loc.span?;
        let text = sources.source_text(&loc.file)?;
        Some((loc, span, text))
    });
    match framed {
        Some((loc, span, text)) => {
            let oxc = match diag.severity {
                Severity::Error => {
                    OxcDiagnostic::error(format!("{}[{}]: {}", word, diag.code, diag.message))
                }
                Severity::Warning => {
                    OxcDiagnostic::warn(format!("{}[{}]: {}", word, diag.code, diag.message))
                }
            };
            let labeled =
                LabeledSpan::new_primary_with_span(diag.label.clone(), span.start..span.end);
            let rendered = oxc
                .with_label(labeled)
                .render_with_source_code(NamedSource::new(&loc.file, text.to_string()));
            // oxc prefixes its own severity glyph; keep the frame, drop trailing blank lines.
            out.push_str(rendered.trim_end());
            out.push('\n');
        }
        None => {
            let _ = writeln!(out, "{}[{}]: {}", word, diag.code, diag.message);
            if let Some(loc) = &diag.location {
                let _ = writeln!(out, "  --> {}", loc.file);
            }
        }
    }
    for (loc, what) in &diag.related {
        let place = match (loc.span, sources.source_text(&loc.file)) {
            (Some(span), Some(text)) => {
                let (l, c) = line_col(text, span.start);
                format!("{}:{l}:{c}", loc.file)
            }
            _ => loc.file.clone(),
        };
        let _ = writeln!(out, "  note: {what}: {place}");
    }
    if let Some(help) = &diag.help {
        for (i, line) in help.lines().enumerate() {
            let prefix = if i == 0 { "  help: " } else { "        " };
            let _ = writeln!(out, "{prefix}{line}");
        }
    }
    out
}

/// Converts an oxc diagnostic (a syntax error, say) found in `file` into ours, keeping every label.
pub fn from_oxc(file: &str, diag: OxcDiagnostic, code: &'static str) -> Diagnostic {
    let inner = diag.inner_owned();
    let severity = match inner.severity {
        oxc_diagnostics::Severity::Error => Severity::Error,
        _ => Severity::Warning,
    };
    let mut labels = inner.labels.into_iter();
    let first = labels.next();
    let mut out = Diagnostic {
        severity,
        code,
        message: inner.message.to_string(),
        location: Some(Location {
            file: file.to_string(),
            span: first.as_ref().map(|l| Span::new(l.offset(), l.offset() + l.len())),
        }),
        label: first.and_then(|l| l.label().map(str::to_string)),
        related: Vec::new(),
        help: inner.help.map(|h| h.to_string()),
    };
    for l in labels {
        out.related.push((
            Location {
                file: file.to_string(),
                span: Some(Span::new(l.offset(), l.offset() + l.len())),
            },
            l.label().unwrap_or("see also").to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let text = "ab\nçd e";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        // 'ç' is two bytes; the space after "çd" is character 3 of line 2.
        assert_eq!(line_col(text, 6), (2, 3));
        assert_eq!(offset_of(text, 2, 3), 6);
        assert_eq!(offset_of(text, 9, 1), text.len() as u32);
    }
}
