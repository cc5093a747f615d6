//! Stateless forwarding (Kamailio core `forward()`, RFC 3261 §16.11): a
//! request goes to its next hop with a Via of ours whose branch is derived
//! from the request, so a retransmission leaves with the same branch; a
//! response goes back along the Via chain after we remove our own Via.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use wisp_sip::{Host, Message, Scheme, Uri, Via};

use crate::stateless::Stateless;
use crate::stateless::context::{ActionError, Handled, MsgContext};
use crate::stateless::maxfwd;
use crate::stateless::reply;
use crate::stateless::rr;
use crate::transport::{Proto, Source, Transports};

/// An explicit next hop (`forward(host, port)`); none = the Request-URI.
pub struct NextHop {
    pub proto: Option<Proto>,
    pub host: String,
    pub port: Option<u16>,
}

/// `forward()` / `forward(host, port)`.
pub fn forward_request(
    sl: &Stateless,
    ctx: &mut MsgContext,
    hop: Option<NextHop>,
) -> Result<(), ActionError> {
    ctx.ensure_unhandled()?;
    maxfwd::before_forwarding(ctx)?;
    let (proto, host, port) = match hop {
        Some(h) => {
            let proto = h.proto.unwrap_or(Proto::Udp);
            (proto, h.host, h.port.unwrap_or(proto.default_port()))
        }
        None => {
            let raw_ruri;
            let target: &[u8] = match &ctx.dst_uri {
                Some(du) => du.as_bytes(),
                None => {
                    raw_ruri = ctx.msg.request_uri_raw();
                    &raw_ruri
                }
            };
            let uri = Uri::parse(target).map_err(|e| {
                let target = String::from_utf8_lossy(target);
                ActionError::BadMessage(format!("next hop {target:?}: {}", e.reason()))
            })?;
            next_hop_of(&uri).map_err(|e| match unroutable_scheme_reply(&uri) {
                Some((code, reason)) => ctx.fail(code, reason, e),
                None => e,
            })?
        }
    };
    let branch = stateless_branch(&ctx.summary.top_via, &ctx.msg, &host, port);
    let transports = Arc::clone(sl.transports());
    match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => {
            let dest = SocketAddr::new(ip, port);
            let proto = transports.connected_proto(proto, dest);
            let hop = Hop {
                proto,
                dest,
                record_routed: ctx.record_routed,
                full_lr: sl.rr().enable_full_lr,
            };
            let Outbound { data, added_rr } = with_our_via(
                &transports,
                &mut ctx.msg,
                hop,
                ctx.source,
                &ctx.summary.top_via,
                &branch,
            )
            .map_err(|e| ctx.fail(478, "Unresolvable destination", e))?;
            // An ACK is never answered, so nothing waits for its send to
            // fail: it leaves with its receive burst (one sendmmsg, and it
            // does not flush the burst's answers early). Any other request
            // is sent now, so that the route sees a send error.
            let sent = if ctx.msg.method() == Some(&wisp_sip::Method::Ack) {
                transports.send_request_batched(proto, dest, None, None, data, Box::new(|_| {}))
            } else {
                transports.send(proto, dest, None, data)
            };
            if let Err(e) = sent {
                // Take our Via (and second Record-Route) out again so that
                // a retry (or another destination) does not send them twice.
                let _ = ctx.msg.remove_top_via();
                if added_rr {
                    ctx.msg.remove_inserted_record_route();
                }
                return Err(ctx.fail(
                    503,
                    "Service Unavailable",
                    ActionError::SendFailed(e.to_string()),
                ));
            }
        }
        Err(_) => {
            // A name: resolve off the receive path, then send. Until RFC 3263
            // resolution lands, the system resolver (and /etc/hosts) answers.
            // The request was accepted for forwarding, so a failure here is
            // answered from this task, like Kamailio's 478 for an
            // unresolvable next hop.
            // Never for an ACK (`take` refuses it): an ACK is not answered.
            let late_reply = reply::DeferredReply::take(sl, ctx).ok();
            let source = ctx.source;
            let summary = ctx.summary.clone();
            let record_routed = ctx.record_routed;
            let full_lr = sl.rr().enable_full_lr;
            let mut msg = ctx.msg.clone();
            tokio::spawn(async move {
                let call_id = crate::util::CallId(&msg).to_string();
                crate::stats::inc(crate::stats::Counter::DnsLookups);
                let dest = match tokio::net::lookup_host((host.as_str(), port)).await {
                    Ok(mut addrs) => addrs.next(),
                    Err(_) => None,
                };
                let Some(dest) = dest else {
                    crate::stats::inc(crate::stats::Counter::DnsFailures);
                    crate::log_limited!(info, %host, %call_id, "forward: destination does not resolve; 478");
                    if let Some(reply) = late_reply {
                        let _ = reply.send(478, "Unresolvable destination", &[]);
                    }
                    return;
                };
                let hop = Hop {
                    proto,
                    dest,
                    record_routed,
                    full_lr,
                };
                match with_our_via(
                    &transports,
                    &mut msg,
                    hop,
                    source,
                    &summary.top_via,
                    &branch,
                ) {
                    Ok(Outbound { data, .. }) => {
                        if let Err(e) = transports.send_to_name(proto, dest, None, &host, data) {
                            crate::log_limited!(info, %dest, %call_id, "forward failed: {e}");
                        }
                    }
                    Err(e) => crate::log_limited!(info, %dest, %call_id, "forward failed: {e}"),
                }
            });
        }
    }
    ctx.handled = Some(Handled::Forwarded);
    Ok(())
}

