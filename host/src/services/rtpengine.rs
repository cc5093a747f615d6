//! The client of rtpengine's control protocol, `ng` (Kamailio module
//! `rtpengine`): bencoded dictionaries over UDP, each prefixed by a cookie
//! that its answer repeats.
//!
//! One UDP socket serves every command; a task matches answers to the
//! waiting commands by cookie, so commands of many calls are in flight at
//! once and none blocks a thread. A call goes to one relay chosen by its
//! Call-ID in proportion to the weights, so its offer, answer and delete
//! meet the same media session. A relay that does not answer within
//! `timeout_ms` (`retries` times) is left out for `disable_s` and the
//! command goes to the next one.
//!
//! ```text
//! -> 5d0a1c7f d7:command5:offer7:call-id5:c1@h38:from-tag1:16:flagsl13:trust-addresse3:sdp...e
//! <- 5d0a1c7f d6:result2:ok3:sdp...e
//! ```

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_bencode::value::Value;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use crate::config::{RtpengineConfig, RtpengineSocket};
use crate::util::lock;

/// Why a command got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RtpengineError {
    #[error("no media relay configured ([rtpengine] sockets)")]
    NoRelay,
    #[error("no media relay answered (tried {0})")]
    Unreachable(String),
    #[error("the media relay refused: {0}")]
    Refused(String),
    #[error("the media relay's answer is not understood: {0}")]
    BadAnswer(String),
    #[error("media relay socket: {0}")]
    Io(#[from] std::io::Error),
}

/// A bencoded dictionary: what a command sends and an answer holds.
pub type Dict = HashMap<Vec<u8>, Value>;

struct Relay {
    socket: RtpengineSocket,
    /// Until when it is left out: ms since the client started, 0 = in use.
    disabled_until_ms: AtomicU64,
    /// Commands it did not answer (all tries).
    timeouts: AtomicU64,
}

/// The client: one per router, shared by every worker.
pub struct Rtpengine {
    relays: Vec<Relay>,
    socket: Arc<UdpSocket>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Bytes>>>>,
    timeout: Duration,
    retries: u32,
    disable: Duration,
    started: Instant,
    next_cookie: AtomicU64,
    /// This client, for the futures it hands out.
    this: std::sync::Weak<Rtpengine>,
}

impl Rtpengine {
    /// Bind the control socket and start matching answers. Needs a tokio
    /// runtime.
    pub async fn start(config: &RtpengineConfig) -> Result<Arc<Rtpengine>, RtpengineError> {
        let relays: Vec<Relay> = config
            .relays()
            .into_iter()
            .map(|socket| Relay {
                socket,
                disabled_until_ms: AtomicU64::new(0),
                timeouts: AtomicU64::new(0),
            })
            .collect();
        let any_v6 = relays.iter().any(|r| r.socket.addr.is_ipv6());
        let bind: SocketAddr = if any_v6 { "[::]:0" } else { "0.0.0.0:0" }
            .parse()
            .map_err(|_| RtpengineError::NoRelay)?;
        let socket = Arc::new(UdpSocket::bind(bind).await?);
        let pending: Arc<Mutex<HashMap<String, oneshot::Sender<Bytes>>>> = Arc::default();
        tokio::spawn(receive(socket.clone(), pending.clone()));
        Ok(Arc::new_cyclic(|this| Rtpengine {
            this: this.clone(),
            relays,
            socket,
            pending,
            timeout: Duration::from_millis(config.timeout_ms),
            retries: config.retries.max(1),
            disable: Duration::from_secs(config.disable_s),
            started: Instant::now(),
            next_cookie: AtomicU64::new(rand::random::<u32>() as u64),
        }))
    }

    /// `offer`: the SDP of a call's offer, rewritten to go through the relay.
    /// `flags` as Kamailio's `rtpengine_offer` takes them (see [`add_flags`]).
    pub async fn offer(
        &self,
        call_id: &str,
        from_tag: &str,
        sdp: &[u8],
        flags: &str,
    ) -> Result<Bytes, RtpengineError> {
        let mut d = command("offer", call_id, from_tag);
        d.insert(b"sdp".to_vec(), Value::Bytes(sdp.to_vec()));
        add_flags(&mut d, flags);
        sdp_of(self.command(call_id, d).await?)
    }

