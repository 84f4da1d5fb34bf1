//! `para token`: prints a user token (RS256 JWT: `sub`, `iat`, `exp`, optional `meta` and
//! `aud`) signed with the project's development private key, for trying the server by hand.

use para_auth::{keys, tokens};

use crate::cli::TokenArgs;
use crate::{commands, output};

pub fn run(args: TokenArgs) -> i32 {
    if args.user.trim().is_empty() {
        output::error("--user must not be empty", Some("pass the user id, e.g. --user user-123"));
        return commands::USAGE;
    }
    let ttl = match tokens::parse_ttl(&args.ttl) {
        Ok(ttl) => ttl,
        Err(reason) => {
            output::error(
                format!("--ttl: {reason}"),
                Some("write a number and one unit: 30s, 15m, 1h or 7d (at most 365d)"),
            );
            return commands::USAGE;
        }
    };
    let meta = match args.meta.as_deref().map(parse_meta).transpose() {
        Ok(meta) => meta,
        Err(message) => {
            output::error(
                message,
                Some(
                    r#"pass a JSON object in single quotes, e.g. --meta '{"email":"ada@example.com","plan":"pro"}'"#,
                ),
            );
            return commands::USAGE;
        }
    };
    let root = match commands::project_root(args.project.project.as_deref()) {
        Ok(root) => root,
        Err(code) => return code,
    };
    let private_pem = match keys::load_private_key(&root) {
        Ok(pem) => pem,
        Err(e) => {
            let code = match e {
                keys::KeyError::NoPrivateKey { .. } => commands::USAGE,
                _ => commands::FINDINGS,
            };
            output::error(e.to_string(), e.hint().as_deref());
            return code;
        }
    };
    let claims = tokens::Claims { sub: args.user, meta, ttl, aud: args.aud };
    match tokens::sign(&private_pem, &claims) {
        Ok(token) => {
            println!("{token}");
            commands::SUCCESS
        }
        Err(e) => {
            output::error(
                e.to_string(),
                Some(
                    "the private key file looks damaged; move .para/keys/ away and run `para keys`",
                ),
            );
            commands::FINDINGS
        }
    }
}

/// `--meta`: a JSON object.
fn parse_meta(text: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err("--meta must be a JSON object (`{...}`)".into()),
        Err(e) => Err(format!("--meta is not valid JSON: {e}")),
    }
}
