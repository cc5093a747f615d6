//! `[rtpengine]`: the media relays the router controls over rtpengine's `ng`
//! protocol (Kamailio module `rtpengine`: `rtpengine_sock`,
//! `rtpengine_tout_ms`, `rtpengine_disable_tout`).

use std::net::SocketAddr;

use serde::Deserialize;

use super::{Invalid, KeyPath};

/// `[rtpengine]`. Without `sockets` there is no media relay.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RtpengineConfig {
    /// `"udp:IP:PORT"` or `"udp:IP:PORT=WEIGHT"` (weight 1..=1000, default
    /// 1), one per rtpengine `--listen-ng` socket. A call goes to one of
    /// them by its Call-ID, in proportion to the weights, so every command
    /// of a call reaches the same relay while it answers.
    pub sockets: Vec<String>,
    /// Milliseconds to wait for an answer before trying again, 10..=60000;
    /// default 1000 (Kamailio `rtpengine_tout_ms`).
    pub timeout_ms: u64,
    /// Tries per relay, 1..=10; default 1. After the last one the relay is
    /// left out for `disable_s` and the command goes to the next.
    pub retries: u32,
    /// Seconds a relay that did not answer is left out, 1..=3600; default 60
    /// (Kamailio `rtpengine_disable_tout`).
    pub disable_s: u64,
}

impl Default for RtpengineConfig {
    fn default() -> Self {
        RtpengineConfig {
            sockets: Vec::new(),
            timeout_ms: 1000,
            retries: 1,
            disable_s: 60,
        }
    }
}

/// One relay of `sockets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpengineSocket {
    pub addr: SocketAddr,
    pub weight: u32,
}

impl RtpengineConfig {
    /// The relays, parsed (the check has made sure they parse).
    pub fn relays(&self) -> Vec<RtpengineSocket> {
        self.sockets
            .iter()
            .filter_map(|s| parse_socket(s).ok())
            .collect()
    }

    pub(super) fn check(&self) -> Result<(), Invalid> {
        let key = |k| KeyPath::new(&["rtpengine", k]);
        for (i, s) in self.sockets.iter().enumerate() {
            parse_socket(s).map_err(|e| Invalid::new(key("sockets").index(i), e))?;
        }
        for (k, v, lo, hi) in [
            ("timeout_ms", self.timeout_ms, 10, 60_000),
            ("retries", u64::from(self.retries), 1, 10),
            ("disable_s", self.disable_s, 1, 3600),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(Invalid::new(key(k), format!("expected {lo}..={hi}")));
            }
        }
        Ok(())
    }
}

fn parse_socket(s: &str) -> Result<RtpengineSocket, String> {
    let expected = || format!("{s:?}: expected \"udp:IP:PORT\" or \"udp:IP:PORT=WEIGHT\"");
    let rest = s.strip_prefix("udp:").ok_or_else(expected)?;
    let (addr, weight) = match rest.split_once('=') {
        Some((a, w)) => (a, w.parse::<u32>().map_err(|_| expected())?),
        None => (rest, 1),
    };
    if !(1..=1000).contains(&weight) {
        return Err(format!("{s:?}: weight {weight} is not in 1..=1000"));
    }
    let addr = addr.parse::<SocketAddr>().map_err(|_| expected())?;
    Ok(RtpengineSocket { addr, weight })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_parse_with_and_without_weight() {
        let c = RtpengineConfig {
            sockets: vec!["udp:127.0.0.1:22222".into(), "udp:[::1]:2223=5".into()],
            ..Default::default()
        };
        c.check().unwrap();
        let r = c.relays();
        assert_eq!(r[0].weight, 1);
        assert_eq!(r[1].addr, "[::1]:2223".parse().unwrap());
        assert_eq!(r[1].weight, 5);
    }

    #[test]
    fn a_bad_socket_or_bound_names_its_key() {
        for bad in [
            "127.0.0.1:22222",
            "udp:host:1",
            "udp:127.0.0.1:1=0",
            "tcp:1.2.3.4:5",
        ] {
            let c = RtpengineConfig {
                sockets: vec!["udp:127.0.0.1:1".into(), bad.into()],
                ..Default::default()
            };
            let e = c.check().unwrap_err();
            assert_eq!(e.key.to_string(), "rtpengine.sockets[1]", "{bad}");
        }
        let c = RtpengineConfig {
            timeout_ms: 5,
            ..Default::default()
        };
        assert_eq!(
            c.check().unwrap_err().key.to_string(),
            "rtpengine.timeout_ms"
        );
    }
}
