//! `para`: the command-line entry point. Parses arguments, runs one command, and maps its outcome
//! to an exit code: 0 success, 1 findings (the project has errors), 2 usage errors (bad
//! arguments, no project where one was expected).

mod cli;
mod commands;
mod output;

use clap::Parser;

/// Builds allocate and free millions of small values (syntax trees, JSON, build documents);
/// mimalloc does that markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cli::Cli::parse();
    let code = match cli.command {
        cli::Command::Init(args) => commands::init::run(args),
        cli::Command::Build(args) => commands::build::run(args),
    };
    std::process::exit(code);
}
