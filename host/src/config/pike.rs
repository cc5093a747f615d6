//! `[pike]` and `[[htable]]`: per-source flood detection and the named
//! tables plugins keep ban lists and counters in (Kamailio's `pike` and
//! `htable` module parameters).

use serde::Deserialize;

use super::{Invalid, KeyPath};

/// `[pike]`: how many requests one source IP address may send before
/// `pike-check-req` says it floods (Kamailio `pike`). The rate is a token
/// bucket: a source may send `reqs_density_per_unit` requests at once, and
/// earns them back over `sampling_time_unit` seconds.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PikeConfig {
    /// Seconds, 1..=3600; default 2 (Kamailio `sampling_time_unit`).
    pub sampling_time_unit: u32,
    /// Requests per unit, 1..=1000000; default 30 (Kamailio
    /// `reqs_density_per_unit`).
    pub reqs_density_per_unit: u32,
    /// Most source addresses tracked at once, 1..=16777216; default 65536.
    /// Sources quiet for a unit are forgotten; when the table is still full
    /// (a flood from that many addresses), a new address is not counted
    /// until room returns, and `pike-check-req` lets it through.
    pub max_sources: usize,
}

impl Default for PikeConfig {
    fn default() -> Self {
        PikeConfig {
            sampling_time_unit: 2,
            reqs_density_per_unit: 30,
            max_sources: 65_536,
        }
    }
}

impl PikeConfig {
    pub(super) fn check(&self) -> Result<(), Invalid> {
        let key = |k| KeyPath::new(&["pike", k]);
        for (k, v, hi) in [
            ("sampling_time_unit", self.sampling_time_unit as u64, 3600),
            (
                "reqs_density_per_unit",
                self.reqs_density_per_unit as u64,
                1_000_000,
            ),
            ("max_sources", self.max_sources as u64, 1 << 24),
        ] {
            if !(1..=hi).contains(&v) {
                return Err(Invalid::new(key(k), format!("expected 1..={hi}")));
            }
        }
        Ok(())
    }
}

/// One `[[htable]]`: a named table of integers and strings shared by every
/// plugin (Kamailio `modparam("htable", "htable", "name=>autoexpire=...")`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HtableConfig {
    /// What plugins call it (`sht-get("ipban", ...)`): letters, digits, `_`
    /// and `-`, unique.
    pub name: String,
    /// Seconds an item lives after it was last set or incremented; 0 (the
    /// default) keeps it until removed or evicted (Kamailio `autoexpire`).
    #[serde(default)]
    pub autoexpire: u64,
    /// Most items, 1..=16777216; default 65536. Setting one more evicts the
    /// least recently used, so a flood of keys cannot grow the table.
    #[serde(default = "default_htable_size")]
    pub size: u64,
}

fn default_htable_size() -> u64 {
    65_536
}

/// Every `[[htable]]` valid and named once.
pub(super) fn check_htables(tables: &[HtableConfig]) -> Result<(), Invalid> {
    for (i, t) in tables.iter().enumerate() {
        let at = KeyPath::new(&["htable"]).index(i);
        let name_ok = !t.name.is_empty()
            && t.name.len() <= 64
            && t.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(Invalid::new(
                at.key("name"),
                "expected 1 to 64 letters, digits, `_` or `-`",
            ));
        }
        if tables[..i].iter().any(|u| u.name == t.name) {
            return Err(Invalid::new(
                at.key("name"),
                format!("{:?} names an earlier [[htable]] too", t.name),
            ));
        }
        if !(1..=1 << 24).contains(&t.size) {
            return Err(Invalid::new(at.key("size"), "expected 1..=16777216"));
        }
        if t.autoexpire > 365 * 86_400 {
            return Err(Invalid::new(
                at.key("autoexpire"),
                "expected 0..=31536000 s",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::tests::{GOOD, refused_at};
    use crate::config::*;

    #[test]
    fn pike_and_htables_default_and_parse() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert_eq!(m.pike, PikeConfig::default());
        assert!(m.htable.is_empty());
        let text = format!(
            "{GOOD}\n[pike]\nsampling_time_unit = 4\nreqs_density_per_unit = 16\n\
             [[htable]]\nname = \"ipban\"\nautoexpire = 300\n\
             [[htable]]\nname = \"calls\"\nsize = 10\n"
        );
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert_eq!(
            (m.pike.sampling_time_unit, m.pike.reqs_density_per_unit),
            (4, 16)
        );
        assert_eq!(
            m.htable,
            vec![
                HtableConfig {
                    name: "ipban".into(),
                    autoexpire: 300,
                    size: 65_536
                },
                HtableConfig {
                    name: "calls".into(),
                    autoexpire: 0,
                    size: 10
                },
            ]
        );
    }

    #[test]
    fn bad_pike_and_htable_settings_are_refused_with_their_line() {
        let text = format!("{GOOD}\n[pike]\nreqs_density_per_unit = 0\n");
        refused_at(&text, text.lines().count(), "pike.reqs_density_per_unit");
        let text = format!("{GOOD}\n[[htable]]\nname = \"a\"\n[[htable]]\nname = \"a\"\n");
        let e = refused_at(&text, text.lines().count(), "htable[1].name");
        assert!(e.contains("earlier"), "{e}");
        let text = format!("{GOOD}\n[[htable]]\nname = \"bad name\"\n");
        refused_at(&text, text.lines().count(), "htable[0].name");
        let text = format!("{GOOD}\n[[htable]]\nname = \"t\"\nsize = 0\n");
        refused_at(&text, text.lines().count(), "htable[0].size");
    }
}
