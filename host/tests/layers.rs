//! The router crate's layers depend downward only: a module under
//! `host/src/<layer>` may name `crate::<other>` only when `<other>` comes
//! after `<layer>` in [`wisp::LAYERS`] (the order `lib.rs` documents).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/tm/relay.rs` ->
/// `tm`, `src/router.rs` -> `router`); none for the crate root and the binary.
fn layer_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The `crate::<module>` names a source text uses, outside `//` comments.
fn uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

/// `(file, layer it is in, layer above it that it uses)` for every upward use.
fn upward_uses(src: &Path) -> Vec<(PathBuf, String, String)> {
    let rank = |m: &str| wisp::LAYERS.iter().position(|l| *l == m);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut bad = Vec::new();
    for file in files {
        let Some(layer) = layer_of(src, &file) else {
            continue;
        };
        let Some(own) = rank(&layer) else {
            bad.push((file, layer, "(not in LAYERS)".to_owned()));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for used in uses(&text) {
            if rank(&used).is_some_and(|r| r < own) {
                bad.push((file.clone(), layer.clone(), used));
            }
        }
    }
    bad
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = upward_uses(&src);
    assert!(
        bad.is_empty(),
        "modules that reach up (file, its layer, the layer above it that it uses):\n{}",
        bad.iter()
            .map(|(f, l, u)| format!("  {} ({l}) uses crate::{u}", f.display()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_place_in_the_order() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .collect();
    let ordered: BTreeSet<&str> = wisp::LAYERS.iter().copied().collect();
    assert_eq!(declared, ordered, "lib.rs modules and LAYERS differ");
}

#[test]
fn the_check_sees_an_upward_use() {
    // The check itself: a file of `stateless` naming `crate::tm` is caught,
    // one naming `crate::transport` is not, and a comment does not count.
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir(src.join("stateless")).expect("mkdir");
    std::fs::write(
        src.join("stateless/up.rs"),
        "use crate::transport::Source;\n// see crate::router\nfn f(t: &crate::tm::Tm) {}\n",
    )
    .expect("write");
    let bad = upward_uses(src);
    let used: Vec<&str> = bad.iter().map(|(_, _, u)| u.as_str()).collect();
    assert_eq!(used, ["tm"]);
}
