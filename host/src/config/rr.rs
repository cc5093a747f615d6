//! `[rr]`: Record-Route (Kamailio `rr` module parameters).

use serde::Deserialize;

/// `[rr]`: Record-Route (Kamailio `rr` module parameters).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RrConfig {
    /// `record_route` writes `;lr=on` instead of `;lr`, for old parsers that
    /// need a value on every parameter (Kamailio `enable_full_lr`); default
    /// false.
    pub enable_full_lr: bool,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::tests::{GOOD, refused};
    use crate::config::*;

    #[test]
    fn rr_section_defaults_and_names_wrong_keys() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert!(!m.rr.enable_full_lr);
        let text = format!("{GOOD}\n[rr]\nenable_full_lr = true\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert!(m.rr.enable_full_lr);
        let text = format!("{GOOD}\n[rr]\nenable_full_lr = \"yes\"\n");
        let e = refused(&text);
        assert!(e.contains("key `rr.enable_full_lr`"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
        let text = format!("{GOOD}\n[rr]\nappend_fromtag = true\n");
        let e = refused(&text);
        assert!(e.contains("key `rr.append_fromtag`"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
    }
}
