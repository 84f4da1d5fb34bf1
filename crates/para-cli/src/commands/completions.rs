//! `para completions <shell>`: the completion script on stdout.

use clap::CommandFactory as _;

use crate::{cli::CompletionsArgs, commands};

pub fn run(args: CompletionsArgs) -> i32 {
    let mut command = crate::cli::Cli::command();
    clap_complete::generate(args.shell, &mut command, "para", &mut std::io::stdout());
    commands::SUCCESS
}
