//! `docs/FEATURES.md` says which Kamailio features Wisp has. A row marked
//! `done` must name the test that shows it, and every test the file names
//! must exist: this test parses the tables and fails otherwise.
//!
//! A table is a run of lines starting with `|` whose header's last column is
//! `Status`. Each row's last cell starts with `done`, `partial: <what is
//! missing>` or `missing`. A test is named in backticks as
//! `path/to/file.rs::test_name` (path from the repository root); the file
//! must hold `fn test_name(` under a `#[test]`-like attribute. A plugin is
//! named as `plugins/<dir>`, which must exist. No router is started.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

const DOC_PATH: &str = "docs/FEATURES.md";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate sits in the repository root")
        .to_path_buf()
}

/// The cells of a table row, split on `|` but not on `\|`.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut prev = '\0';
    for c in inner.chars() {
        if c == '|' && prev != '\\' {
            out.push(cell.trim().to_string());
            cell.clear();
        } else {
            cell.push(c);
        }
        prev = c;
    }
    out.push(cell.trim().to_string());
    out
}

/// The backticked spans of a cell.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// `path.rs::name` when the span names a test.
fn test_ref(span: &str) -> Option<(&str, &str)> {
    let (path, name) = span.split_once("::")?;
    let path_ok = path.ends_with(".rs")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c));
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (path_ok && name_ok).then_some((path, name))
}

/// `plugins/<dir>` when the span names a plugin.
fn plugin_ref(span: &str) -> Option<&str> {
    let dir = span.strip_prefix("plugins/")?;
    (!dir.is_empty() && dir.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')).then_some(span)
}

/// True when `source` defines `fn name(` as a test: the attributes and
/// comments right above it include one naming `test`.
fn defines_test(source: &str, name: &str) -> bool {
    let lines: Vec<&str> = source.lines().collect();
    let decl = format!("fn {name}(");
    lines.iter().enumerate().any(|(i, line)| {
        let l = line.trim_start();
        let is_decl = l.starts_with(&decl) || l.starts_with(&format!("async {decl}"));
        is_decl
            && lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim())
                .take_while(|l| l.starts_with("#[") || l.starts_with("//"))
                .any(|l| l.starts_with("#[") && l.contains("test"))
    })
}

/// Everything wrong with `doc`, one line each, file paths read under `root`.
fn problems(doc: &str, root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut sources: HashMap<String, Option<String>> = HashMap::new();
    let mut in_table = false;
    let mut rows = 0usize;
    for (n, line) in doc.lines().enumerate() {
        let at = n + 1;
        if !line.trim_start().starts_with('|') {
            in_table = false;
            continue;
        }
        let row = cells(line);
        if !in_table {
            // The header row.
            in_table = true;
            if row.last().map(String::as_str) != Some("Status") {
                found.push(format!(
                    "line {at}: a table whose last column is not `Status`"
                ));
            }
            continue;
        }
        if row
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|c| "-: ".contains(c)))
        {
            continue; // the separator row
        }
        rows += 1;
        let status = row.last().map(String::as_str).unwrap_or("");
        let done = status == "done";
        let ok_status = done
            || status.starts_with("missing")
            || status
                .strip_prefix("partial:")
                .is_some_and(|why| !why.trim().is_empty());
        if !ok_status {
            found.push(format!(
                "line {at}: status {status:?} is not `done`, `partial: <what is missing>` or `missing`"
            ));
        }
        let mut named_tests = 0;
        for span in row.iter().flat_map(|c| code_spans(c)) {
            if let Some(dir) = plugin_ref(span) {
                if !root.join(dir).join("Cargo.toml").is_file() {
                    found.push(format!("line {at}: `{dir}` is not a plugin directory"));
                }
                continue;
            }
            let Some((path, name)) = test_ref(span) else {
                continue;
            };
            named_tests += 1;
            let source = sources
                .entry(path.to_string())
                .or_insert_with(|| std::fs::read_to_string(root.join(path)).ok());
            match source {
                None => found.push(format!("line {at}: `{path}` does not exist")),
                Some(src) if !defines_test(src, name) => {
                    found.push(format!("line {at}: `{path}` has no test `fn {name}`"))
                }
                Some(_) => {}
            }
        }
        if done && named_tests == 0 {
            found.push(format!("line {at}: a `done` row that names no test"));
        }
    }
    if rows == 0 {
        found.push("no feature rows found".into());
    }
    found
}

#[test]
fn every_done_feature_names_a_test_that_exists() {
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join(DOC_PATH)).expect("docs/FEATURES.md is readable");
    let found = problems(&doc, &root);
    assert!(
        found.is_empty(),
        "{DOC_PATH} is out of step with the tests:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_a_missing_test_a_done_row_without_one_and_a_bad_status() {
    let root = repo_root();
    let doc = "\
| Kamailio | Wisp | Shown by | Status |
|---|---|---|---|
| `a` | `x` | `host/tests/features_doc.rs::every_done_feature_names_a_test_that_exists` | done |
| `b` | `x` | `host/tests/features_doc.rs::repo_root` | done |
| `c` | `x` | `host/tests/features_doc.rs::no_such_test` | partial: why |
| `d` | `x` | `host/tests/nope.rs::a_test` | missing |
| `e \\| f` | `x` | `plugins/default` | done |
| `g` | `x` | `plugins/no-such-plugin` | partial |
| `h` | `x` | — | maybe |
";
    let found = problems(doc, &root);
    let on = |line: usize| {
        found
            .iter()
            .filter(|p| p.starts_with(&format!("line {line}:")))
            .count()
    };
    assert_eq!(on(3), 0, "a real test is accepted: {found:?}");
    assert_eq!(on(4), 1, "a function that is no test is refused: {found:?}");
    assert_eq!(on(5), 1, "an unknown test is refused: {found:?}");
    assert_eq!(on(6), 1, "an unknown file is refused: {found:?}");
    assert_eq!(
        on(7),
        1,
        "a done row needs a test even with a plugin: {found:?}"
    );
    assert_eq!(on(8), 2, "an unknown plugin and a bare partial: {found:?}");
    assert_eq!(on(9), 1, "an unknown status: {found:?}");
    assert_eq!(found.len(), 7, "{found:?}");
}
