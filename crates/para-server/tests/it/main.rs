//! The server's integration tests, one test binary (one link instead of one per file, as in
//! ripgrep and uv): each module below is one area, and `common` is the harness they share — a
//! server started in-process on a loopback port, development keys and user tokens.
//!
//! All the tests share one process: the server reads no environment variable (`para` reads
//! them and passes the settings in), so every setting is per server: each [`common::TestServer`] counts its own
//! connections against its own limits (`connections.rs`), and installing rustls's provider
//! again for the next server is a no-op (`security.rs`, `proxy.rs`).

mod common;

mod alerts;
mod connect_flows;
mod connections;
mod cors;
mod deploy;
mod engine;
mod history;
mod install_flow;
mod openapi;
mod portal;
mod portal_ui;
mod proxy;
mod sdk_settings;
mod sdk_surface;
mod security;
mod subscriptions;
mod telemetry;
mod triggers_api;
mod webhooks;
