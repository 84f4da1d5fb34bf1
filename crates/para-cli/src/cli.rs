//! The command-line interface definition: every command, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::EnvVars;

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
        after_help = "Examples:\n  para build\n  para build --project examples/taskflow\n  para build --out - | jq .integrations\n  para build --typecheck"
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
    /// Serve the built project: Connect API, OAuth, proxy, Connect Portal
    #[command(
        after_help = "Examples:\n  para serve\n  para serve --port 8080 --database postgres://para:secret@localhost/para\n  PARA_OAUTH_SALESFORCE_CLIENT_ID=… PARA_OAUTH_SALESFORCE_CLIENT_SECRET=… para serve"
    )]
    Serve(ServeArgs),
    /// Build, serve, and rebuild on every change: prints the Connect Portal URL and a user token
    #[command(
        after_help = "Examples:\n  para dev\n  para dev --user ada --port 8080\n  para dev --port 0          (any free port; the address is printed)\n\nWrites the development keys if missing, builds, serves like `para serve`, and prints\n(on stdout) the Connect Portal URL with a 12-hour token for --user, and the token itself.\nThen watches src/, .para/project.json and paragon.json: each change is rebuilt at once and\nserved without a restart; a build with errors is reported and the last good build stays\nserved. Stop with Ctrl-C."
    )]
    Dev(DevArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  para completions bash > ~/.local/share/bash-completion/completions/para\n  para completions zsh > \"${fpath[1]}/_para\"\n  para completions fish > ~/.config/fish/completions/para.fish"
    )]
    Completions(CompletionsArgs),
    /// Write the development keys: an RS256 key pair for user tokens and the secret-at-rest key
    #[command(
        after_help = "Examples:\n  para keys\n  para keys --project ../my-integrations\n\nWrites .para/keys/private.pem (secret, git-ignored), .para/keys/public.pem and\n.para/secret.key (secret, git-ignored) when missing; existing keys are never replaced.\nThe server accepts tokens signed by any .para/keys/*.pem public key (keep an old one\nthere while rotating) and by PARA_USER_TOKEN_PUBLIC_KEY; PARA_SECRET_KEY (base64 of\n32 bytes) replaces .para/secret.key."
    )]
    Keys(KeysArgs),
    /// Environment secrets of workflows (`context.getEnvironmentSecret('NAME')`), stored sealed
    #[command(
        after_help = "Examples:\n  para secrets set TASKFLOW_API_KEY          (reads the value from stdin: no shell history)\n  para secrets set TASKFLOW_API_KEY tf-123   \n  para secrets list\n  para secrets rm TASKFLOW_API_KEY\n\nValues are sealed with the project's secret key (PARA_SECRET_KEY or .para/secret.key) in\n.para/secrets.json (mode 0600, git-ignored). The server reads them when the file changes;\nan environment variable PARA_SECRET_<NAME> wins over the file (a bare <NAME> is never read)."
    )]
    Secrets(SecretsArgs),
    /// Print a user token (RS256 JWT) signed with the development private key
    #[command(
        after_help = "Examples:\n  para token --user user-123\n  para token --user user-123 --meta '{\"email\":\"ada@example.com\",\"plan\":\"pro\"}' --ttl 7d\n  curl -H \"Authorization: Bearer $(para token --user u1)\" http://localhost:8080/projects/<id>/sdk/me\n\nThe token goes to stdout; run `para keys` first in projects made before it existed."
    )]
    Token(TokenArgs),
    /// List workflow runs (newest last), follow them, or show one run's steps
    #[command(
        after_help = "Examples:\n  para runs\n  para runs --workflow \"Push new tasks\" --status failed --limit 50\n  para runs --user ann --follow          (prints new runs and status changes until Ctrl-C)\n  para runs 3f2a9c1e-…                    (the run's steps: input, output, error, timing)\n  para runs --database postgres://para:secret@db/para\n\nReads the database `para serve` writes (default .para/para.db; reading while the\nserver runs is fine). Lines: start time (UTC), status, workflow, user, duration, run id."
    )]
    Runs(RunsArgs),
    /// Build the project and upload it to a running server as a new release, made current
    #[command(
        after_help = "Examples:\n  PARA_DEPLOY_KEY=… para push --server https://para.example.com --message \"Slack digest\"\n  para push --project examples/taskflow          (the server from PARA_SERVER_URL, else http://127.0.0.1:7433)\n\nBuilds exactly like `para build` (errors stop it; exit code 1), then uploads out/build.json\nwith the deploy key of PARA_DEPLOY_KEY (the server's own PARA_DEPLOY_KEY). The release records\nthe message, the author (git config user.name, else $USER) and the git commit (`-dirty`\nwith uncommitted changes). Every server on the database switches to it within a second;\nan identical build is not stored twice: its release is made current again."
    )]
    Push(PushArgs),
    /// List the server's releases, newest first (`*` marks the current one)
    #[command(
        after_help = "Examples:\n  para releases --server https://para.example.com\n  para releases --json | jq '.releases[0]'\n\nColumns: number, current (*), created (UTC), author, commit, message. Needs PARA_DEPLOY_KEY."
    )]
    Releases(ReleasesArgs),
    /// Make an earlier (or later) release current again
    #[command(
        after_help = "Examples:\n  para rollback 2\n  para rollback 2 --server https://para.example.com\n\nRuns already started finish on the release they started on; new runs use release NUMBER.\nRoll forward the same way (`para releases` lists the numbers). Needs PARA_DEPLOY_KEY."
    )]
    Rollback(RollbackArgs),
    /// Run one workflow now, locally, and print each step as it happens
    #[command(
        after_help = "Examples:\n  para run \"Push new tasks to Salesforce\" --user ann --payload '{\"title\": \"Ship\", \"priority\": 3, \"assigneeEmails\": [\"a@x.io\"]}'\n  para run 1c9e7f3d-8a52-4b06-9e1f-5d6c7b8a9f70 --user ann --payload '{\"title\": \"Ship it\"}'\n\nUses the dev database (.para/para.db) and the user's connected accounts and settings there\n(connect them with `para dev`). The payload is the trigger's output: the event's payload, or\nfor a request-triggered workflow the request body. Exit code 0 when the run succeeds."
    )]
    Run(RunArgs),
}

