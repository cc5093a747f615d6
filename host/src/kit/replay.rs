//! `wisp replay`: captured requests through a plugin, nothing sent; the
//! decision for each (reply, relay, drop), or where two builds differ.
//!
//! Captures: pcap files (`tcpdump -w`, sngrep's "save as pcap"; Ethernet,
//! Linux cooked, loopback and raw-IP links; SIP over UDP, and over TCP one
//! message a segment), or a text file of messages, each after a line
//!
//! ```text
//! --- udp:192.0.2.10:5060 -> udp:192.0.2.1:5060
//! INVITE sip:bob@example.com SIP/2.0
//! ...
//! ```
//!
//! (`-> ...` optional: the router's first listener). Only requests sent to
//! the router's listen addresses are fed, in capture order, to one router:
//! a REGISTER early in the capture is a binding for the calls after it.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use anyhow::Context;
use bytes::Bytes;

use super::harness::{Harness, Sent};
use crate::config::{ListenAddr, Proto};

/// One captured SIP message.
#[derive(Debug, Clone)]
pub struct Captured {
    pub proto: Proto,
    pub src: SocketAddr,
    pub dst: Option<SocketAddr>,
    pub data: Bytes,
}

impl Captured {
    /// `INVITE sip:bob@example.com` (request line without the version).
    pub fn summary(&self) -> String {
        let text = String::from_utf8_lossy(&self.data);
        let line = text.lines().next().unwrap_or_default();
        line.trim_end_matches(" SIP/2.0").trim_end().to_owned()
    }

    pub fn is_request(&self) -> bool {
        let text = String::from_utf8_lossy(&self.data[..self.data.len().min(256)]);
        let line = text.lines().next().unwrap_or_default();
        !line.starts_with("SIP/") && line.ends_with("SIP/2.0")
    }
}

/// Read a capture: pcap by its magic number, else the text format.
pub fn read_capture(path: &Path) -> anyhow::Result<Vec<Captured>> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let magic = bytes.get(..4).map(|m| [m[0], m[1], m[2], m[3]]);
    match magic {
        Some([0xd4, 0xc3, 0xb2, 0xa1])
        | Some([0xa1, 0xb2, 0xc3, 0xd4])
        | Some([0x4d, 0x3c, 0xb2, 0xa1])
        | Some([0xa1, 0xb2, 0x3c, 0x4d]) => {
            pcap(&bytes).with_context(|| format!("{}: pcap", path.display()))
        }
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => anyhow::bail!(
            "{}: pcapng; write classic pcap (tcpdump -w, or editcap -F pcap in.pcapng out.pcap)",
            path.display()
        ),
        _ => text(&String::from_utf8_lossy(&bytes))
            .with_context(|| format!("{}: text capture", path.display())),
    }
}

/// The text format (see the module docs).
pub fn text(s: &str) -> anyhow::Result<Vec<Captured>> {
    let mut out = Vec::new();
    let mut current: Option<(Proto, SocketAddr, Option<SocketAddr>, String)> = None;
    let flush = |c: Option<(Proto, SocketAddr, Option<SocketAddr>, String)>,
                 out: &mut Vec<Captured>| {
        if let Some((proto, src, dst, body)) = c
            && !body.trim().is_empty()
        {
            out.push(Captured {
                proto,
                src,
                dst,
                data: super::case::wire(&body),
            });
        }
    };
    for (n, line) in s.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("---") {
            flush(current.take(), &mut out);
            let (from, to) = match rest.split_once("->") {
                Some((f, t)) => (f.trim(), Some(t.trim())),
                None => (rest.trim(), None),
            };
            let from: ListenAddr = from
                .parse()
                .map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
            let to = match to {
                Some(t) => Some(
                    t.parse::<ListenAddr>()
                        .map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?
                        .addr,
                ),
                None => None,
            };
            current = Some((from.proto, from.addr, to, String::new()));
        } else if let Some((_, _, _, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(current, &mut out);
    Ok(out)
}

/// Classic pcap: the SIP messages of its UDP datagrams and TCP segments.
pub fn pcap(b: &[u8]) -> anyhow::Result<Vec<Captured>> {
    let le = matches!(
        b.get(..4),
        Some([0xd4, 0xc3, 0xb2, 0xa1]) | Some([0x4d, 0x3c, 0xb2, 0xa1])
    );
    let u32_at = |at: usize| -> Option<u32> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    };
    let link = u32_at(20).context("truncated header")?;
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let caplen = u32_at(at + 8).context("truncated record")? as usize;
        let start = at + 16;
        let Some(frame) = b.get(start..start + caplen) else {
            break;
        };
        at = start + caplen;
        if let Some(c) = frame_sip(link, frame) {
            out.push(c);
        }
    }
    Ok(out)
}

