//! `[[plugin]]`: the chain of routing components, their limits and grants.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Invalid, KeyPath};

/// `[[plugin]]`: one routing component and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Required: letters, digits, `-` and `_`, unique in the chain.
    pub name: String,
    /// Required: the component (.wasm), relative to the manifest's directory.
    pub path: PathBuf,
    /// Budget of one route call in milliseconds, 1..=10000; default 100.
    pub deadline_ms: u64,
    /// Linear memory cap in MiB, 1..=4096; default 32.
    pub memory_mb: u64,
    /// Most elements a table of the instance may grow to (function
    /// references; a runaway `Vec<Box<dyn Fn>>` hits this); default 20000.
    pub max_table_elements: usize,
    /// Reload when the component file changes (`wisp ctl plugin reload`
    /// works either way); default true.
    pub watch: bool,
    /// Handed to the plugin's `init` as strings.
    pub params: toml::Table,
    /// What the plugin may use beyond the router's own functions; nothing
    /// unless granted here.
    pub capabilities: CapabilitiesConfig,
}

impl Default for PluginConfig {
    /// The defaults of the optional keys; `name` and `path` are empty, which
    /// [`check`](Self::check) refuses: a manifest must give them.
    fn default() -> Self {
        PluginConfig {
            name: String::new(),
            path: PathBuf::new(),
            deadline_ms: 100,
            memory_mb: 32,
            max_table_elements: 20_000,
            watch: true,
            params: toml::Table::new(),
            capabilities: CapabilitiesConfig::default(),
        }
    }
}

/// `[plugin.capabilities]`: named grants. A host function that needs one
/// refuses with `not-permitted` when it is missing. An unknown name is a
/// manifest error, so a misspelt grant cannot silently grant nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapabilitiesConfig {
    /// Programs `exec-dset` / `exec-msg` may run: an absolute path, or a
    /// path relative to the manifest's directory (`scripts/lcr.sh`). A
    /// command is run only when its first word is exactly one of these.
    pub exec: Vec<String>,
    /// WASI 0.2 (`wasi:*` imports, for runtimes such as Python's that need
    /// them) with nothing behind it: no files, no sockets or name lookup,
    /// no environment or arguments; stdout and stderr go to the router's
    /// log; a clock wait that would block traps. Without it a component
    /// that imports `wasi:*` is refused at load.
    pub wasi: bool,
    /// Reserved for outbound HTTP to listed hosts. Not built: naming it
    /// refuses the manifest rather than pretending to grant something.
    pub http: Option<toml::Value>,
}

