//! `para keys`: the development keys of a project — the RS256 key pair user tokens are signed
//! and verified with (`.para/keys/`) and the key that encrypts secrets at rest
//! (`.para/secret.key`). Also run by `para init`.

use std::path::{Path, PathBuf};

use para_auth::{keys, secrets};

use crate::cli::KeysArgs;
use crate::{commands, output};

pub fn run(args: KeysArgs) -> i32 {
    let root = match commands::project_root(args.project.project.as_deref()) {
        Ok(root) => root,
        Err(code) => return code,
    };
    match ensure(&root) {
        Ok(written) => {
            for path in [&written.private_key, &written.public_key, &written.secret_key] {
                if written.created.contains(path) {
                    output::say(format!("  created {}", path.display()));
                } else {
                    output::say(format!("  kept    {} (already there)", path.display()));
                }
            }
            if written.gitignore_updated {
                output::say(format!(
                    "  updated {} (ignores {} and {})",
                    root.join(".gitignore").display(),
                    keys::PRIVATE_KEY_FILE,
                    secrets::DEV_SECRET_KEY_FILE
                ));
            }
            output::say(SECRET_NOTE);
            output::say(
                "next: para token --user <id>   (a user token signed with the private key)",
            );
            commands::SUCCESS
        }
        Err(e) => {
            output::error(e.message, e.hint.as_deref());
            commands::FINDINGS
        }
    }
}

/// What `para keys` and `para init` tell about the secret files.
pub const SECRET_NOTE: &str = "\
the private key and the secret key must stay secret: both are git-ignored, never commit them.
The server only needs the public key (.para/keys/*.pem, or PARA_USER_TOKEN_PUBLIC_KEY);
in production set PARA_SECRET_KEY instead of using .para/secret.key.";

/// The key files of a project and which of them this run wrote.
pub struct Written {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub secret_key: PathBuf,
    pub created: Vec<PathBuf>,
    pub gitignore_updated: bool,
}

/// A failure, ready to print.
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
}

/// Writes whichever development keys are missing; never replaces one.
pub fn ensure(root: &Path) -> Result<Written, Failure> {
    let pair = keys::generate_dev_keys(root)
        .map_err(|e| Failure { message: e.to_string(), hint: e.hint() })?;
    let secret = secrets::ensure_dev_key_file(root)
        .map_err(|e| Failure { message: e.to_string(), hint: e.hint() })?;
    let mut created = pair.created;
    if secret.created {
        created.push(secret.path.clone());
    }
    Ok(Written {
        private_key: pair.private_key,
        public_key: pair.public_key,
        secret_key: secret.path,
        created,
        gitignore_updated: pair.gitignore_updated || secret.gitignore_updated,
    })
}
