//! `[metrics]`: the Prometheus endpoint.

use std::net::SocketAddr;

use serde::Deserialize;

/// `[metrics]`: where `GET /metrics` is served (Prometheus text format).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `"127.0.0.1:9090"`: serve the metrics there; unset (the default),
    /// no endpoint. Counters are kept either way (`wisp ctl stats`).
    pub listen: Option<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::tests::{GOOD, refused};
    use crate::config::*;

    #[test]
    fn metrics_are_off_by_default_and_a_bad_address_names_its_line() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert_eq!(m.metrics.listen, None);
        let text = format!("{GOOD}\n[metrics]\nlisten = \"127.0.0.1:9090\"\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert_eq!(
            m.metrics.listen,
            Some("127.0.0.1:9090".parse().expect("addr"))
        );
        let text = format!("{GOOD}\n[metrics]\nlisten = \"localhost\"\n");
        let e = refused(&text);
        assert!(e.contains("key `metrics.listen`"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
        let text = format!("{GOOD}\n[metrics]\npath = \"/m\"\n");
        let e = refused(&text);
        assert!(e.contains("key `metrics.path`"), "{e}");
    }
}
