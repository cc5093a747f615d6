//! Kamailio `nathelper`'s message side: telling that a user agent is behind
//! a NAT (`nat_uac_test`) and making the message say where it can really be
//! reached (`fix_nated_contact`, `add_contact_alias`, `handle_ruri_alias`,
//! `fix_nated_sdp`). Everything compares what the message claims with the
//! packet's source; nothing here sends anything.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use wisp_sip::sdp::{self, AddressLines};
use wisp_sip::{Contacts, Host, Uri};

use super::context::{ActionError, MsgContext};

/// `nat_uac_test` flags (Kamailio's values).
pub mod test {
    /// The Contact URI's host is a private address (RFC 1918 / RFC 6598).
    pub const CONTACT_PRIVATE: u32 = 1;
    /// The top Via's sent-by address differs from the packet's source IP.
    pub const VIA_RECEIVED: u32 = 2;
    /// The top Via's sent-by address is private.
    pub const VIA_PRIVATE: u32 = 4;
    /// An SDP connection or origin address is private.
    pub const SDP_PRIVATE: u32 = 8;
    /// The top Via's port (5060 when absent) differs from the source port.
    pub const VIA_PORT: u32 = 16;
    /// The packet's source IP is private.
    pub const SOURCE_PRIVATE: u32 = 32;
    /// The message came over a WebSocket.
    pub const WEBSOCKET: u32 = 64;
    /// The Contact URI's port (5060 when absent) differs from the source port.
    pub const CONTACT_PORT: u32 = 128;
    /// An SDP connection address differs from the source IP.
    pub const SDP_SOURCE: u32 = 256;
    /// Every flag this router knows.
    pub const ALL: u32 = 511;
}

/// `fix_nated_sdp` flags (Kamailio's values).
pub mod sdp_fix {
    /// Add `a=direction:active` (the UA behind the NAT opens the media).
    pub const DIRECTION_ACTIVE: u32 = 1;
    /// Rewrite the `c=` addresses to the packet's source IP.
    pub const CONNECTION: u32 = 2;
    /// Add `a=nortpproxy:yes` (marks the SDP as handled).
    pub const NORTPPROXY: u32 = 4;
    /// Rewrite the `o=` address to the packet's source IP.
    pub const ORIGIN: u32 = 8;
    pub const ALL: u32 = 15;
}

/// RFC 1918, RFC 6598 (carrier-grade NAT) and IPv6 unique-local addresses:
/// the ones no packet from the internet carries as its source.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 10
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

fn host_ip(host: &Host) -> Option<IpAddr> {
    match host {
        Host::Ipv4(a) => Some(IpAddr::V4(*a)),
        Host::Ipv6(a) => Some(IpAddr::V6(*a)),
        Host::Domain(_) => None,
    }
}

/// The first Contact's URI, if the message has one (not `*`).
fn first_contact(ctx: &MsgContext) -> Option<Uri> {
    match ctx.msg.contacts().ok()? {
        Contacts::List(list) => list.into_iter().next().map(|na| na.uri),
        Contacts::Star => None,
    }
}

