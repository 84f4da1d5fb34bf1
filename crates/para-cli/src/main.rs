//! `para`: the command-line entry point. Parses arguments, runs one command, and maps its outcome
//! to an exit code: 0 success, 1 findings (the project has errors), 2 usage errors (bad
//! arguments, no project where one was expected).

mod cli;
mod commands;
mod output;
mod scaffold;

use clap::Parser;

/// Builds allocate and free millions of small values (syntax trees, JSON, build documents);
/// mimalloc does that markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `para build` ends right after building, so handing freed memory back to the OS is wasted
/// work for it: mimalloc does so after a delay while the build runs and for all of it at exit
/// (hundreds of `madvise` calls, each splitting a huge page). Turn that off for this process.
fn keep_freed_memory() {
    // `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (the crate does not export the name);
    // -1 means "never purge". Cargo.lock pins the mimalloc version this index belongs to.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: mi_option_set only stores the option's value (atomically); mimalloc reads it on
    // each purge decision, and any thread may call it at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1)
    };
}

fn main() {
    let cli = cli::Cli::parse();
    if matches!(cli.command, cli::Command::Build(_)) {
        keep_freed_memory();
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
    };
    std::process::exit(code);
}
