//! `para`: the command-line entry point. Parses arguments, runs one command, and maps its outcome
//! to an exit code: 0 success, 1 findings (the project has errors), 2 usage errors (bad
//! arguments, no project where one was expected).

mod cli;
mod commands;
mod config;
mod logging;
mod output;
mod scaffold;

use clap::Parser;

/// Builds allocate and free millions of small values (syntax trees, JSON, build documents);
/// mimalloc does that markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cli::Cli::parse();
    // The commands that serve or run workflows log through `tracing`; the others print.
    let log = match &cli.command {
        cli::Command::Serve(args) => Some(&args.log),
        cli::Command::Dev(args) => Some(&args.serve.log),
        cli::Command::Run(args) => Some(&args.log),
        _ => None,
    };
    if let Some(log) = log
        && let Err(e) = logging::init(log.log_format)
    {
        output::error(e.to_string(), Some(config::DOCS));
        std::process::exit(commands::USAGE);
    }
    let code = match cli.command {
        cli::Command::Init(args) => commands::init::run(args),
        cli::Command::Build(args) => commands::build::run(args),
        cli::Command::New(cli::NewCommand::Integration(args)) => commands::new::integration(args),
        cli::Command::New(cli::NewCommand::Workflow(args)) => commands::new::workflow(args),
        cli::Command::New(cli::NewCommand::Event(args)) => commands::new::event(args),
        cli::Command::Install(args) => commands::install::run(args),
        cli::Command::Serve(args) => commands::serve::run(args),
        cli::Command::Dev(args) => commands::dev::run(args),
        cli::Command::Completions(args) => commands::completions::run(args),
        cli::Command::Keys(args) => commands::keys::run(args),
        cli::Command::Token(args) => commands::token::run(args),
        cli::Command::Runs(args) => commands::runs::run(args),
        cli::Command::Run(args) => commands::run::run(args),
        cli::Command::Secrets(args) => commands::secrets::run(args),
        cli::Command::Push(args) => commands::releases::push(args),
        cli::Command::Releases(args) => commands::releases::list(args),
        cli::Command::Rollback(args) => commands::releases::rollback(args),
    };
    std::process::exit(code);
}
