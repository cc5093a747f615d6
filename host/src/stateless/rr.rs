//! Kamailio's `rr` module: `record_route()` and `loose_route()`, RFC 3261
//! §16.6 step 4 (Record-Route), §16.4 (Route information preprocessing,
//! including the strict-router compatibility of §16.4 and §16.12) and
//! §16.6 step 6 (a strict next hop).
//!
//! Both work on the received message: the Route set is read as it arrived
//! and every change is recorded as an edit, applied when the request is
//! serialized by `forward`.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use wisp_sip::{NameAddr, Uri};

use crate::stateless::Stateless;
use crate::stateless::context::{ActionError, MsgContext};
use crate::transport::Proto;

/// `record_route()`: insert `Record-Route: <sip:IP:PORT;lr>` naming the
/// socket the request arrived on (`;transport=tcp` after TCP; `;lr=on` with
/// `[rr] enable_full_lr`), so that the dialog's later requests come back
/// through this router (RFC 3261 §16.6 step 4).
///
/// Errors: `NotAllowedHere` for a reply or when this request already got our
/// Record-Route (one per request; the first one's socket is the one that
/// counts), `AlreadyHandled` after a reply or relay (the request is gone),
/// `Internal` when the request arrived on a wildcard (0.0.0.0 / ::) socket,
/// which has no address to record.
pub fn record_route(sl: &Stateless, ctx: &mut MsgContext) -> Result<(), ActionError> {
    if !ctx.msg.is_request() {
        return Err(ActionError::NotAllowedHere(
            "record_route: only a request can be record-routed".into(),
        ));
    }
    ctx.ensure_unhandled()?;
    if ctx.record_routed {
        return Err(ActionError::NotAllowedHere(
            "record_route: this request already carries our Record-Route".into(),
        ));
    }
    let value = record_route_value(ctx, sl.rr().enable_full_lr)?;
    ctx.msg.insert_record_route(Bytes::from(value));
    ctx.record_routed = true;
    Ok(())
}

/// `<sip:IP:PORT[;transport=tcp];lr>` for the socket the request arrived on.
fn record_route_value(ctx: &MsgContext, full_lr: bool) -> Result<String, ActionError> {
    let local = ctx.source.local;
    if local.ip().is_unspecified() {
        return Err(ActionError::Internal(format!(
            "record_route: the request arrived on wildcard socket {local}, \
             which names no address to record; listen on a concrete address"
        )));
    }
    Ok(socket_record_route(ctx.source.proto, local, full_lr))
}

/// Kamailio's double Record-Route (rr `enable_double_rr`): a
/// record-routed request that leaves by another transport or socket than
/// it came in on gets a second Record-Route, on top, naming the socket it
/// leaves from. The callee's in-dialog requests then reach the socket
/// facing it, the caller's the one facing the caller (it reads the route
/// set bottom up), and `loose_route` removes both. Whether it is needed,
/// and the value; none when the outgoing socket is the incoming one or a
/// wildcard.
pub fn second_record_route(
    record_routed: bool,
    incoming: (Proto, SocketAddr),
    outgoing: (Proto, SocketAddr),
    full_lr: bool,
) -> Option<Bytes> {
    if !record_routed || incoming == outgoing || outgoing.1.ip().is_unspecified() {
        return None;
    }
    Some(Bytes::from(socket_record_route(
        outgoing.0, outgoing.1, full_lr,
    )))
}

/// `<sip:IP:PORT[;transport=tcp|tls];lr>` naming `local` over `proto`.
fn socket_record_route(proto: Proto, local: SocketAddr, full_lr: bool) -> String {
    // Built from the IP, not the SocketAddr, so an IPv6 scope id never leaks in.
    let mut value = String::with_capacity(64);
    value.push_str("<sip:");
    match local.ip() {
        IpAddr::V4(ip) => wisp_sip::text::push_ip(&mut value, IpAddr::V4(ip)),
        IpAddr::V6(ip) => {
            value.push('[');
            wisp_sip::text::push_ip(&mut value, IpAddr::V6(ip));
            value.push(']');
        }
    }
    value.push(':');
    wisp_sip::text::push_int(&mut value, local.port());
    match proto {
        Proto::Tcp => value.push_str(";transport=tcp"),
        Proto::Tls => value.push_str(";transport=tls"),
        Proto::Ws => value.push_str(";transport=ws"),
        Proto::Wss => value.push_str(";transport=wss"),
        Proto::Udp => {}
    }
    value.push_str(if full_lr { ";lr=on>" } else { ";lr>" });
    value
}

