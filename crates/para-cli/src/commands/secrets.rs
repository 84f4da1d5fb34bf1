//! `para secrets set|list|rm`: the project's environment secrets, sealed in
//! `.para/secrets.json` (see `para_auth::env_secrets`).

use std::io::Read as _;

use para_auth::SecretKey;
use para_auth::env_secrets;

use crate::cli::{SecretsAction, SecretsArgs};
use crate::commands::serve::{BUILD_FILE, read_build};
use crate::{commands, output};

pub fn run(args: SecretsArgs) -> i32 {
    let root = match commands::project_root(args.project.project.as_deref()) {
        Ok(root) => root,
        Err(code) => return code,
    };
    let key = || {
        SecretKey::from_value_or_dev(crate::config::env().secret_key(), &root).map_err(|e| {
            output::error(e.to_string(), e.hint().as_deref());
            commands::USAGE
        })
    };
    let failed = |e: env_secrets::EnvSecretError| {
        let usage = matches!(e, env_secrets::EnvSecretError::BadName(_));
        output::error(e.to_string(), None);
        if usage { commands::USAGE } else { commands::FINDINGS }
    };
    match args.action {
        SecretsAction::Set { name, value } => {
            let key = match key() {
                Ok(key) => key,
                Err(code) => return code,
            };
            let value = match value {
                Some(v) => v,
                None => {
                    let mut text = String::new();
                    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                        output::error(format!("cannot read the value from stdin: {e}"), None);
                        return commands::USAGE;
                    }
                    text.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            match env_secrets::set(&root, &key, &name, &value) {
                Ok(()) => {
                    output::say(format!(
                        "stored {name} (sealed in {})",
                        env_secrets::ENV_SECRETS_FILE
                    ));
                    commands::SUCCESS
                }
                Err(e) => failed(e),
            }
        }
        SecretsAction::Rm { name } => match env_secrets::remove(&root, &name) {
            Ok(true) => {
                output::say(format!("removed {name}"));
                commands::SUCCESS
            }
            Ok(false) => {
                output::error(
                    format!("no secret {name} is stored"),
                    Some("see them with `para secrets list`"),
                );
                commands::FINDINGS
            }
            Err(e) => failed(e),
        },
        SecretsAction::List => {
            let stored = match env_secrets::names(&root) {
                Ok(names) => names,
                Err(e) => return failed(e),
            };
            let used = read_build(&root.join(BUILD_FILE)).map(|b| b.secrets).unwrap_or_default();
            for name in &stored {
                let note = if used.contains(name) { "" } else { "  (not used by the build)" };
                println!("{name}{note}");
            }
            let mut missing = 0;
            for name in used.iter().filter(|n| !stored.contains(n)) {
                if crate::config::env().env_secrets().get(name).is_some() {
                    println!("{name}  (from the environment)");
                } else {
                    missing += 1;
                    println!("{name}  MISSING: used by the build, not set");
                }
            }
            if stored.is_empty() && used.is_empty() {
                output::say("no secrets stored, none used by the build");
            }
            if missing > 0 {
                output::say(format!(
                    "hint: para secrets set <NAME> (reads the value from stdin); {missing} missing"
                ));
            }
            commands::SUCCESS
        }
    }
}
