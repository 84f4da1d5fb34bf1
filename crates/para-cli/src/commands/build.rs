//! `para build`

use std::{io::Write as _, path::Path, time::Instant};

use para_compiler::{Options, compile};
use para_project::{Marker, Severity};

use crate::{cli::BuildArgs, commands, output};

pub fn run(args: BuildArgs) -> i32 {
    without_huge_pages();
    // The process ends right after: let the OS reclaim the build rather than freeing its
    // millions of small values one by one.
    let (code, build) = build(args, false);
    drop(Release::new(build, false));
    code
}

/// Turns transparent huge pages off for this process. A one-shot build touches most of its
/// memory once, and with huge pages the kernel zeroes 2 MiB at every first touch. On a virtual
/// machine whose host takes back the guest's free memory (virtio-balloon free page reporting,
/// as on the machines we measure on), that zeroing is what a build mostly waits for when it runs
/// after a pause of a few seconds, the usual case: 0.73–0.92 s with huge pages against
/// 0.33–0.37 s without on the 1,000-workflow benchmark project. Back-to-back builds lose about
/// 10 % instead. `para serve` and `para dev` keep the system's setting.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // Best effort: an old kernel without the flag just keeps huge pages.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}

/// Builds as `para build` does (findings and summary printed, the document written to
/// `args.out`) and also returns the build when there is one. `teardown`: free the JavaScript
/// runtimes afterwards, for a process that goes on (`para dev`).
pub fn build(args: BuildArgs, teardown: bool) -> (i32, Option<para_build::Build>) {
    let code = |code| (code, None);
    let started = Instant::now();
    let found = match &args.project {
        Some(dir) => para_project::root_at(dir),
        None => std::env::current_dir()
            .map_err(|source| para_project::ProjectError::Io { path: ".".into(), source })
            .and_then(|cwd| para_project::find_root(&cwd)),
    };
    let (root, marker) = match found {
        Ok(found) => found,
        Err(e) => {
            output::error(e.to_string(), e.hint().as_deref());
            return code(commands::USAGE);
        }
    };
    if marker == Marker::None {
        output::say(format!(
            "warning: {} has no .para/project.json (or paragon.json); building it because it has src/integrations/\nhint: run `para init --force {}` to add the marker without touching your files",
            root.display(),
            root.display()
        ));
    }
    let typechecked = if args.typecheck { commands::install::typecheck(&root) } else { Ok(()) };
    if typechecked == Err(commands::USAGE) {
        return code(commands::USAGE);
    }
    let project = match para_project::load(&root, marker) {
        Ok(project) => project,
        Err(e) => {
            output::error(e.to_string(), e.hint().as_deref());
            return code(commands::FINDINGS);
        }
    };
    let loaded = started.elapsed();
    let (direct, trace_direct) = match crate::config::env().compiler() {
        Ok(settings) => settings,
        Err(e) => {
            output::error(e.to_string(), Some(crate::config::DOCS));
            return (commands::USAGE, None);
        }
    };
    let result =
        compile(&project, &Options { teardown, direct, trace_direct, ..Options::default() });
    // Without teardown the process ends after this build: the OS reclaims the sources and the
    // document (see `Release`).
    let project = Release::new(project, teardown);
    if args.timings {
        output::say(format!(
            "  load       {:>8.1} ms ({} files)",
            loaded.as_secs_f64() * 1e3,
            project.files.len()
        ));
        for (stage, took) in &result.timings {
            output::say(format!("  {stage:<10} {:>8.1} ms", took.as_secs_f64() * 1e3));
        }
        output::say(format!(
            "  recorded   {} files directly, {} by the JavaScript engine",
            result.recorded.directly, result.recorded.by_engine
        ));
    }
    if !result.diagnostics.is_empty() {
        eprint!("{}", output::render_all(&result.diagnostics, &*project));
        eprintln!();
    }
    let errors = result.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = result.diagnostics.len() - errors;
    let Some(build) = result.build else {
        output::error(
            format!(
                "build failed: {}, {}",
                output::plural(errors, "error"),
                output::plural(warnings, "warning")
            ),
            Some(
                "fix the errors above and run `para build` again; the previous out/build.json was left as it was",
            ),
        );
        return code(commands::FINDINGS);
    };
    let document = Release::new(
        match result.document {
            Some(document) => document,
            None => {
                let mut document = para_build::Rendered::default();
                build.write_pretty(&mut document).expect("a build serialises");
                document
            }
        },
        teardown,
    );
    if args.out == Path::new("-") {
        let mut out = std::io::stdout().lock();
        if let Err(e) = document.write_to(&mut out).and_then(|()| out.flush()) {
            output::error(format!("cannot write the build to stdout: {e}"), None);
            return code(commands::FINDINGS);
        }
    } else {
        let path = root.join(&args.out);
        if let Err(e) = write_atomically(&path, &document) {
            output::error(format!("cannot write {}: {e}", path.display()), None);
            return code(commands::FINDINGS);
        }
        if !args.quiet {
            let workflows: usize = build.integrations.values().map(|i| i.workflows.len()).sum();
            output::say(format!(
                "built {}: {}, {}, {} → {} in {} ms{}",
                build.project.project_name.as_deref().unwrap_or("project"),
                output::plural(build.integrations.len(), "integration"),
                output::plural(workflows, "workflow"),
                output::plural(build.events.len(), "event"),
                path.strip_prefix(std::env::current_dir().unwrap_or_default())
                    .unwrap_or(&path)
                    .display(),
                started.elapsed().as_millis(),
                if warnings > 0 {
                    format!(" ({})", output::plural(warnings, "warning"))
                } else {
                    String::new()
                },
            ));
        }
    }
    (typechecked.err().unwrap_or(commands::SUCCESS), Some(build))
}

/// A value freed when it goes out of scope only with `teardown`; otherwise left for the OS to
/// reclaim when the process ends, which is much faster for a large build than freeing it.
struct Release<T> {
    value: Option<T>,
    teardown: bool,
}

impl<T> Release<T> {
    fn new(value: T, teardown: bool) -> Self {
        Release { value: Some(value), teardown }
    }
}

impl<T> std::ops::Deref for Release<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("a released value is only taken when dropped")
    }
}

impl<T> Drop for Release<T> {
    fn drop(&mut self) {
        if !self.teardown {
            std::mem::forget(self.value.take());
        }
    }
}

/// Writes through a temporary file and a rename, so a reader never sees half a build. Only a
/// regular file (or a new path) is replaced that way: a device such as `/dev/null`, a pipe or a
/// symlink is written in place, never replaced by a file.
fn write_atomically(path: &Path, document: &para_build::Rendered) -> std::io::Result<()> {
    let write = |target: &Path| document.write_to(&mut std::fs::File::create(target)?);
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => return write(path),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    write(Path::new(&tmp))?;
    std::fs::rename(&tmp, path)
}