/// The IP packet of a frame of link type `link`.
fn frame_ip(link: u32, f: &[u8]) -> Option<&[u8]> {
    match link {
        // Ethernet (with 802.1Q tags skipped).
        1 => {
            let mut at = 12;
            loop {
                let ty = u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]);
                if ty == 0x8100 || ty == 0x88a8 {
                    at += 4;
                    continue;
                }
                return matches!(ty, 0x0800 | 0x86dd).then(|| f.get(at + 2..))?;
            }
        }
        // Linux cooked v1 and v2.
        113 => f.get(16..),
        276 => f.get(20..),
        // BSD loopback: a 4-byte family.
        0 | 108 => f.get(4..),
        // Raw IP.
        12 | 14 | 101 | 228 | 229 => Some(f),
        _ => None,
    }
}

/// A SIP message carried by a frame, if any.
fn frame_sip(link: u32, f: &[u8]) -> Option<Captured> {
    let ip = frame_ip(link, f)?;
    let (src, dst, proto, payload) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            let s = Ipv4Addr::new(*ip.get(12)?, *ip.get(13)?, *ip.get(14)?, *ip.get(15)?);
            let d = Ipv4Addr::new(*ip.get(16)?, *ip.get(17)?, *ip.get(18)?, *ip.get(19)?);
            let end = total.min(ip.len());
            (IpAddr::V4(s), IpAddr::V4(d), *ip.get(9)?, ip.get(ihl..end)?)
        }
        6 => {
            let len = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            let s: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            let end = (40 + len).min(ip.len());
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                *ip.get(6)?,
                ip.get(40..end)?,
            )
        }
        _ => return None,
    };
    let port = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([
            *payload.get(at)?,
            *payload.get(at + 1)?,
        ]))
    };
    let (proto, sport, dport, data) = match proto {
        17 => (Proto::Udp, port(0)?, port(2)?, payload.get(8..)?),
        6 => {
            let off = usize::from(payload.get(12)? >> 4) * 4;
            (Proto::Tcp, port(0)?, port(2)?, payload.get(off..)?)
        }
        _ => return None,
    };
    let looks_sip = data.len() > 8
        && (data.starts_with(b"SIP/2.0 ")
            || data
                .split(|b| *b == b'\n')
                .next()
                .is_some_and(|l| l.trim_ascii_end().ends_with(b"SIP/2.0")));
    looks_sip.then(|| Captured {
        proto,
        src: SocketAddr::new(src, sport),
        dst: Some(SocketAddr::new(dst, dport)),
        data: Bytes::copy_from_slice(data),
    })
}