/// `loose_route()`: route a request by its Route header (RFC 3261 §16.4).
///
/// Returns false, changing nothing, when the request has no Route header.
/// Otherwise, in this order:
///
/// 1. §16.4, strict previous hop: when the Request-URI is myself and the
///    request is in a dialog (To has a tag), a strict router put our
///    Record-Route URI into the Request-URI and moved the real one to the end
///    of the Route set. The last Route value becomes the Request-URI and is
///    removed. Without a To-tag a Request-URI of ours is an ordinary target
///    (`sip:alice@us`) with a preloaded Route, as in Kamailio.
/// 2. §16.4: the top Route values that are myself are removed, as many as
///    there are (double Record-Route, one value or several per header).
/// 3. If a Route value remains and its URI has `lr`, it is the next hop:
///    the destination URI (Kamailio `$du`, `ctx.dst_uri`) is set to it, the
///    Request-URI and the Route set stay.
/// 4. §16.6 step 6 / §16.12: if it has no `lr`, the next hop is a strict
///    router: the Request-URI is appended to the Route set as a new last
///    Route (Kamailio adds it after the last header), the Request-URI becomes
///    that top Route URI and the top Route value is removed. After a strict
///    previous hop (1) the old Request-URI is already the last Route value,
///    so it is left there instead of removed and appended again.
/// 5. If no Route value remains, the Request-URI is the target.
///
/// Returns true in cases 1–5. A second call on the same request returns the
/// first call's result and edits nothing.
///
/// Errors: `BadMessage` when a Route or To header does not parse,
/// `NotAllowedHere` for a reply, `AlreadyHandled` after a reply or relay.
pub fn loose_route(sl: &Stateless, ctx: &mut MsgContext) -> Result<bool, ActionError> {
    if !ctx.msg.is_request() {
        return Err(ActionError::NotAllowedHere(
            "loose_route: only a request has a Route set to follow".into(),
        ));
    }
    ctx.ensure_unhandled()?;
    if let Some(result) = ctx.loose_routed {
        return Ok(result);
    }
    let routes = ctx
        .msg
        .routes()
        .map_err(|e| ActionError::BadMessage(format!("Route: {}", e.reason())))?;
    if routes.is_empty() {
        ctx.loose_routed = Some(false);
        return Ok(false);
    }
    let plan = plan(sl, ctx, &routes)?;
    apply(ctx, plan)?;
    ctx.loose_routed = Some(true);
    Ok(true)
}

/// What `loose_route` changes, decided before anything is edited so that an
/// error leaves the message untouched.
#[derive(Debug, Default)]
struct Plan {
    /// Route values to remove from the top.
    remove_top: usize,
    /// Remove the last Route value (§16.4 strict previous hop).
    remove_last: bool,
    /// Append `Route: <this>` (the Request-URI, before a strict next hop).
    push_route: Option<Bytes>,
    new_ruri: Option<Uri>,
    dst_uri: Option<String>,
}

fn plan(sl: &Stateless, ctx: &MsgContext, routes: &[NameAddr]) -> Result<Plan, ActionError> {
    let myself = sl.myself();
    let mut p = Plan::default();
    // The window of Route values still in play: routes[first..end].
    let mut first = 0;
    let mut end = routes.len();

    // 1. §16.4: the previous hop was a strict router.
    let strict_previous = myself.uri_is_myself(ctx.ruri()) && in_dialog(ctx)?;
    if strict_previous && let Some(last) = routes.last() {
        p.new_ruri = Some(last.uri.clone());
        p.remove_last = true;
        end -= 1;
    }

    // 2. §16.4: our own entries at the top.
    while first < end && myself.uri_is_myself(&routes[first].uri) {
        first += 1;
    }

    if let Some(top) = routes[first..end].first() {
        if top.uri.param("lr").is_some() {
            // 3. A loose router (or the last hop, §16.12) is next: $du.
            p.dst_uri = Some(top.uri.to_string());
        } else {
            // 4. §16.6 step 6: a strict router is next.
            if strict_previous {
                // The Request-URI is already saved as the last Route value.
                p.remove_last = false;
            } else {
                p.push_route = Some(ctx.msg.request_uri_raw());
            }
            p.new_ruri = Some(top.uri.clone());
            first += 1;
        }
    }
    // 5. Nothing left: the Request-URI (as set in 1, or as received) is the target.
    p.remove_top = first;
    Ok(p)
}