impl PluginConfig {
    /// `params` as the `(key, value)` strings the WIT `init` takes.
    pub fn params_as_strings(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Rules serde does not check, for the plugin at `at` (`plugin[i]`).
    fn check(&self, at: &KeyPath) -> Result<(), Invalid> {
        let key = |k| at.clone().key(k);
        let name_chars = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.name.is_empty() || !self.name.chars().all(name_chars) {
            return Err(Invalid::new(
                key("name"),
                "expected a non-empty name of letters, digits, '-' and '_'",
            ));
        }
        if self.path.as_os_str().is_empty() {
            return Err(Invalid::new(
                key("path"),
                "expected the path of the component (.wasm)",
            ));
        }
        if self.max_table_elements == 0 {
            return Err(Invalid::new(
                key("max_table_elements"),
                "expected at least 1",
            ));
        }
        if !(1..=10_000).contains(&self.deadline_ms) {
            return Err(Invalid::new(key("deadline_ms"), "expected 1..=10000 ms"));
        }
        if !(1..=4096).contains(&self.memory_mb) {
            return Err(Invalid::new(key("memory_mb"), "expected 1..=4096 MiB"));
        }
        let grants = key("capabilities");
        if self.capabilities.http.is_some() {
            return Err(Invalid::new(
                grants.key("http"),
                "the `http` capability is reserved and not built yet",
            ));
        }
        for (i, program) in self.capabilities.exec.iter().enumerate() {
            if let Err(why) = check_exec_grant(program) {
                return Err(Invalid::new(
                    grants.clone().key("exec").index(i),
                    format!("{program:?}: {why}"),
                ));
            }
        }
        Ok(())
    }
}

/// Rules of the whole chain: at least one plugin, each valid, names unique.
pub(super) fn check_chain(plugins: &[PluginConfig]) -> Result<(), Invalid> {
    if plugins.is_empty() {
        return Err(Invalid::new(
            KeyPath::new(&["plugin"]),
            "at least one [[plugin]] table is required",
        ));
    }
    for (i, p) in plugins.iter().enumerate() {
        let at = KeyPath::new(&["plugin"]).index(i);
        p.check(&at)?;
        if plugins[..i].iter().any(|q| q.name == p.name) {
            return Err(Invalid::new(
                at.key("name"),
                format!(
                    "{:?} names an earlier plugin too; names must be unique",
                    p.name
                ),
            ));
        }
    }
    Ok(())
}

/// An `exec` grant names one program by path. A bare name would be looked
/// up in `PATH` at each call (what runs could change under the grant), and
/// an entry with blanks could never equal a command's first word.
fn check_exec_grant(program: &str) -> Result<(), &'static str> {
    if program.is_empty() {
        return Err("empty program");
    }
    if program.chars().any(char::is_whitespace) {
        return Err("list one program, without arguments or blanks");
    }
    if !program.contains('/') {
        return Err(
            "give a path (absolute, or relative to the manifest's directory), not a bare name",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::tests::{GOOD, refused, refused_at};
    use crate::config::*;

    /// A manifest with two plugins; `second` is added to the second one.
    fn two(a: &str, b: &str, second: &str) -> String {
        format!(
            "[server]\nlisten = [\"udp:127.0.0.1:5060\"]\n\
             [[plugin]]\nname = \"{a}\"\npath = \"a.wasm\"\ndeadline_ms = 50\n\
             [[plugin]]\nname = \"{b}\"\npath = \"b.wasm\"\nwatch = false\n{second}"
        )
    }

    #[test]
    fn a_chain_of_plugins_needs_distinct_names() {
        let m = Manifest::parse(&two("sanity", "routing", ""), Path::new("w.toml")).expect("chain");
        assert_eq!(m.plugin.len(), 2);
        assert!(m.plugin[0].watch, "watched by default");
        assert!(!m.plugin[1].watch);
        let e = refused(&two("x", "x", ""));
        // Line 8: the second plugin's `name`, not the first one's (line 4).
        assert!(e.starts_with("w.toml:8: key `plugin[1].name`"), "{e}");
        assert!(e.contains("unique"), "{e}");
    }

    #[test]
    fn an_error_in_the_second_plugin_points_at_the_second_plugin() {
        // Same key in both plugins: the second one's is out of range.
        let text = two("a", "b", "deadline_ms = 0\n");
        let line = text.lines().count();
        refused_at(&text, line, "plugin[1].deadline_ms");
        // A type error found by serde, too.
        let text = two("a", "b", "deadline_ms = \"soon\"\n");
        refused_at(&text, line, "plugin[1].deadline_ms");
        // An unknown key, named with its plugin.
        let text = two("a", "b", "dedline_ms = 5\n");
        refused_at(&text, line, "plugin[1].dedline_ms");
        // A missing `path` is reported at the second `[[plugin]]` header.
        let text = two("a", "b", "").replace("path = \"b.wasm\"\n", "");
        let e = refused(&text);
        assert!(e.starts_with("w.toml:7: key `plugin[1].path`"), "{e}");
    }

    #[test]
    fn capabilities_default_to_none_and_exec_lists_programs() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert!(m.plugin[0].capabilities.exec.is_empty());
        let text =
            format!("{GOOD}\n[plugin.capabilities]\nexec = [\"/bin/echo\", \"scripts/lcr.sh\"]\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert_eq!(
            m.plugin[0].capabilities.exec,
            ["/bin/echo", "scripts/lcr.sh"]
        );
    }

    #[test]
    fn unknown_capability_names_file_line_and_key() {
        let text = format!("{GOOD}\n[plugin.capabilities]\nexec = []\nsockets = true\n");
        let e = refused(&text);
        assert!(
            e.starts_with(&format!(
                "w.toml:{}: key `plugin[0].capabilities.sockets`",
                text.lines().count()
            )),
            "{e}"
        );
    }

    #[test]
    fn wasi_is_a_capability_off_by_default() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert!(!m.plugin[0].capabilities.wasi);
        let text = format!("{GOOD}\n[plugin.capabilities]\nwasi = true\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("wasi granted");
        assert!(m.plugin[0].capabilities.wasi);
        let text = format!("{GOOD}\n[plugin.capabilities]\nwasi = \"yes\"\n");
        let e = refused(&text);
        assert!(e.contains("plugin[0].capabilities.wasi"), "{e}");
    }

    #[test]
    fn http_capability_is_reserved_not_granted() {
        let text = format!("{GOOD}\n[plugin.capabilities]\nhttp = [\"example.com\"]\n");
        let e = refused(&text);
        assert!(e.contains("key `plugin[0].capabilities.http`"), "{e}");
        assert!(e.contains("not built"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
    }

    #[test]
    fn exec_grant_must_be_one_program_path() {
        for bad in ["echo", "/bin/echo hi", ""] {
            let text = format!("{GOOD}\n[plugin.capabilities]\nexec = [{bad:?}]\n");
            let e = refused(&text);
            assert!(
                e.contains("key `plugin[0].capabilities.exec[0]`"),
                "{bad:?}: {e}"
            );
            assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
        }
        // The bad entry's own line when the list spans lines.
        let text =
            format!("{GOOD}\n[plugin.capabilities]\nexec = [\n  \"/bin/echo\",\n  \"echo\",\n]\n");
        let e = refused(&text);
        let line = text.lines().count() - 1;
        assert!(
            e.starts_with(&format!(
                "w.toml:{line}: key `plugin[0].capabilities.exec[1]`"
            )),
            "{e}"
        );
    }

    #[test]
    fn missing_plugin_is_refused() {
        let e = refused("[server]\nlisten = [\"udp:127.0.0.1:5060\"]\n");
        assert!(e.contains("[[plugin]]"), "{e}");
    }
}