/// What the router did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing sent.
    Drop,
    /// A final (or, when that is all, provisional) reply to the sender.
    Reply { status: u16, reason: String },
    /// Requests sent on: to where, the Request-URI, the headers that changed.
    Relay { targets: Vec<Relayed> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    pub to: String,
    pub ruri: String,
    /// `+Record-Route: <...>`, `-X-Foo: ...`, `~Max-Forwards: 69` (Via and
    /// Content-Length left out: a new Via is every relay's).
    pub changes: Vec<String>,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Drop => f.write_str("drop"),
            Decision::Reply { status, reason } => write!(f, "reply {status} {reason}"),
            Decision::Relay { targets } => {
                for (i, t) in targets.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n    ")?;
                    }
                    write!(f, "relay to {} R-URI {}", t.to, t.ruri)?;
                    for c in &t.changes {
                        write!(f, "\n      {c}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

fn headers_of(data: &Bytes) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(data);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .filter(|(n, _)| !matches!(n.as_str(), "via" | "v" | "content-length" | "l"))
        .collect()
}

/// Headers of `out` not in `input` (`+`), of `input` not in `out` (`-`).
fn changes(input: &Bytes, out: &Bytes) -> Vec<String> {
    let a = headers_of(input);
    let b = headers_of(out);
    let mut v = Vec::new();
    for (n, val) in &a {
        if !b.iter().any(|(m, w)| m == n && w == val) {
            v.push(format!("-{n}: {val}"));
        }
    }
    for (n, val) in &b {
        if !a.iter().any(|(m, w)| m == n && w == val) {
            v.push(format!("+{n}: {val}"));
        }
    }
    v
}

/// The decision `sent` shows for `input`.
pub fn decide(input: &Captured, sent: &[Sent]) -> Decision {
    let mut targets = Vec::new();
    let mut reply: Option<(u16, String)> = None;
    for s in sent {
        let line = s.start_line();
        if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let code: u16 = code.parse().unwrap_or(0);
            // The final reply decides; a provisional one only when alone.
            if reply.as_ref().is_none_or(|(c, _)| *c < 200) {
                reply = Some((code, reason.to_owned()));
            }
        } else {
            let ruri = line.split(' ').nth(1).unwrap_or_default().to_owned();
            targets.push(Relayed {
                to: s.to(),
                ruri,
                changes: changes(&input.data, &s.data),
            });
        }
    }
    if !targets.is_empty() {
        return Decision::Relay { targets };
    }
    match reply {
        Some((status, reason)) => Decision::Reply { status, reason },
        None => Decision::Drop,
    }
}

/// The requests of `capture` to `listen`, each with its decision.
pub async fn replay(
    harness: &Harness,
    capture: &[Captured],
) -> anyhow::Result<Vec<(Captured, Decision)>> {
    let listen: Vec<(Proto, SocketAddr)> = harness.router().transports().listen_addrs();
    let mut out = Vec::new();
    for c in capture {
        if !c.is_request() {
            continue;
        }
        let to_router = match c.dst {
            Some(d) => listen.iter().any(|(p, a)| *p == c.proto && *a == d),
            None => true,
        };
        if !to_router {
            continue;
        }
        let sent = harness
            .receive(c.proto, c.src, c.dst, c.data.clone())
            .await?;
        out.push((c.clone(), decide(c, &sent)));
    }
    Ok(out)
}

/// The listen addresses a capture's router had: where most requests went.
pub fn guess_listen(capture: &[Captured]) -> Vec<ListenAddr> {
    let mut counts: std::collections::BTreeMap<(String, SocketAddr), usize> = Default::default();
    for c in capture.iter().filter(|c| c.is_request()) {
        if let Some(d) = c.dst {
            *counts
                .entry((c.proto.to_string().to_lowercase(), d))
                .or_default() += 1;
        }
    }
    let Some(best) = counts.iter().max_by_key(|(_, n)| **n).map(|((_, a), _)| *a) else {
        return Vec::new();
    };
    // Every transport the capture used on that address.
    counts
        .keys()
        .filter(|(_, a)| *a == best)
        .filter_map(|(p, a)| format!("{p}:{a}").parse().ok())
        .collect()
}

/// `wisp replay`'s listing of one build's decisions.
pub fn render(decisions: &[(Captured, Decision)]) -> String {
    let mut out = String::new();
    for (i, (c, d)) in decisions.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>4} {} from {}:{}\n    {d}",
            i + 1,
            c.summary(),
            c.proto.to_string().to_lowercase(),
            c.src
        );
    }
    out
}

/// `--against`: the requests two builds decide differently.
pub fn render_differences(
    a: &[(Captured, Decision)],
    b: &[(Captured, Decision)],
) -> (String, usize) {
    let mut out = String::new();
    let mut n = 0;
    for (i, ((c, da), (_, db))) in a.iter().zip(b).enumerate() {
        if da != db {
            n += 1;
            let _ = writeln!(
                out,
                "{:>4} {} from {}:{}\n  - {da}\n  + {db}",
                i + 1,
                c.summary(),
                c.proto.to_string().to_lowercase(),
                c.src
            );
        }
    }
    let _ = writeln!(out, "{n} of {} request(s) routed differently", a.len());
    (out, n)
}

