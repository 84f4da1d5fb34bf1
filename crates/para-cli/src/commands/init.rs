//! `para init <dir>`

use crate::{cli::InitArgs, commands, output};

pub fn run(args: InitArgs) -> i32 {
    match para_project::scaffold::init(&args.dir, args.name.as_deref(), args.force) {
        Ok(report) => {
            for path in &report.written {
                output::say(format!("  created {}", args.dir.join(path).display()));
            }
            for path in &report.kept {
                output::say(format!("  kept    {} (already there)", args.dir.join(path).display()));
            }
            match commands::keys::ensure(&args.dir) {
                Ok(keys) => {
                    for path in &keys.created {
                        output::say(format!("  created {}", path.display()));
                    }
                    output::say(commands::keys::SECRET_NOTE);
                }
                Err(e) => {
                    output::error(e.message, e.hint.as_deref());
                    return commands::FINDINGS;
                }
            }
            output::say(format!(
                "project `{}` ({}) is ready\nnext: cd {} && para new integration   (then para new workflow, para install, para build)",
                report.project_name,
                report.project_id,
                args.dir.display()
            ));
            commands::SUCCESS
        }
        Err(e) => {
            output::error(e.to_string(), e.hint().as_deref());
            commands::USAGE
        }
    }
}
