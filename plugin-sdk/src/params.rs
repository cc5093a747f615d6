//! The plugin's `[plugin.params]` table from the manifest.

/// A plugin's parameters, as given in its manifest table. Values arrive as
/// strings (TOML numbers and booleans rendered as text); the typed getters
/// parse them and say which key was wrong.
#[derive(Debug, Clone, Default)]
pub struct Params {
    entries: Vec<(String, String)>,
}

impl From<Vec<(String, String)>> for Params {
    fn from(entries: Vec<(String, String)>) -> Self {
        Params { entries }
    }
}

impl Params {
    /// The raw value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` parsed as `T`, `default` when absent; an error naming the key
    /// when present but not a valid `T`.
    pub fn get_or<T: core::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("param `{key}`: cannot use {v:?} here")),
        }
    }

    /// Every `(key, value)` pair, in manifest order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