/// `wisp replay`: the decisions of `plugin` on `capture` (or, with
/// `against`, where the two builds differ). `setup` is a case file whose
/// params, manifest excerpt and store are used (its steps are not);
/// `listen` the router's addresses in the capture (default: where most
/// requests went). Returns the text and whether the builds differ.
pub fn run(
    plugin: &Path,
    against: Option<&Path>,
    capture: &Path,
    setup: Option<&Path>,
    listen: &[String],
) -> anyhow::Result<(String, bool)> {
    let captured = read_capture(capture)?;
    let setup_case: super::Case = match setup {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| f.display().to_string())?;
            toml::from_str(&text).with_context(|| f.display().to_string())?
        }
        None => toml::from_str("").context("an empty case")?,
    };
    let listen: Vec<String> = if listen.is_empty() {
        guess_listen(&captured)
            .iter()
            .map(|l| format!("{}:{}", l.proto.to_string().to_lowercase(), l.addr))
            .collect()
    } else {
        listen.to_vec()
    };
    if listen.is_empty() {
        anyhow::bail!("{}: no SIP request found", capture.display());
    }
    let mut base = setup_case.manifest.clone();
    let mut server = toml::Table::new();
    server.insert(
        "listen".into(),
        toml::Value::Array(listen.iter().cloned().map(toml::Value::String).collect()),
    );
    let mut over = toml::Table::new();
    over.insert("server".into(), toml::Value::Table(server));
    super::harness::merge(&mut base, &over);
    let (cache, _guard) = super::harness::compile_cache()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("the kit's runtime")?;
    let file = setup.unwrap_or(capture);
    runtime.block_on(async {
        let decide_all = |p: std::path::PathBuf| {
            let base = &base;
            let cache = cache.as_path();
            let captured = &captured;
            let setup_case = &setup_case;
            async move {
                let manifest = super::harness::manifest_for(
                    &p,
                    &setup_case.params,
                    &setup_case.capabilities,
                    base,
                    cache,
                    file,
                )?;
                let harness = Harness::start(manifest)
                    .await
                    .with_context(|| format!("loading {}", p.display()))?;
                super::case::seed_store(&harness, &setup_case.store)?;
                replay(&harness, captured).await
            }
        };
        let a = decide_all(plugin.to_owned()).await?;
        match against {
            None => Ok::<_, anyhow::Error>((render(&a), false)),
            Some(other) => {
                let b = decide_all(other.to_owned()).await?;
                let (text, n) = render_differences(&a, &b);
                Ok((text, n > 0))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIP: &[u8] = b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\nContent-Length: 0\r\n\r\n";

    /// An IPv4/UDP packet from 192.0.2.10:5060 to 192.0.2.1:5060.
    fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend_from_slice(&[192, 0, 2, 10, 192, 0, 2, 1]);
        p.extend_from_slice(&5060u16.to_be_bytes());
        p.extend_from_slice(&5060u16.to_be_bytes());
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    /// A little-endian classic pcap of `frames` on link type `link`.
    fn pcap_file(link: u32, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&link.to_le_bytes());
        for f in frames {
            for v in [0u32, 0, f.len() as u32, f.len() as u32] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(f);
        }
        b
    }

    fn check(captured: &[Captured]) {
        assert_eq!(captured.len(), 1, "{captured:?}");
        let c = &captured[0];
        assert_eq!(c.proto, Proto::Udp);
        assert_eq!(c.src, "192.0.2.10:5060".parse().unwrap());
        assert_eq!(c.dst, Some("192.0.2.1:5060".parse().unwrap()));
        assert_eq!(&c.data[..], SIP);
        assert!(c.is_request());
        assert_eq!(c.summary(), "OPTIONS sip:example.com");
    }

    #[test]
    fn ethernet_frames_as_tcpdump_on_lo_writes_them() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        frame.extend(ipv4_udp(SIP));
        // A non-SIP datagram beside it is skipped.
        let mut other = vec![0u8; 12];
        other.extend_from_slice(&0x0800u16.to_be_bytes());
        other.extend(ipv4_udp(b"\x00\x01 not sip at all"));
        check(&pcap(&pcap_file(1, &[frame, other])).unwrap());
    }

    #[test]
    fn linux_cooked_frames_as_tcpdump_on_any_writes_them() {
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        frame.extend(ipv4_udp(SIP));
        check(&pcap(&pcap_file(113, &[frame])).unwrap());
    }

    #[test]
    fn a_truncated_capture_keeps_the_whole_records() {
        let mut file = pcap_file(101, &[ipv4_udp(SIP), ipv4_udp(SIP)]);
        file.truncate(file.len() - 10);
        check(&pcap(&file).unwrap());
    }

    #[test]
    fn the_text_format_gives_wire_messages() {
        let c = text(
            "--- udp:192.0.2.10:5060 -> udp:192.0.2.1:5060\n\
             OPTIONS sip:example.com SIP/2.0\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\n\n",
        )
        .unwrap();
        check(&c);
    }

    #[test]
    fn a_relay_lists_the_headers_it_changed() {
        let input = Captured {
            proto: Proto::Udp,
            src: "192.0.2.10:5060".parse().unwrap(),
            dst: None,
            data: Bytes::from_static(
                b"INVITE sip:a@example.com SIP/2.0\r\nVia: x\r\nMax-Forwards: 70\r\nX-Keep: 1\r\n\r\n",
            ),
        };
        let out = Sent {
            proto: Proto::Udp,
            local: None,
            dest: "192.0.2.20:5060".parse().unwrap(),
            data: Bytes::from_static(
                b"INVITE sip:a@192.0.2.20 SIP/2.0\r\nVia: y\r\nVia: x\r\nMax-Forwards: 69\r\nX-Keep: 1\r\n\r\n",
            ),
        };
        assert_eq!(
            decide(&input, &[out]),
            Decision::Relay {
                targets: vec![Relayed {
                    to: "udp:192.0.2.20:5060".into(),
                    ruri: "sip:a@192.0.2.20".into(),
                    changes: vec!["-max-forwards: 70".into(), "+max-forwards: 69".into()],
                }]
            }
        );
        assert_eq!(decide(&input, &[]), Decision::Drop);
    }
}