/// The reply for a request whose next hop is `uri` when its scheme names no
/// host to send to (a tel: URI): 416 Unsupported URI Scheme. `None` for a
/// scheme [`next_hop_of`] can route.
pub fn unroutable_scheme_reply(uri: &Uri) -> Option<(u16, &'static str)> {
    matches!(uri.scheme, Scheme::Tel).then_some((416, "Unsupported URI Scheme"))
}

/// Transport, host and port a URI's request goes to (RFC 3263 without DNS:
/// TLS for `sips:`, else the `transport` param, else UDP; port defaults by
/// transport, 5061 for TLS).
pub fn next_hop_of(uri: &Uri) -> Result<(Proto, String, u16), ActionError> {
    if matches!(uri.scheme, Scheme::Tel) {
        return Err(ActionError::BadMessage(
            "a tel URI has no host to forward to".into(),
        ));
    }
    let sips = matches!(uri.scheme, Scheme::Sips);
    let proto = match uri.transport().map(str::to_ascii_lowercase).as_deref() {
        // RFC 7118 §5.2: `transport=ws` / `wss` (a sips: URI over WebSocket is wss).
        Some("ws") if !sips => Proto::Ws,
        Some("wss" | "ws") => Proto::Wss,
        // RFC 3261 §26.2: every hop of a sips: request is TLS (a sips: URI
        // with `transport=tcp` means TLS over TCP, RFC 5630 §3.1.3).
        _ if sips => Proto::Tls,
        Some("tcp") => Proto::Tcp,
        Some("udp") | None => Proto::Udp,
        Some("tls") => Proto::Tls,
        Some(other) => {
            return Err(ActionError::SendFailed(format!(
                "transport {other} is not supported"
            )));
        }
    };
    let host = match &uri.host {
        Host::Ipv6(ip) => ip.to_string(),
        other => other.to_string(),
    };
    Ok((proto, host, uri.port.unwrap_or(proto.default_port())))
}