/// The request belongs to a dialog: its To has a tag.
fn in_dialog(ctx: &MsgContext) -> Result<bool, ActionError> {
    let to = ctx
        .msg
        .to()
        .map_err(|e| ActionError::BadMessage(format!("To: {}", e.reason())))?;
    Ok(to.tag().is_some_and(|t| !t.is_empty()))
}

fn apply(ctx: &mut MsgContext, p: Plan) -> Result<(), ActionError> {
    // The Route set was parsed above, so these edits find their values; an
    // error here would be a bug in the edit layer, not in the message.
    let edit_failed = |e: wisp_sip::ParseError| {
        ActionError::Internal(format!("loose_route: Route edit failed: {}", e.reason()))
    };
    for _ in 0..p.remove_top {
        ctx.msg.remove_top_route().map_err(edit_failed)?;
    }
    if p.remove_last {
        ctx.msg.remove_last_route().map_err(edit_failed)?;
    }
    if let Some(ruri) = p.push_route {
        let mut value = Vec::with_capacity(ruri.len() + 2);
        value.push(b'<');
        value.extend_from_slice(&ruri);
        value.push(b'>');
        ctx.msg.append_header("Route", Bytes::from(value));
    }
    if let Some(uri) = p.new_ruri {
        ctx.set_ruri(uri);
    }
    if let Some(du) = p.dst_uri {
        ctx.dst_uri = Some(du);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use wisp_sip::Message;

    use super::*;
    use crate::config::Manifest;
    use crate::stateless::sanity;
    use crate::transport::{Source, Transports};

    /// The router at udp/tcp 127.0.0.1:5060 and [::1]:5060. No socket is
    /// bound: `myself` and record_route only need the addresses.
    fn stateless(rr: &str) -> Stateless {
        let text = format!(
            "[server]\nlisten = [\"udp:127.0.0.1:5060\"]\n{rr}\n[[plugin]]\nname = \"t\"\npath = \"t.wasm\"\n"
        );
        let manifest =
            Manifest::parse(&text, std::path::Path::new("inline.toml")).expect("manifest");
        let listen: Vec<SocketAddr> = vec![
            "127.0.0.1:5060".parse().expect("addr"),
            "[::1]:5060".parse().expect("addr"),
        ];
        let transports = Arc::new(Transports::new(vec![], listen, 65535));
        Stateless::new(transports, &manifest.server.aliases, manifest.rr.clone())
    }

    /// A request with `ruri`, To-tag `to_tag` and these extra header lines.
    fn ctx_on(
        proto: Proto,
        local: &str,
        ruri: &str,
        to_tag: Option<&str>,
        headers: &str,
    ) -> MsgContext {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let raw = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKrr1\r\n\
             {headers}From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>{to_tag}\r\n\
             Call-ID: rr1\r\nCSeq: 2 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let msg = Message::parse(Bytes::from(raw)).expect("request parses");
        let summary = sanity::check_request(&msg).expect("sane request");
        let source = Source {
            proto,
            remote: "192.0.2.1:5060".parse().expect("addr"),
            local: local.parse().expect("addr"),
        };
        MsgContext::new(msg, source, summary)
    }

    fn ctx(ruri: &str, to_tag: Option<&str>, headers: &str) -> MsgContext {
        ctx_on(Proto::Udp, "127.0.0.1:5060", ruri, to_tag, headers)
    }

    /// The serialized request's Route and Record-Route lines, in order.
    fn route_lines(ctx: &MsgContext) -> Vec<String> {
        let out = ctx.msg.serialize();
        String::from_utf8_lossy(&out)
            .split("\r\n")
            .filter(|l| l.starts_with("Route:") || l.starts_with("Record-Route:"))
            .map(str::to_owned)
            .collect()
    }

    fn ruri_line(ctx: &MsgContext) -> String {
        let out = ctx.msg.serialize();
        String::from_utf8_lossy(&out)
            .split("\r\n")
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The R-URI on the wire and the parsed one the host functions read agree.
    fn assert_ruri(ctx: &MsgContext, want: &str) {
        assert_eq!(ruri_line(ctx), format!("INVITE {want} SIP/2.0"));
        assert_eq!(ctx.ruri().to_string(), want);
    }

    #[test]
    fn rfc3261_16_6_step4_record_route_names_the_receiving_udp_socket() {
        let sl = stateless("");
        let mut c = ctx("sip:bob@192.0.2.4", None, "");
        record_route(&sl, &mut c).expect("record_route");
        assert_eq!(route_lines(&c), ["Record-Route: <sip:127.0.0.1:5060;lr>"]);
        // Our entry is topmost: it goes above the received ones.
        let mut c = ctx(
            "sip:bob@192.0.2.4",
            None,
            "Record-Route: <sip:p0.example.com;lr>\r\n",
        );
        record_route(&sl, &mut c).expect("record_route");
        assert_eq!(
            route_lines(&c),
            [
                "Record-Route: <sip:127.0.0.1:5060;lr>",
                "Record-Route: <sip:p0.example.com;lr>"
            ]
        );
    }

    #[test]
    fn rfc3261_16_6_step4_record_route_over_tcp_says_transport_and_brackets_ipv6() {
        let sl = stateless("");
        let mut c = ctx_on(Proto::Tcp, "[::1]:5060", "sip:bob@192.0.2.4", None, "");
        record_route(&sl, &mut c).expect("record_route");
        assert_eq!(
            route_lines(&c),
            ["Record-Route: <sip:[::1]:5060;transport=tcp;lr>"]
        );
        // And loose_route recognises that entry as ours.
        let rr = "Route: <sip:[::1]:5060;transport=tcp;lr>, <sip:bob@192.0.2.4>\r\n";
        let mut c = ctx_on(
            Proto::Tcp,
            "[::1]:5060",
            "sip:bob@192.0.2.4",
            Some("t1"),
            rr,
        );
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_eq!(route_lines(&c), ["Route: <sip:bob@192.0.2.4>"]);
    }

    #[test]
    fn rfc3261_16_6_step4_enable_full_lr_writes_lr_on() {
        let sl = stateless("[rr]\nenable_full_lr = true");
        let mut c = ctx("sip:bob@192.0.2.4", None, "");
        record_route(&sl, &mut c).expect("record_route");
        assert_eq!(
            route_lines(&c),
            ["Record-Route: <sip:127.0.0.1:5060;lr=on>"]
        );
    }

    #[test]
    fn rfc3261_16_6_step4_second_record_route_is_refused() {
        let sl = stateless("");
        let mut c = ctx("sip:bob@192.0.2.4", None, "");
        record_route(&sl, &mut c).expect("first");
        assert!(matches!(
            record_route(&sl, &mut c),
            Err(ActionError::NotAllowedHere(_))
        ));
        assert_eq!(route_lines(&c), ["Record-Route: <sip:127.0.0.1:5060;lr>"]);
    }

    #[test]
    fn rfc3261_16_6_step4_record_route_refuses_wildcard_socket_and_handled_request() {
        let sl = stateless("");
        let mut c = ctx_on(Proto::Udp, "0.0.0.0:5060", "sip:bob@192.0.2.4", None, "");
        assert!(matches!(
            record_route(&sl, &mut c),
            Err(ActionError::Internal(_))
        ));
        assert!(route_lines(&c).is_empty());
        let mut c = ctx("sip:bob@192.0.2.4", None, "");
        c.handled = Some(crate::stateless::context::Handled::Forwarded);
        assert_eq!(record_route(&sl, &mut c), Err(ActionError::AlreadyHandled));
    }

    #[test]
    fn a_record_routed_request_changing_socket_gets_a_second_record_route() {
        let udp = (Proto::Udp, "127.0.0.1:5060".parse().expect("addr"));
        let tls = (Proto::Tls, "127.0.0.1:5061".parse().expect("addr"));
        let tcp6 = (Proto::Tcp, "[::1]:5060".parse().expect("addr"));
        assert_eq!(
            second_record_route(true, udp, tls, false).as_deref(),
            Some(&b"<sip:127.0.0.1:5061;transport=tls;lr>"[..])
        );
        assert_eq!(
            second_record_route(true, tls, tcp6, true).as_deref(),
            Some(&b"<sip:[::1]:5060;transport=tcp;lr=on>"[..])
        );
        // Same socket both ways, or not record-routed: nothing to add.
        assert_eq!(second_record_route(true, udp, udp, false), None);
        assert_eq!(second_record_route(false, udp, tls, false), None);
    }

    #[test]
    fn rfc3261_16_4_no_route_header_returns_false_and_changes_nothing() {
        let sl = stateless("");
        let mut c = ctx("sip:bob@192.0.2.4", Some("t1"), "");
        assert_eq!(loose_route(&sl, &mut c), Ok(false));
        assert!(!c.msg.has_edits());
        assert_eq!(c.dst_uri, None);
    }

    #[test]
    fn rfc3261_16_4_own_top_route_removed_and_next_loose_hop_becomes_dst_uri() {
        let sl = stateless("");
        let rr = "Route: <sip:127.0.0.1:5060;lr>, <sip:p2.example.com;lr>\r\n";
        let mut c = ctx("sip:bob@192.0.2.4", Some("t1"), rr);
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_eq!(route_lines(&c), ["Route: <sip:p2.example.com;lr>"]);
        assert_eq!(c.dst_uri.as_deref(), Some("sip:p2.example.com;lr"));
        assert_ruri(&c, "sip:bob@192.0.2.4");
    }

    #[test]
    fn rfc3261_16_4_all_own_top_routes_removed_across_values_and_headers() {
        // Double Record-Route (UDP in, TCP out) leaves two entries of ours,
        // here one per header and the second sharing a list with the next hop.
        let sl = stateless("");
        let rr = "Route: <sip:127.0.0.1:5060;lr>\r\n\
                  Route: <sip:[::1]:5060;transport=tcp;lr>, <sip:p2.example.com;lr>, <sip:p3.example.com;lr>\r\n";
        let mut c = ctx("sip:bob@192.0.2.4", Some("t1"), rr);
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_eq!(
            route_lines(&c),
            ["Route: <sip:p2.example.com;lr>, <sip:p3.example.com;lr>"]
        );
        assert_eq!(c.dst_uri.as_deref(), Some("sip:p2.example.com;lr"));
        assert_ruri(&c, "sip:bob@192.0.2.4");
    }

    #[test]
    fn rfc3261_16_4_foreign_top_route_is_kept_and_becomes_dst_uri() {
        let sl = stateless("");
        let rr = "Route: <sip:p1.example.com;lr>\r\n";
        let mut c = ctx("sip:bob@192.0.2.4", None, rr);
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_eq!(route_lines(&c), ["Route: <sip:p1.example.com;lr>"]);
        assert_eq!(c.dst_uri.as_deref(), Some("sip:p1.example.com;lr"));
    }

    #[test]
    fn rfc3261_16_4_only_own_route_leaves_ruri_as_target() {
        let sl = stateless("");
        let mut c = ctx(
            "sip:bob@192.0.2.4:5070",
            Some("t1"),
            "Route: <sip:127.0.0.1:5060;lr>\r\n",
        );
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert!(route_lines(&c).is_empty());
        assert_eq!(c.dst_uri, None);
        assert_ruri(&c, "sip:bob@192.0.2.4:5070");
    }

    #[test]
    fn rfc3261_16_4_strict_previous_hop_ruri_restored_from_last_route() {
        // A strict router before us put our Record-Route URI into the R-URI
        // and the remote target at the end of the Route set.
        let sl = stateless("");
        let rr = "Route: <sip:p2.example.com;lr>, <sip:bob@192.0.2.4:5070>\r\n";
        let mut c = ctx("sip:127.0.0.1:5060;lr", Some("t1"), rr);
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_ruri(&c, "sip:bob@192.0.2.4:5070");
        assert_eq!(route_lines(&c), ["Route: <sip:p2.example.com;lr>"]);
        assert_eq!(c.dst_uri.as_deref(), Some("sip:p2.example.com;lr"));
    }

    #[test]
    fn rfc3261_16_4_strict_previous_hop_with_last_route_alone() {
        let sl = stateless("");
        let mut c = ctx(
            "sip:127.0.0.1:5060;lr",
            Some("t1"),
            "Route: <sip:bob@192.0.2.4:5070>\r\n",
        );
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_ruri(&c, "sip:bob@192.0.2.4:5070");
        assert!(route_lines(&c).is_empty());
        assert_eq!(c.dst_uri, None);
    }

    #[test]
    fn rfc3261_16_4_preloaded_route_with_local_ruri_is_not_a_strict_router() {
        // An initial request to a user of ours through a preloaded Route to
        // us: the R-URI is myself, but no strict router was involved.
        let sl = stateless("");
        let rr = "Route: <sip:127.0.0.1:5060;lr>\r\n";
        let mut c = ctx("sip:alice@127.0.0.1:5060", None, rr);
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_ruri(&c, "sip:alice@127.0.0.1:5060");
        assert!(route_lines(&c).is_empty());
        assert_eq!(c.dst_uri, None);
    }

    #[test]
    fn rfc3261_16_12_strict_next_hop_gets_ruri_and_old_ruri_goes_last() {
        let sl = stateless("");
        let rr = "Route: <sip:127.0.0.1:5060;lr>, <sip:strict.example.com>\r\n\
                  Route: <sip:p3.example.com;lr>\r\n";
        let mut c = ctx("sip:bob@192.0.2.4:5070", Some("t1"), rr);
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_ruri(&c, "sip:strict.example.com");
        assert_eq!(
            route_lines(&c),
            [
                "Route: <sip:p3.example.com;lr>",
                "Route: <sip:bob@192.0.2.4:5070>"
            ]
        );
        assert_eq!(c.dst_uri, None);
    }

    #[test]
    fn rfc3261_16_4_and_16_12_strict_previous_and_strict_next_hop() {
        // Between two strict routers we act as one: the next hop goes into
        // the R-URI; the remote target stays saved as the last Route value.
        let sl = stateless("");
        let rr = "Route: <sip:strict.example.com>, <sip:bob@192.0.2.4:5070>\r\n";
        let mut c = ctx("sip:127.0.0.1:5060;lr", Some("t1"), rr);
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_ruri(&c, "sip:strict.example.com");
        assert_eq!(route_lines(&c), ["Route: <sip:bob@192.0.2.4:5070>"]);
        assert_eq!(c.dst_uri, None);
    }

    #[test]
    fn rfc3261_16_4_second_loose_route_returns_first_result_without_editing_again() {
        let sl = stateless("");
        let rr =
            "Route: <sip:127.0.0.1:5060;lr>, <sip:p2.example.com;lr>, <sip:p3.example.com;lr>\r\n";
        let mut c = ctx("sip:bob@192.0.2.4", Some("t1"), rr);
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_eq!(loose_route(&sl, &mut c), Ok(true));
        assert_eq!(
            route_lines(&c),
            ["Route: <sip:p2.example.com;lr>, <sip:p3.example.com;lr>"]
        );
    }

    #[test]
    fn rfc3261_16_4_unparsable_route_is_a_bad_message_and_edits_nothing() {
        let sl = stateless("");
        let mut c = ctx(
            "sip:bob@192.0.2.4",
            Some("t1"),
            "Route: <sip:127.0.0.1:5060;lr>, <sip:p2\r\n",
        );
        assert!(matches!(
            loose_route(&sl, &mut c),
            Err(ActionError::BadMessage(_))
        ));
        assert!(!c.msg.has_edits());
        assert_eq!(c.loose_routed, None);
    }
}
