//! The command-line interface definition: every command, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "para",
    version,
    about = "Build and run Paragraph integration projects",
    long_about = "Paragraph: integrations written as TypeScript, compiled and run by one binary.\n\
                  Start with `para init my-project`, then `para build` inside it.",
    after_help = "Examples:\n  para init my-project && cd my-project\n  para new integration salesforce\n  para new workflow --integration salesforce --trigger cron\n  para install && para build --typecheck\n\nSet NO_COLOR=1 for plain output."
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
        after_help = "Examples:\n  para build\n  para build --project ../shared/examples/taskflow\n  para build --out - | jq .integrations\n  para build --typecheck"
    )]
    Build(BuildArgs),
    /// Add an integration, a workflow or an event to the project
    #[command(
        subcommand,
        after_help = "Examples:\n  para new integration salesforce\n  para new event \"Task Created\"\n  para new workflow --integration salesforce --trigger event"
    )]
    New(NewCommand),
    /// Write TypeScript types for @useparagon/* into node_modules/ (for editors and tsc; offline)
    #[command(
        after_help = "Example:\n  para install && npx tsc --noEmit\n\nRun it again after adding an integration."
    )]
    Install(InstallArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  para completions bash > ~/.local/share/bash-completion/completions/para\n  para completions zsh > \"${fpath[1]}/_para\"\n  para completions fish > ~/.config/fish/completions/para.fish"
    )]
    Completions(CompletionsArgs),
}

#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// Add an integration: one from the catalog, or a custom one
    #[command(
        after_help = "Examples:\n  para new integration              (pick from the catalog interactively)\n  para new integration salesforce\n  para new integration --custom \"GitHub Enterprise\" --auth oauth"
    )]
    Integration(NewIntegrationArgs),
    /// Add a workflow to an integration (and to its workflowDisplayOrder)
    #[command(
        after_help = "Examples:\n  para new workflow                 (asks for what is missing)\n  para new workflow --integration slack --name \"Daily digest\" --trigger cron\n  para new workflow --integration salesforce --trigger recordCreated"
    )]
    Workflow(NewWorkflowArgs),
    /// Add an App Event (src/events/<name>.ts)
    #[command(
        after_help = "Example:\n  para new event \"Task Created\"    (writes src/events/taskCreated.ts)"
    )]
    Event(NewEventArgs),
}

#[derive(Debug, Args)]
pub struct ProjectArg {
    /// Project root (default: found from the current folder upwards)
    #[arg(long, value_name = "DIR", env = "PARA_PROJECT", global = true)]
    pub project: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NewIntegrationArgs {
    /// Catalog key (`salesforce`, `googleCalendar`, …); omit to choose interactively
    #[arg(conflicts_with = "custom")]
    pub key: Option<String>,
    /// Make a custom integration with this display name (folder `custom.<slug>`)
    #[arg(long, value_name = "DISPLAY NAME")]
    pub custom: Option<String>,
    /// How the custom integration authenticates
    #[arg(long, value_enum, requires = "custom")]
    pub auth: Option<crate::scaffold::CustomAuth>,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct NewWorkflowArgs {
    /// The integration's folder name (`slack`, `custom.acmecrm`)
    #[arg(long, short)]
    pub integration: Option<String>,
    /// The workflow's display name (the file is named after it)
    #[arg(long, short)]
    pub name: Option<String>,
    /// event, endpoint, cron, integration-enabled, or a catalog trigger of the integration
    #[arg(long, short)]
    pub trigger: Option<String>,
    /// For `--trigger event`: the event's file name under src/events/ (default: the only one)
    #[arg(long)]
    pub event: Option<String>,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct NewEventArgs {
    /// The event's name as your app sends it (`Task Created`)
    pub name: Option<String>,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    /// Type-check with `tsc --noEmit` first (TypeScript from the project, PARA_TSC or PATH)
    #[arg(long)]
    pub typecheck: bool,
}
