//! The manifest reference names every key the router accepts: for each
//! section, the keys come from the router itself (its refusal of an unknown
//! key lists the known ones), and each must be in `docs/manifest.md` under
//! the section's heading, and in the README's table of sections.
//!
//! A new key fails this test until both documents name it.

use std::path::{Path, PathBuf};

use wisp::config::Manifest;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate sits in the repository root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const LISTEN: &str = "[server]\nlisten = [\"udp:127.0.0.1:5060\"]\n";
const PLUGIN: &str = "[[plugin]]\nname = \"a\"\npath = \"a.wasm\"\n";

/// The keys the router knows where `manifest` puts the unknown key
/// `wisp_doc_probe`, from its error ("expected one of `a`, `b`" or
/// "expected `a` or `b`").
fn known_keys(manifest: &str) -> Vec<String> {
    let err = match Manifest::parse(manifest, Path::new("probe.toml")) {
        Ok(_) => panic!("an unknown key was accepted:\n{manifest}"),
        Err(e) => e.to_string(),
    };
    let (_, expected) = err
        .split_once("expected ")
        .unwrap_or_else(|| panic!("no list of known keys in: {err}"));
    let keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "no keys in: {err}");
    keys
}

/// Every section of the manifest, with a manifest that puts an unknown key
/// in it.
fn sections() -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = [
        "usrloc",
        "tm",
        "rr",
        "auth",
        "subscriber",
        "tcp",
        "tls",
        "pike",
        "metrics",
        "acc",
        "rtpengine",
        "nat",
    ]
    .into_iter()
    .map(|s| (s, format!("{LISTEN}[{s}]\nwisp_doc_probe = 1\n{PLUGIN}")))
    .collect();
    v.push(("server", format!("{}wisp_doc_probe = 1\n{PLUGIN}", LISTEN)));
    v.push((
        "[htable]",
        format!("{LISTEN}[[htable]]\nname = \"t\"\nwisp_doc_probe = 1\n{PLUGIN}"),
    ));
    v.push(("[plugin]", format!("{LISTEN}{PLUGIN}wisp_doc_probe = 1\n")));
    v.push((
        "plugin.capabilities",
        format!("{LISTEN}{PLUGIN}[plugin.capabilities]\nwisp_doc_probe = 1\n"),
    ));
    v
}

/// The part of `doc` under the heading that names `` `[section]` ``, up to
/// the next heading.
fn doc_section<'a>(doc: &'a str, section: &str) -> &'a str {
    let heading = format!("`[{section}]`");
    let start = doc
        .lines()
        .position(|l| l.starts_with("## ") && l.contains(&heading))
        .unwrap_or_else(|| panic!("docs/manifest.md has no heading with {heading}"));
    let lines: Vec<&str> = doc.lines().collect();
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## "))
        .map_or(lines.len(), |i| start + 1 + i);
    let from = lines[..start].iter().map(|l| l.len() + 1).sum::<usize>();
    let to = lines[..end].iter().map(|l| l.len() + 1).sum::<usize>();
    &doc[from..to.min(doc.len())]
}

/// Whether `text` names `key` in code: `` `key` ``, a table name ending in
/// it (`` `[plugin.params]` ``) or a key after one (`` `[acc] db` ``).
fn names(text: &str, key: &str) -> bool {
    [format!("`{key}`"), format!(".{key}]`"), format!("] {key}`")]
        .iter()
        .any(|form| text.contains(form.as_str()))
}

#[test]
fn every_section_has_a_heading_in_the_reference() {
    let doc = read("docs/manifest.md");
    let top = known_keys(&format!("{LISTEN}[wisp_doc_probe]\n{PLUGIN}"));
    for section in top {
        let heading = match section.as_str() {
            "htable" | "plugin" => format!("`[[{section}]]`"),
            s => format!("`[{s}]`"),
        };
        assert!(
            doc.lines()
                .any(|l| l.starts_with("## ") && l.contains(&heading)),
            "docs/manifest.md has no section {heading}"
        );
    }
}

#[test]
fn every_key_is_in_the_reference_and_the_readme() {
    let doc = read("docs/manifest.md");
    let readme = read("README.md");
    let table = readme
        .split_once("## Manifest reference")
        .and_then(|(_, rest)| rest.split_once("\n## "))
        .map(|(t, _)| t)
        .expect("README has a Manifest reference section");
    let mut missing = Vec::new();
    for (section, manifest) in sections() {
        // `[plugin.capabilities]` keys are documented in the plugin's table.
        let in_doc = match section {
            "plugin.capabilities" => doc_section(&doc, "[plugin]"),
            s => doc_section(&doc, s),
        };
        for key in known_keys(&manifest) {
            if !names(in_doc, &key) {
                missing.push(format!("docs/manifest.md [{section}] {key}"));
            }
            if !names(table, &key) {
                missing.push(format!("README.md [{section}] {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys the router accepts that the documents do not name:\n{}",
        missing.join("\n")
    );
}