/// Insert our Via (sent-by = the socket the request will leave from) and
/// serialize with every recorded edit applied.
fn with_our_via(
    transports: &Transports,
    msg: &mut Message,
    hop: Hop,
    source: Source,
    top: &Via,
    branch: &str,
) -> Result<Outbound, ActionError> {
    let Hop {
        proto,
        dest,
        record_routed,
        full_lr,
    } = hop;
    let arrived_on = (source.proto == proto).then_some(source.local);
    let local = transports
        .local_for(proto, &dest, arrived_on)
        .ok_or_else(|| ActionError::SendFailed(format!("no {proto} listener to send from")))?;
    mark_received(msg, top, source);
    // Double Record-Route when the request leaves by another transport or
    // socket, as `t_relay` does.
    let second_rr = rr::second_record_route(
        record_routed,
        (source.proto, source.local),
        (proto, local),
        full_lr,
    );
    let added_rr = second_rr.is_some();
    if let Some(value) = second_rr {
        msg.insert_record_route(value);
    }
    msg.insert_via(Bytes::from(our_via(proto, local, branch)));
    Ok(Outbound {
        data: msg.serialize(),
        added_rr,
    })
}

/// Where a forwarded request goes, and whether it was record-routed
/// (`full_lr`: rr `enable_full_lr`).
#[derive(Clone, Copy)]
struct Hop {
    proto: Proto,
    dest: SocketAddr,
    record_routed: bool,
    full_lr: bool,
}

/// A request ready to leave, and what was added to it for this hop.
struct Outbound {
    data: Bytes,
    /// A second Record-Route (the hop changes transport or socket).
    added_rr: bool,
}

/// `SIP/2.0/<proto> <local>;branch=<branch>`: the Via this router puts on a
/// request it sends, written without `format!` (every relay writes one).
pub fn our_via(proto: Proto, local: SocketAddr, branch: &str) -> String {
    let mut via = String::with_capacity(48 + branch.len());
    via.push_str(match proto {
        Proto::Udp => "SIP/2.0/UDP ",
        Proto::Tcp => "SIP/2.0/TCP ",
        Proto::Tls => "SIP/2.0/TLS ",
        Proto::Ws => "SIP/2.0/WS ",
        Proto::Wss => "SIP/2.0/WSS ",
    });
    wisp_sip::text::push_socket_addr(&mut via, local);
    via.push_str(";branch=");
    via.push_str(branch);
    via
}

/// RFC 3261 §18.2.1 / RFC 3581 §4: before the request leaves, its top Via
/// records where it really came from — `received` when the sent-by host is
/// not the source IP, and `received` + `rport=<port>` when the client asked
/// for rport — so that the response finds its way back through NAT.
/// `top` is the request's top Via as received (its summary's).
pub(crate) fn mark_received(msg: &mut Message, top: &Via, source: Source) {
    let rport = top.rport().is_some();
    let src_ip = source.remote.ip();
    if !rport && super::reply::host_is_ip(&top.host, src_ip) {
        return;
    }
    let mut ip = String::with_capacity(40);
    wisp_sip::text::push_ip(&mut ip, src_ip);
    let port = rport.then_some(source.remote.port());
    if let Err(e) = msg.mark_top_via_received(&ip, port) {
        tracing::debug!("top Via not marked: {e}");
    }
}

/// RFC 3261 §16.11: a stateless proxy's branch must be the same for a
/// retransmission and different per destination; hash the incoming top Via
/// branch (or the transaction headers for pre-3261 clients) and the next hop.
fn stateless_branch(top: &Via, msg: &Message, host: &str, port: u16) -> String {
    // Fixed seed: the same request gets the same branch on every worker.
    let mut h = foldhash::fast::FixedState::with_seed(0x7769_7370).build_hasher();
    match top.branch() {
        Some(b) if b.starts_with("z9hG4bK") => b.hash(&mut h),
        other => {
            other.hash(&mut h);
            msg.call_id().ok().hash(&mut h);
            msg.from()
                .ok()
                .and_then(|f| f.tag().map(str::to_owned))
                .hash(&mut h);
            msg.cseq().ok().map(|c| c.seq).hash(&mut h);
        }
    }
    host.hash(&mut h);
    port.hash(&mut h);
    let n = h.finish();
    let mut branch = String::with_capacity(STATELESS_BRANCH_PREFIX.len() + 16);
    branch.push_str(STATELESS_BRANCH_PREFIX);
    wisp_sip::text::push_hex8(&mut branch, (n >> 32) as u32);
    wisp_sip::text::push_hex8(&mut branch, n as u32);
    branch
}

