//! Embeds every `integrations/<key>.toml` into the binary: writes a sorted table of
//! `(key, include_str!(file))` that `lib.rs` includes. Parsing happens on first lookup.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read at run time, not with `env!`: a build script compiled in another checkout that shares
    // the target directory must still read this checkout's catalog.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("integrations");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("crates/para-catalog/integrations exists")
        .map(|entry| entry.expect("readable catalog folder").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| {
            println!("cargo::rerun-if-changed={}", path.display());
            let key = path.file_stem().unwrap().to_string_lossy().into_owned();
            (key, path.display().to_string())
        })
        .collect();
    files.sort();
    let mut out = String::from("pub(crate) static FILES: &[(&str, &str)] = &[\n");
    for (key, path) in &files {
        writeln!(out, "    ({key:?}, include_str!({path:?})),").unwrap();
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").unwrap()).join("catalog_files.rs");
    std::fs::write(target, out).unwrap();
}
