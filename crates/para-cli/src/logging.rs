//! The log of the commands that serve or run workflows (`para serve`, `para dev`, `para run`):
//! `tracing` events from the server, the engine and the credentials domain, written to stderr
//! as readable lines (`--log-format text`, the default) or one JSON object per line
//! (`--log-format json`), filtered by `PARA_LOG` (default `info`). A line logged while the
//! server handles a request carries the request's id (the `request` span); one logged while a
//! run executes, the run's id (the `run` span). Other commands print their own output
//! (`output.rs`) and log nothing.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::cli::LogFormat;
use crate::config::{self, ConfigError, EnvVars};

/// What is logged when `PARA_LOG` is unset.
const DEFAULT_LEVEL: &str = "info";

/// Our crates: a bare level in `PARA_LOG` applies to them; other crates (hyper, sqlx, rustls)
/// log warnings and errors only, unless named in directives.
const OURS: [&str; 9] = [
    "para",
    "para_server",
    "para_worker",
    "para_connect",
    "para_upstream",
    "para_store",
    "para_auth",
    "para_engine",
    "para_js",
];

/// `PARA_LOG`'s value as `tracing` directives: a bare level (`debug`) is that level for our
/// crates and `warn` for the rest; anything else is taken as directives.
fn directives(value: &str) -> String {
    if value.contains(['=', ',']) {
        return value.to_string();
    }
    std::iter::once("warn".to_string())
        .chain(OURS.iter().map(|krate| format!("{krate}={value}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Installs the process's subscriber; an unreadable `PARA_LOG` is an error naming it.
pub fn init(format: LogFormat) -> Result<(), ConfigError> {
    let value = config::env().log_filter().unwrap_or(DEFAULT_LEVEL);
    let directives = directives(value);
    let filter = EnvFilter::builder().parse(&directives).map_err(|e| {
        ConfigError(format!(
            "{} must be a level (error, warn, info, debug, trace) or tracing directives like `info,para_worker=debug`, not `{value}`: {e}",
            EnvVars::PARA_LOG
        ))
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(crate::output::color()).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .try_init(),
    };
    // Already installed (not in `para`, which installs it once): keep the first.
    let _ = installed;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_applies_to_our_crates_and_directives_stay() {
        let expanded = directives("debug");
        assert!(expanded.starts_with("warn,para=debug,para_server=debug"), "{expanded}");
        assert_eq!(directives("info,hyper=debug"), "info,hyper=debug");
        assert_eq!(directives("sqlx=info"), "sqlx=info");
        assert!(EnvFilter::builder().parse(directives("loud")).is_err());
    }
}
