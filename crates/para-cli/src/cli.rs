//! The command-line interface definition: every command, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "para",
    version,
    about = "Build and run Paragraph integration projects",
    long_about = "Paragraph: integrations written as TypeScript, compiled and run by one binary.\n\
                  Start with `para init my-project`, then `para build` inside it."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new project
    #[command(
        after_help = "Example:\n  para init my-integrations\n  cd my-integrations && para build"
    )]
    Init(InitArgs),
    /// Compile the project into out/build.json
    #[command(
        after_help = "Examples:\n  para build\n  para build --project ../shared/examples/taskflow\n  para build --out - | jq .integrations"
    )]
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to create the project in (created if missing)
    pub dir: PathBuf,
    /// Project name (defaults to the folder's name)
    #[arg(long)]
    pub name: Option<String>,
    /// Write into a non-empty folder; existing files are never overwritten
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Project root (default: found from the current folder upwards)
    #[arg(long, value_name = "DIR", env = "PARA_PROJECT")]
    pub project: Option<PathBuf>,
    /// Where to write the build, relative to the project root; `-` for stdout
    #[arg(long, value_name = "FILE", default_value = "out/build.json")]
    pub out: PathBuf,
    /// Print only findings, no summary
    #[arg(long, short)]
    pub quiet: bool,
    /// Print how long each stage took
    #[arg(long)]
    pub timings: bool,
}