/// Kamailio `nat_uac_test(flags)`: true when any of the tests `flags`
/// selects says the sender is behind a NAT. Flags this router does not know
/// are refused, so a script's typo is not read as "no NAT".
pub fn nat_uac_test(ctx: &MsgContext, flags: u32) -> Result<bool, ActionError> {
    if flags & !test::ALL != 0 {
        return Err(ActionError::InvalidArgument(format!(
            "nat_uac_test flags {flags}: known are 1, 2, 4, 8, 16, 32, 64, 128, 256 and their sums"
        )));
    }
    let src = ctx.source.remote;
    let on = |f: u32| flags & f != 0;
    if on(test::SOURCE_PRIVATE) && is_private(src.ip()) {
        return Ok(true);
    }
    if on(test::WEBSOCKET) && ctx.source.proto.to_string().starts_with("WS") {
        return Ok(true);
    }
    if on(test::VIA_RECEIVED | test::VIA_PRIVATE | test::VIA_PORT)
        && let Ok(via) = ctx.msg.top_via()
    {
        let via_ip = host_ip(&via.host);
        if on(test::VIA_RECEIVED) && via_ip != Some(src.ip()) {
            return Ok(true);
        }
        if on(test::VIA_PRIVATE) && via_ip.is_some_and(is_private) {
            return Ok(true);
        }
        if on(test::VIA_PORT) && via.port.unwrap_or(5060) != src.port() {
            return Ok(true);
        }
    }
    if on(test::CONTACT_PRIVATE | test::CONTACT_PORT)
        && let Some(contact) = first_contact(ctx)
    {
        if on(test::CONTACT_PRIVATE) && host_ip(&contact.host).is_some_and(is_private) {
            return Ok(true);
        }
        if on(test::CONTACT_PORT) && contact.port.unwrap_or(5060) != src.port() {
            return Ok(true);
        }
    }
    if on(test::SDP_PRIVATE | test::SDP_SOURCE) {
        for line in sdp::address_lines(ctx.msg.body()) {
            let Some(ip) = line.ip().filter(|ip| !ip.is_unspecified()) else {
                continue;
            };
            if on(test::SDP_PRIVATE) && is_private(ip) {
                return Ok(true);
            }
            if on(test::SDP_SOURCE) && line.kind == b'c' && ip != src.ip() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Write the message's Contact headers back as one, the first URI changed
/// by `edit`.
fn edit_first_contact(
    ctx: &mut MsgContext,
    edit: impl FnOnce(&mut Uri) -> bool,
) -> Result<bool, ActionError> {
    let mut list = match ctx.msg.contacts() {
        Ok(Contacts::List(list)) if !list.is_empty() => list,
        Ok(_) => return Err(ActionError::NotFound),
        Err(e) => return Err(ActionError::BadMessage(format!("Contact: {}", e.reason()))),
    };
    if !edit(&mut list[0].uri) {
        return Ok(false);
    }
    let value = list
        .iter()
        .map(|na| na.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    ctx.msg.replace_header("Contact", Bytes::from(value));
    Ok(true)
}

fn host_of(addr: SocketAddr) -> Host {
    match addr.ip() {
        IpAddr::V4(a) => Host::Ipv4(a),
        IpAddr::V6(a) => Host::Ipv6(a),
    }
}

/// Kamailio `fix_nated_contact()`: the first Contact URI's host and port
/// become the packet's source address (user and parameters kept).
/// `not-found` when the message has no Contact (or `*`).
pub fn fix_nated_contact(ctx: &mut MsgContext) -> Result<(), ActionError> {
    let src = ctx.source.remote;
    edit_first_contact(ctx, |uri| {
        uri.host = host_of(src);
        uri.port = Some(src.port());
        true
    })
    .map(|_| ())
}

/// Kamailio's transport numbers in an `alias` parameter.
const ALIAS_PROTOS: [(&str, u8); 6] = [
    ("udp", 1),
    ("tcp", 2),
    ("tls", 3),
    ("sctp", 4),
    ("ws", 5),
    ("wss", 6),
];

/// `ip~port~proto` of where a message came from.
fn alias_value(ctx: &MsgContext) -> String {
    let src = ctx.source.remote;
    let proto = ctx.source.proto.to_string().to_ascii_lowercase();
    let n = ALIAS_PROTOS
        .iter()
        .find(|(name, _)| *name == proto)
        .map_or(1, |(_, n)| *n);
    let ip = match src.ip() {
        IpAddr::V6(a) => format!("[{a}]"),
        v4 => v4.to_string(),
    };
    format!("{ip}~{}~{n}", src.port())
}

/// Kamailio `add_contact_alias()`: when the first Contact URI does not name
/// the packet's source (address, port, or a transport other than UDP), add
/// `;alias=ip~port~proto` of the source to it, so requests sent to that
/// Contact later (in-dialog, whose Request-URI it becomes) find their way
/// back through the NAT with [`handle_ruri_alias`]. Returns false when the
/// Contact already names the source or carries an alias.
pub fn add_contact_alias(ctx: &mut MsgContext) -> Result<bool, ActionError> {
    let src = ctx.source.remote;
    let udp = ctx.source.proto.to_string() == "UDP";
    let alias = alias_value(ctx);
    edit_first_contact(ctx, |uri| {
        let reachable =
            host_ip(&uri.host) == Some(src.ip()) && uri.port.unwrap_or(5060) == src.port() && udp;
        if reachable || uri.param("alias").is_some() {
            return false;
        }
        uri.params
            .push(("alias".into(), Some(alias.as_str().into())));
        true
    })
}

/// Kamailio `handle_ruri_alias()`: when the Request-URI carries
/// `;alias=ip~port~proto`, send the request there (the destination URI,
/// Kamailio's `$du`) and remove the parameter. Returns false when there is
/// no alias; a malformed one is `invalid-argument`.
pub fn handle_ruri_alias(ctx: &mut MsgContext) -> Result<bool, ActionError> {
    let Some(value) = ctx.ruri().param("alias") else {
        return Ok(false);
    };
    let value = value.unwrap_or("").to_owned();
    let bad = || ActionError::InvalidArgument(format!("alias {value:?} is not ip~port~proto"));
    let mut parts = value.split('~');
    let (Some(ip), Some(port), proto, None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad())?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let proto = match proto {
        None => "udp",
        Some(n) => ALIAS_PROTOS
            .iter()
            .find(|(_, k)| n.parse() == Ok(*k))
            .map(|(name, _)| *name)
            .ok_or_else(bad)?,
    };
    let host = match ip {
        IpAddr::V6(a) => format!("[{a}]"),
        v4 => v4.to_string(),
    };
    ctx.dst_uri = Some(if proto == "udp" {
        format!("sip:{host}:{port}")
    } else {
        format!("sip:{host}:{port};transport={proto}")
    });
    let mut uri = ctx.ruri().clone();
    uri.params
        .retain(|(name, _)| !name.eq_ignore_ascii_case("alias"));
    ctx.set_ruri(uri);
    Ok(true)
}

/// Kamailio `fix_nated_sdp(flags)`: point the SDP at the packet's source
/// address (see [`sdp_fix`]). `not-found` when the message has no body.
pub fn fix_nated_sdp(ctx: &mut MsgContext, flags: u32) -> Result<(), ActionError> {
    if flags & !sdp_fix::ALL != 0 || flags == 0 {
        return Err(ActionError::InvalidArgument(format!(
            "fix_nated_sdp flags {flags}: known are 1, 2, 4, 8 and their sums"
        )));
    }
    if ctx.msg.body().is_empty() {
        return Err(ActionError::NotFound);
    }
    let mut body = ctx.msg.body().clone();
    let mut changed = false;
    let which = AddressLines {
        connection: flags & sdp_fix::CONNECTION != 0,
        origin: flags & sdp_fix::ORIGIN != 0,
    };
    if (which.connection || which.origin)
        && let Some(b) = sdp::rewrite_addresses(&body, ctx.source.remote.ip(), which)
    {
        body = b;
        changed = true;
    }
    for (flag, line) in [
        (sdp_fix::DIRECTION_ACTIVE, "a=direction:active"),
        (sdp_fix::NORTPPROXY, "a=nortpproxy:yes"),
    ] {
        if flags & flag != 0
            && let Some(b) = sdp::add_session_attribute(&body, line)
        {
            body = b;
            changed = true;
        }
    }
    if changed {
        ctx.msg.set_body(body, None);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Proto;
    use crate::transport::Source;
    use wisp_sip::Message;

    /// An INVITE from a phone at 192.168.1.10:5062 behind a NAT whose public
    /// side is `src`.
    fn invite(src: &str, proto: Proto, contact: &str, sdp: &str) -> MsgContext {
        let raw = format!(
            "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.10:5062;branch=z9hG4bK1;rport\r\n\
             From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
             Contact: {contact}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        let msg = Message::parse(Bytes::from(raw)).expect("parses");
        let summary = wisp_sip::sanity::check_request(&msg).expect("sane");
        let source = Source {
            proto,
            remote: src.parse().unwrap(),
            local: "198.51.100.1:5060".parse().unwrap(),
        };
        MsgContext::new(msg, source, summary)
    }

    const SDP: &str = "v=0\r\no=a 1 1 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

    fn natted() -> MsgContext {
        invite(
            "203.0.113.7:40123",
            Proto::Udp,
            "<sip:alice@192.168.1.10:5062;ob>",
            SDP,
        )
    }

    /// A phone on a public address that says where it is.
    fn public() -> MsgContext {
        let sdp = SDP.replace("192.168.1.10", "203.0.113.7");
        let raw_via = invite(
            "203.0.113.7:5062",
            Proto::Udp,
            "<sip:alice@203.0.113.7:5062>",
            &sdp,
        );
        let text = String::from_utf8(raw_via.msg.raw().to_vec())
            .unwrap()
            .replace("UDP 192.168.1.10:5062", "UDP 203.0.113.7:5062");
        let msg = Message::parse(Bytes::from(text)).unwrap();
        let summary = wisp_sip::sanity::check_request(&msg).unwrap();
        MsgContext::new(msg, raw_via.source, summary)
    }

    #[test]
    fn private_ranges_are_rfc1918_rfc6598_and_ula() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "100.64.0.1",
            "fd00::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "172.32.0.1",
            "100.128.0.1",
            "8.8.8.8",
            "127.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn each_test_flag_sees_its_own_evidence_of_a_nat() {
        let n = natted();
        for flag in [1, 2, 4, 8, 16, 128, 256] {
            assert!(
                nat_uac_test(&n, flag).unwrap(),
                "flag {flag} on a NATed phone"
            );
        }
        // The NAT's public side is not itself a private address.
        assert!(!nat_uac_test(&n, 32).unwrap());
        let p = public();
        assert!(!nat_uac_test(&p, test::ALL).unwrap(), "a public phone");
        assert!(
            nat_uac_test(&p, 1024).is_err(),
            "an unknown flag is refused"
        );
    }

    #[test]
    fn fix_nated_contact_points_the_contact_at_the_source() {
        let mut n = natted();
        fix_nated_contact(&mut n).unwrap();
        let out = String::from_utf8(n.msg.serialize().to_vec()).unwrap();
        assert!(
            out.contains("Contact: <sip:alice@203.0.113.7:40123;ob>\r\n"),
            "{out}"
        );
    }

    #[test]
    fn contact_alias_goes_out_and_comes_back_as_the_destination() {
        let mut n = natted();
        assert!(add_contact_alias(&mut n).unwrap());
        let out = String::from_utf8(n.msg.serialize().to_vec()).unwrap();
        let contact = "sip:alice@192.168.1.10:5062;ob;alias=203.0.113.7~40123~1";
        assert!(out.contains(&format!("Contact: <{contact}>\r\n")), "{out}");
        // An in-dialog request to that Contact.
        let mut bye = invite(
            "198.51.100.9:5060",
            Proto::Udp,
            "<sip:bob@198.51.100.9>",
            "",
        );
        bye.set_ruri(Uri::parse(contact.as_bytes()).unwrap());
        assert!(handle_ruri_alias(&mut bye).unwrap());
        assert_eq!(bye.dst_uri.as_deref(), Some("sip:203.0.113.7:40123"));
        assert_eq!(bye.ruri().to_string(), "sip:alice@192.168.1.10:5062;ob");
        assert!(!handle_ruri_alias(&mut bye).unwrap(), "the alias is gone");
    }

    #[test]
    fn a_contact_that_names_its_udp_source_gets_no_alias() {
        let mut p = public();
        assert!(!add_contact_alias(&mut p).unwrap());
        assert!(!p.msg.has_edits());
        // Over TCP the same Contact is not reachable (no listener there): alias it.
        let mut t = invite(
            "203.0.113.7:5062",
            Proto::Tcp,
            "<sip:alice@203.0.113.7:5062;transport=tcp>",
            "",
        );
        assert!(add_contact_alias(&mut t).unwrap());
        let mut req = public();
        let uri = "sip:alice@203.0.113.7:5062;transport=tcp;alias=203.0.113.7~5062~2";
        req.set_ruri(Uri::parse(uri.as_bytes()).unwrap());
        assert!(handle_ruri_alias(&mut req).unwrap());
        assert_eq!(
            req.dst_uri.as_deref(),
            Some("sip:203.0.113.7:5062;transport=tcp")
        );
    }

    #[test]
    fn a_malformed_alias_is_refused_and_changes_nothing() {
        let mut req = public();
        for bad in ["1.2.3.4", "1.2.3.4~x~1", "nohost~5060~1", "1.2.3.4~5060~9"] {
            let uri = format!("sip:a@1.2.3.4;alias={bad}");
            req.set_ruri(Uri::parse(uri.as_bytes()).unwrap());
            assert!(handle_ruri_alias(&mut req).is_err(), "{bad}");
            assert_eq!(req.dst_uri, None);
        }
    }

    #[test]
    fn fix_nated_sdp_rewrites_what_the_flags_say() {
        let mut n = natted();
        fix_nated_sdp(&mut n, sdp_fix::CONNECTION | sdp_fix::DIRECTION_ACTIVE).unwrap();
        let out = String::from_utf8(n.msg.serialize().to_vec()).unwrap();
        assert!(out.contains("c=IN IP4 203.0.113.7\r\n"), "{out}");
        assert!(out.contains("o=a 1 1 IN IP4 192.168.1.10\r\n"), "{out}");
        assert!(out.contains("a=direction:active\r\nm=audio"), "{out}");
        let body_len = out.split("\r\n\r\n").nth(1).unwrap().len();
        assert!(
            out.contains(&format!("Content-Length: {body_len}\r\n")),
            "{out}"
        );
        assert!(fix_nated_sdp(&mut n, 16).is_err());
        let mut no_body = invite("203.0.113.7:1", Proto::Udp, "<sip:a@10.0.0.1>", "");
        assert_eq!(fix_nated_sdp(&mut no_body, 2), Err(ActionError::NotFound));
    }
}
