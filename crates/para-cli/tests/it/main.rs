//! The CLI's integration tests, one binary: linked once instead of once per file (the slow
//! part of building tests on a small CI machine), sharing one harness (`common`) for running
//! `para` and starting `para serve`/`para dev`. Run one part with
//! `cargo test -p para-cli --test it <module>::` (e.g. `portal_browser::`).

mod common;

mod cli;
mod configuration;
mod connect_e2e;
mod deploy;
mod dev;
mod doc_links;
mod engine_crash;
mod logging;
mod module_graph;
mod portal_browser;
mod push;
mod releases;
mod runs;
mod scaffold;
mod tidy;
mod webhook_crash;
mod wizard;