    /// `answer`: the SDP of the answer to an offer of the same call.
    pub async fn answer(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &[u8],
        flags: &str,
    ) -> Result<Bytes, RtpengineError> {
        let mut d = command("answer", call_id, from_tag);
        d.insert(b"to-tag".to_vec(), Value::Bytes(to_tag.as_bytes().to_vec()));
        d.insert(b"sdp".to_vec(), Value::Bytes(sdp.to_vec()));
        add_flags(&mut d, flags);
        sdp_of(self.command(call_id, d).await?)
    }

    /// `delete`: end the call's media session (the whole call without
    /// `to_tag`).
    pub async fn delete(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
    ) -> Result<(), RtpengineError> {
        let mut d = command("delete", call_id, from_tag);
        if let Some(t) = to_tag {
            d.insert(b"to-tag".to_vec(), Value::Bytes(t.as_bytes().to_vec()));
        }
        self.command(call_id, d).await.map(|_| ())
    }

    /// Commands relay `i` did not answer, and whether it is left out now.
    pub fn relay_state(&self, i: usize) -> Option<(SocketAddr, u64, bool)> {
        let r = self.relays.get(i)?;
        let disabled = r.disabled_until_ms.load(Ordering::Relaxed) > self.now_ms();
        Some((r.socket.addr, r.timeouts.load(Ordering::Relaxed), disabled))
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Send `dict` to the call's relay, then to the others in turn while
    /// they do not answer. A relay's refusal is an answer: it is returned.
    pub async fn command(&self, call_id: &str, dict: Dict) -> Result<Dict, RtpengineError> {
        if self.relays.is_empty() {
            return Err(RtpengineError::NoRelay);
        }
        let body = serde_bencode::to_bytes(&Value::Dict(dict))
            .map_err(|e| RtpengineError::BadAnswer(format!("encoding: {e}")))?;
        let mut tried = Vec::new();
        while let Some(i) = self.pick(call_id, &tried) {
            tried.push(i);
            let relay = &self.relays[i];
            for _ in 0..self.retries {
                if let Some(answer) = self.exchange(relay.socket.addr, &body).await? {
                    return parse_answer(&answer);
                }
            }
            relay.timeouts.fetch_add(1, Ordering::Relaxed);
            let until = self.now_ms() + self.disable.as_millis() as u64;
            relay.disabled_until_ms.store(until, Ordering::Relaxed);
            crate::log_limited!(
                warn,
                relay = %relay.socket.addr,
                disable_s = self.disable.as_secs(),
                "rtpengine: no answer; relay left out"
            );
        }
        let names: Vec<String> = tried
            .iter()
            .map(|&i| self.relays[i].socket.addr.to_string())
            .collect();
        Err(RtpengineError::Unreachable(names.join(", ")))
    }

    /// The call's relay among those in use and not yet tried: by the hash
    /// of its Call-ID, in proportion to the weights.
    fn pick(&self, call_id: &str, tried: &[usize]) -> Option<usize> {
        let now = self.now_ms();
        let usable: Vec<usize> = (0..self.relays.len())
            .filter(|i| !tried.contains(i))
            .filter(|&i| self.relays[i].disabled_until_ms.load(Ordering::Relaxed) <= now)
            .collect();
        let total: u64 = usable
            .iter()
            .map(|&i| u64::from(self.relays[i].socket.weight))
            .sum();
        if total == 0 {
            return None;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        call_id.hash(&mut h);
        let mut point = h.finish() % total;
        for &i in &usable {
            let w = u64::from(self.relays[i].socket.weight);
            if point < w {
                return Some(i);
            }
            point -= w;
        }
        usable.last().copied()
    }

    /// One try: the answer's dictionary bytes, or `None` on timeout.
    async fn exchange(&self, to: SocketAddr, body: &[u8]) -> Result<Option<Bytes>, RtpengineError> {
        let cookie = format!("{:x}", self.next_cookie.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(cookie.clone(), tx);
        let mut packet = Vec::with_capacity(cookie.len() + 1 + body.len());
        packet.extend_from_slice(cookie.as_bytes());
        packet.push(b' ');
        packet.extend_from_slice(body);
        let sent = self.socket.send_to(&packet, to).await;
        let answer = match sent {
            Ok(_) => tokio::time::timeout(self.timeout, rx)
                .await
                .ok()
                .and_then(Result::ok),
            // A refused send (ICMP unreachable on a connected path, no
            // route) is a relay that does not answer.
            Err(_) => None,
        };
        lock(&self.pending).remove(&cookie);
        Ok(answer)
    }
}

/// The transaction layer sends offers through the relay when a branch
/// leaves (`tm::media`).
impl crate::tm::media::MediaRelay for Rtpengine {
    fn offer(
        &self,
        call_id: String,
        from_tag: String,
        sdp: Bytes,
        flags: String,
    ) -> crate::tm::media::MediaFuture<Bytes> {
        let me = self.this.upgrade();
        Box::pin(async move {
            let me = me.ok_or("the media relay client has stopped")?;
            me.offer(&call_id, &from_tag, &sdp, &flags)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn answer(
        &self,
        call_id: String,
        from_tag: String,
        to_tag: String,
        sdp: Bytes,
        flags: String,
    ) -> crate::tm::media::MediaFuture<Bytes> {
        let me = self.this.upgrade();
        Box::pin(async move {
            let me = me.ok_or("the media relay client has stopped")?;
            me.answer(&call_id, &from_tag, &to_tag, &sdp, &flags)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn delete(
        &self,
        call_id: String,
        from_tag: String,
        to_tag: Option<String>,
    ) -> crate::tm::media::MediaFuture<()> {
        let me = self.this.upgrade();
        Box::pin(async move {
            let me = me.ok_or("the media relay client has stopped")?;
            me.delete(&call_id, &from_tag, to_tag.as_deref())
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Match answers to commands by cookie until the socket fails.
async fn receive(
    socket: Arc<UdpSocket>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Bytes>>>>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = match socket.recv_from(&mut buf).await {
            Ok((n, _)) => n,
            // ICMP port unreachable from a dead relay surfaces here on Linux.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                tracing::warn!(error = %e, "rtpengine: control socket failed");
                return;
            }
        };
        let packet = &buf[..n];
        let Some(space) = packet.iter().position(|&b| b == b' ') else {
            continue;
        };
        let cookie = String::from_utf8_lossy(&packet[..space]).into_owned();
        if let Some(tx) = lock(&pending).remove(&cookie) {
            let _ = tx.send(Bytes::copy_from_slice(&packet[space + 1..]));
        }
    }
}

fn command(name: &str, call_id: &str, from_tag: &str) -> Dict {
    let mut d = Dict::new();
    d.insert(b"command".to_vec(), Value::Bytes(name.as_bytes().to_vec()));
    d.insert(
        b"call-id".to_vec(),
        Value::Bytes(call_id.as_bytes().to_vec()),
    );
    d.insert(
        b"from-tag".to_vec(),
        Value::Bytes(from_tag.as_bytes().to_vec()),
    );
    d
}

/// Keys whose values are lists: `KEY=VALUE` adds VALUE to the list.
const LIST_KEYS: &[&str] = &[
    "direction",
    "replace",
    "rtcp-mux",
    "SDES",
    "T.38",
    "codec-strip",
    "codec-offer",
    "codec-transcode",
    "codec-mask",
];

/// Kamailio's flag string (`"replace-origin ICE=remove RTP/AVP trust-address"`)
/// into the command: `replace-X` → `replace: [X]`, a transport protocol
/// (`RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVP`, ...) → `transport-protocol`,
/// `KEY=VALUE` → `KEY: VALUE` (appended for list keys such as `direction`),
/// anything else → `flags: [...]`.
pub fn add_flags(d: &mut Dict, flags: &str) {
    let push = |d: &mut Dict, key: &str, value: &str| {
        let entry = d
            .entry(key.as_bytes().to_vec())
            .or_insert_with(|| Value::List(Vec::new()));
        if let Value::List(list) = entry {
            list.push(Value::Bytes(value.as_bytes().to_vec()));
        }
    };
    for token in flags.split_whitespace() {
        if let Some(what) = token.strip_prefix("replace-") {
            push(d, "replace", what);
        } else if token.starts_with("RTP/") || token.starts_with("UDP/TLS/") {
            d.insert(
                b"transport-protocol".to_vec(),
                Value::Bytes(token.as_bytes().to_vec()),
            );
        } else if let Some(at) = token.strip_prefix("received-from=") {
            // `received-from=IP4:192.0.2.1` (added for `SIP-source-address`):
            // rtpengine wants `[family, address]`.
            if let Some((family, addr)) = at.split_once(':') {
                d.insert(
                    b"received-from".to_vec(),
                    Value::List(vec![
                        Value::Bytes(family.as_bytes().to_vec()),
                        Value::Bytes(addr.as_bytes().to_vec()),
                    ]),
                );
            }
        } else if let Some((key, value)) = token.split_once('=') {
            if LIST_KEYS.contains(&key) {
                push(d, key, value);
            } else {
                d.insert(
                    key.as_bytes().to_vec(),
                    Value::Bytes(value.as_bytes().to_vec()),
                );
            }
        } else {
            push(d, "flags", token);
        }
    }
}

fn parse_answer(answer: &[u8]) -> Result<Dict, RtpengineError> {
    let Value::Dict(d) = serde_bencode::from_bytes::<Value>(answer)
        .map_err(|e| RtpengineError::BadAnswer(e.to_string()))?
    else {
        return Err(RtpengineError::BadAnswer("not a dictionary".into()));
    };
    let text = |key: &[u8]| match d.get(key) {
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    match text(b"result").as_deref() {
        Some("ok") | Some("pong") => Ok(d),
        Some("error") => Err(RtpengineError::Refused(
            text(b"error-reason").unwrap_or_else(|| "no reason given".into()),
        )),
        other => Err(RtpengineError::BadAnswer(format!("result {other:?}"))),
    }
}

fn sdp_of(mut d: Dict) -> Result<Bytes, RtpengineError> {
    match d.remove(b"sdp".as_slice()) {
        Some(Value::Bytes(b)) => Ok(Bytes::from(b)),
        _ => Err(RtpengineError::BadAnswer("no sdp in the answer".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(d: &Dict, key: &str) -> Vec<String> {
        match d.get(key.as_bytes()) {
            Some(Value::List(l)) => l
                .iter()
                .map(|v| match v {
                    Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("{other:?}"),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn kamailio_flags_become_ng_keys() {
        let mut d = Dict::new();
        add_flags(
            &mut d,
            "replace-origin replace-session-connection ICE=remove RTP/AVP trust-address direction=external direction=internal received-from=IP6:2001:db8::1",
        );
        assert_eq!(list(&d, "received-from"), ["IP6", "2001:db8::1"]);
        assert_eq!(list(&d, "replace"), ["origin", "session-connection"]);
        assert_eq!(list(&d, "flags"), ["trust-address"]);
        assert_eq!(list(&d, "direction"), ["external", "internal"]);
        assert_eq!(
            d.get(b"ICE".as_slice()),
            Some(&Value::Bytes(b"remove".to_vec()))
        );
        assert_eq!(
            d.get(b"transport-protocol".as_slice()),
            Some(&Value::Bytes(b"RTP/AVP".to_vec()))
        );
    }

    #[test]
    fn an_error_answer_is_a_refusal_with_its_reason() {
        let e = parse_answer(b"d6:result5:error12:error-reason15:Unknown call-ide").unwrap_err();
        assert!(matches!(e, RtpengineError::Refused(r) if r == "Unknown call-id"));
        assert!(matches!(
            parse_answer(b"i3e"),
            Err(RtpengineError::BadAnswer(_))
        ));
        assert!(parse_answer(b"d6:result2:oke").is_ok());
    }

    /// A relay on a socket of the test's: answers each command with `ok`
    /// and the SDP it got, after recording the command.
    async fn fake_relay() -> (SocketAddr, Arc<Mutex<Vec<Dict>>>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Dict>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let p = &buf[..n];
                let sp = p.iter().position(|&b| b == b' ').unwrap();
                let Ok(Value::Dict(d)) = serde_bencode::from_bytes::<Value>(&p[sp + 1..]) else {
                    continue;
                };
                let mut answer = Dict::new();
                answer.insert(b"result".to_vec(), Value::Bytes(b"ok".to_vec()));
                if let Some(sdp) = d.get(b"sdp".as_slice()) {
                    answer.insert(b"sdp".to_vec(), sdp.clone());
                }
                lock(&log).push(d);
                let mut out = p[..=sp].to_vec();
                out.extend(serde_bencode::to_bytes(&Value::Dict(answer)).unwrap());
                let _ = s.send_to(&out, from).await;
            }
        });
        (addr, seen)
    }

    fn config(sockets: Vec<String>) -> RtpengineConfig {
        RtpengineConfig {
            sockets,
            timeout_ms: 50,
            retries: 2,
            disable_s: 60,
        }
    }

    #[tokio::test]
    async fn a_dead_relay_is_tried_then_left_out_for_the_next_calls() {
        let (live, seen) = fake_relay().await;
        // A port nobody answers on, weighted so most calls pick it first.
        let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        let c = config(vec![format!("udp:{dead_addr}=1000"), format!("udp:{live}")]);
        let client = Rtpengine::start(&c).await.unwrap();
        for n in 0..5 {
            let call = format!("call-{n}");
            let sdp = client
                .offer(&call, "ft", b"v=0\r\n", "trust-address")
                .await
                .unwrap();
            assert_eq!(&sdp[..], b"v=0\r\n");
        }
        assert_eq!(lock(&seen).len(), 5, "every offer reached the live relay");
        let (_, timeouts, disabled) = client.relay_state(0).unwrap();
        assert!(disabled);
        assert_eq!(
            timeouts, 1,
            "the dead relay cost one call its tries, then was left out"
        );
        let first = &lock(&seen)[0];
        assert_eq!(
            first.get(b"command".as_slice()),
            Some(&Value::Bytes(b"offer".to_vec()))
        );
        drop(dead);
    }

    #[tokio::test]
    async fn every_command_of_a_call_meets_the_same_relay() {
        let (a, seen_a) = fake_relay().await;
        let (b, seen_b) = fake_relay().await;
        let client = Rtpengine::start(&config(vec![format!("udp:{a}"), format!("udp:{b}")]))
            .await
            .unwrap();
        for n in 0..20 {
            let call = format!("c{n}");
            client.offer(&call, "f", b"v=0\r\n", "").await.unwrap();
            client
                .answer(&call, "f", "t", b"v=0\r\n", "")
                .await
                .unwrap();
            client.delete(&call, "f", None).await.unwrap();
        }
        let calls = |seen: &Arc<Mutex<Vec<Dict>>>| {
            let mut by_call: HashMap<Vec<u8>, usize> = HashMap::new();
            for d in lock(seen).iter() {
                if let Some(Value::Bytes(id)) = d.get(b"call-id".as_slice()) {
                    *by_call.entry(id.clone()).or_default() += 1;
                }
            }
            by_call
        };
        let (ca, cb) = (calls(&seen_a), calls(&seen_b));
        assert_eq!(ca.len() + cb.len(), 20, "no call split over two relays");
        assert!(ca.values().chain(cb.values()).all(|&n| n == 3));
        assert!(!ca.is_empty() && !cb.is_empty(), "both relays carry calls");
    }

    #[tokio::test]
    async fn without_relays_a_command_fails_at_once() {
        let client = Rtpengine::start(&config(Vec::new())).await.unwrap();
        assert!(matches!(
            client.delete("c", "f", None).await,
            Err(RtpengineError::NoRelay)
        ));
    }
}