/// The server `para push`, `para releases` and `para rollback` talk to.
#[derive(Debug, Args)]
pub struct ServerArg {
    /// The server's URL (its deploy API is under /deploy/)
    #[arg(long, value_name = "URL", env = EnvVars::PARA_SERVER_URL, default_value = "http://127.0.0.1:7433")]
    pub server: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// What this release changes (shown by `para releases`)
    #[arg(long, short, value_name = "TEXT")]
    pub message: Option<String>,
    #[command(flatten)]
    pub server: ServerArg,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// Print the server's answer as JSON (`{"current": …, "releases": […]}`) instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The release to make current (`para releases` lists them)
    #[arg(value_name = "NUMBER")]
    pub number: u64,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id (the token's `sub`)
    #[arg(long, short, value_name = "ID")]
    pub user: String,
    /// User metadata, a JSON object (the token's `meta`)
    #[arg(long, value_name = "JSON")]
    pub meta: Option<String>,
    /// How long the token is valid: 30s, 15m, 1h, 7d
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: String,
    /// Audience (`aud`), for servers configured to require one
    #[arg(long, value_name = "AUD")]
    pub aud: Option<String>,
    #[command(flatten)]
    pub project: ProjectArg,
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
    #[arg(long, value_name = "DIR", env = EnvVars::PARA_PROJECT, global = true)]
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
pub struct ServeArgs {
    /// Port to listen on (0: any free port)
    #[arg(long, default_value_t = 7433, env = EnvVars::PARA_PORT)]
    pub port: u16,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1", env = EnvVars::PARA_HOST)]
    pub host: std::net::IpAddr,
    /// Database URL: sqlite://FILE (default .para/para.db) or postgres://…
    #[arg(long, value_name = "URL", env = EnvVars::PARA_DATABASE_URL)]
    pub database: Option<String>,
    /// The URL users reach this server at (OAuth redirects are built from it)
    #[arg(long, value_name = "URL", env = EnvVars::PARA_PUBLIC_URL)]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub project: ProjectArg,
}

/// How the server and the engine log (docs/configuration.md § Logging).
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log lines as text for people, or as JSON objects one per line (which PARA_LOG filters)
    #[arg(long, value_name = "FORMAT", default_value = "text", env = EnvVars::PARA_LOG_FORMAT)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event
    Text,
    /// One JSON object per line, with the request id or run id of its span
    Json,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// The user id of the printed token and portal URL (the token's `sub`)
    #[arg(long, short, value_name = "ID", default_value = "dev-user")]
    pub user: String,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub action: SecretsAction,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Store a secret (replacing one of that name)
    Set {
        /// Letters, digits and `_`, as the workflows name it
        name: String,
        /// The value; omitted: read from stdin
        value: Option<String>,
    },
    /// The stored secrets, and the ones the build uses that are missing
    List,
    /// Remove a secret
    Rm { name: String },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow: its id, or its name
    #[arg(value_name = "WORKFLOW")]
    pub workflow: String,
    /// The connected user to run it for
    #[arg(long, short, value_name = "ID")]
    pub user: String,
    /// The trigger's output as JSON (an event's payload, a request's body)
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub payload: String,
    /// Database URL: sqlite://FILE (default .para/para.db) or postgres://…
    #[arg(long, value_name = "URL", env = EnvVars::PARA_DATABASE_URL)]
    pub database: Option<String>,
    /// Print every output whole, as indented JSON
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// A run id: show that run's steps instead of the list
    #[arg(value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Database URL: sqlite://FILE (default .para/para.db) or postgres://…
    #[arg(long, value_name = "URL", env = EnvVars::PARA_DATABASE_URL)]
    pub database: Option<String>,
    /// Only runs of this workflow (its id, or its name in out/build.json)
    #[arg(long, value_name = "ID|NAME")]
    pub workflow: Option<String>,
    /// Only runs of this connected user
    #[arg(long, value_name = "ID")]
    pub user: Option<String>,
    /// Only runs with this status: queued, running, waiting, succeeded or failed
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// How many of the newest runs to list
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: i64,
    /// Keep printing new runs and status changes as they happen (until Ctrl-C)
    #[arg(long, short)]
    pub follow: bool,
    /// With RUN_ID: print every input and output whole, as indented JSON
    #[arg(long)]
    pub full: bool,
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
    #[arg(long, value_name = "DIR", env = EnvVars::PARA_PROJECT)]
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