/// Prefix of the Via branch of a stateless forward, followed by 16 hex
/// digits. Other layers that put a Via on requests use other prefixes.
pub const STATELESS_BRANCH_PREFIX: &str = "z9hG4bKwsp";

/// A Via branch [`stateless_branch`] made.
pub fn is_stateless_branch(branch: &str) -> bool {
    branch
        .strip_prefix(STATELESS_BRANCH_PREFIX)
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A response arrived: if its top Via is ours, remove it and send the
/// response to the next Via (RFC 3261 §16.7 step 9 / §18.2.2); else drop it.
pub fn forward_response(sl: &Stateless, mut msg: Message, source: Source) {
    let vias = match msg.vias() {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(remote = %source.remote, "response with bad Via dropped: {}", e.reason());
            return;
        }
    };
    let Some(top) = vias.first() else { return };
    // Stateless branches only: a response on any other branch of ours (a
    // transaction's, whose transaction ended) is not forwarded.
    let ours = sl.myself().is_myself(&top.host, top.port, &Scheme::Sip)
        && top.branch().is_some_and(is_stateless_branch);
    if !ours {
        tracing::debug!(remote = %source.remote, "response whose top Via is not ours dropped");
        return;
    }
    let Some(next) = vias.get(1) else {
        tracing::debug!("response with only our Via: nothing to forward to");
        return;
    };
    let proto = match next.transport.as_str() {
        "TCP" => Proto::Tcp,
        "TLS" => Proto::Tls,
        "WS" => Proto::Ws,
        "WSS" => Proto::Wss,
        _ => Proto::Udp,
    };
    let ip = next
        .received()
        .and_then(|r| r.trim_matches(['[', ']']).parse::<IpAddr>().ok())
        .or(match &next.host {
            Host::Ipv4(v4) => Some(IpAddr::V4(*v4)),
            Host::Ipv6(v6) => Some(IpAddr::V6(*v6)),
            Host::Domain(d) => d.parse().ok(),
        });
    let Some(ip) = ip else {
        crate::log_limited!(
            info,
            "response to a Via by name without received: not supported yet, dropped"
        );
        return;
    };
    let port = next
        .rport()
        .flatten()
        .or(next.port)
        .unwrap_or(proto.default_port());
    if msg.remove_top_via().is_err() {
        return;
    }
    let dest = SocketAddr::new(ip, port);
    let code = msg.status().unwrap_or(0);
    match sl
        .transports()
        .send_response(proto, dest, None, msg.serialize())
    {
        Ok(()) => crate::stats::reply_sent(code, crate::stats::ReplyOrigin::Relayed),
        Err(e) => crate::log_limited!(info, %dest, "response forward failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(uri: &str) -> Result<(Proto, String, u16), ActionError> {
        next_hop_of(&Uri::parse(uri.as_bytes()).expect("uri"))
    }

    #[test]
    fn next_hop_follows_transport_param_and_default_port() {
        assert_eq!(
            hop("sip:bob@10.0.0.1").unwrap(),
            (Proto::Udp, "10.0.0.1".into(), 5060)
        );
        assert_eq!(
            hop("sip:bob@10.0.0.1:5070;transport=TCP").unwrap(),
            (Proto::Tcp, "10.0.0.1".into(), 5070)
        );
        assert_eq!(
            hop("sip:[2001:db8::1]:5080").unwrap(),
            (Proto::Udp, "2001:db8::1".into(), 5080)
        );
    }

    #[test]
    fn only_a_tel_uri_is_answered_416_for_its_scheme() {
        let uri = |u: &str| Uri::parse(u.as_bytes()).expect("uri");
        assert_eq!(
            unroutable_scheme_reply(&uri("tel:+1-201-555-0123")),
            Some((416, "Unsupported URI Scheme"))
        );
        assert_eq!(unroutable_scheme_reply(&uri("sip:bob@10.0.0.1")), None);
        assert_eq!(unroutable_scheme_reply(&uri("sips:bob@10.0.0.1")), None);
    }

    #[test]
    fn sips_and_transport_tls_go_over_tls_never_in_clear() {
        for (uri, port) in [
            ("sips:bob@10.0.0.1", 5061),
            ("sips:bob@10.0.0.1:5071;transport=tcp", 5071),
            ("sips:bob@10.0.0.1;transport=udp", 5061),
            ("sip:bob@10.0.0.1;transport=TLS", 5061),
        ] {
            assert_eq!(
                hop(uri).unwrap(),
                (Proto::Tls, "10.0.0.1".into(), port),
                "{uri}"
            );
        }
        assert!(matches!(
            hop("tel:+15551234"),
            Err(ActionError::BadMessage(_))
        ));
        assert!(matches!(
            hop("sip:bob@10.0.0.1;transport=sctp"),
            Err(ActionError::SendFailed(_))
        ));
    }

    /// A request from 192.0.2.1 that arrived over `proto` on 127.0.0.1:5060.
    fn arrived_over(proto: Proto) -> (Message, Source, Via) {
        let raw = "INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
                   Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKf1\r\n\
                   From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\n\
                   Call-ID: f1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let msg = Message::parse(Bytes::from(raw)).expect("request parses");
        let top = msg.vias().expect("vias")[0].clone();
        let source = Source {
            proto,
            remote: "192.0.2.1:5060".parse().expect("addr"),
            local: "127.0.0.1:5060".parse().expect("addr"),
        };
        (msg, source, top)
    }

    fn record_routes(data: &Bytes) -> Vec<String> {
        String::from_utf8_lossy(data)
            .split("\r\n")
            .filter_map(|l| l.strip_prefix("Record-Route: "))
            .map(str::to_owned)
            .collect()
    }

    /// Kamailio's double Record-Route for the stateless `forward`, as for
    /// `t_relay`: a record-routed request that leaves by another transport
    /// gets a second Record-Route on top naming the socket it leaves from.
    #[test]
    fn forward_to_another_transport_adds_the_second_record_route() {
        // TCP listens on 127.0.0.1:5060; no UDP socket is needed to build.
        let transports =
            Transports::new(vec![], vec!["127.0.0.1:5060".parse().expect("addr")], 65535);
        // A request that arrived over `inbound` (record-routed with `rr`
        // when given), forwarded over TCP to 127.0.0.1:5070.
        let forwarded = |inbound, rr: Option<&'static str>| {
            let (mut msg, source, top) = arrived_over(inbound);
            if let Some(rr) = rr {
                msg.insert_record_route(Bytes::from_static(rr.as_bytes()));
            }
            let hop = Hop {
                proto: Proto::Tcp,
                dest: "127.0.0.1:5070".parse().expect("addr"),
                record_routed: rr.is_some(),
                full_lr: false,
            };
            let out =
                with_our_via(&transports, &mut msg, hop, source, &top, "z9hG4bKx").expect("built");
            (msg, out)
        };

        let (mut msg, out) = forwarded(Proto::Udp, Some("<sip:127.0.0.1:5060;lr>"));
        assert!(out.added_rr);
        assert_eq!(
            record_routes(&out.data),
            [
                "<sip:127.0.0.1:5060;transport=tcp;lr>",
                "<sip:127.0.0.1:5060;lr>"
            ]
        );
        // A failed send takes it back, so a retry does not carry it twice.
        assert!(msg.remove_inserted_record_route());

        // Same transport and socket: one Record-Route is enough.
        let (_, out) = forwarded(Proto::Tcp, Some("<sip:127.0.0.1:5060;transport=tcp;lr>"));
        assert!(!out.added_rr);
        assert_eq!(record_routes(&out.data).len(), 1);

        // Not record-routed: nothing is added.
        let (_, out) = forwarded(Proto::Udp, None);
        assert!(!out.added_rr);
        assert!(record_routes(&out.data).is_empty());
    }
}
