//! Preformatted SIP request templates.
//!
//! A template is built once per run; per request only the sequence number (in the Via
//! branch, From tag and Call-ID) and, for REGISTER, the user index (in From/To/Contact)
//! vary. `write` copies literal segments and formats the numbers into a reused buffer,
//! so the hot path does no heap allocation once the buffer has grown to size.

use std::net::SocketAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Options,
    Register,
    /// A call: INVITE, then ACK and BYE within the dialog the 200 set up.
    Invite,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Invite => "INVITE",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Seq,
    User,
}

/// Marker bytes used while building the template; they are rejected in user input.
const SEQ_MARK: char = '\u{1}';
const USER_MARK: char = '\u{2}';
/// Written in `--uri`, replaced by the user index of each request.
pub const USER_PLACEHOLDER: &str = "{user}";

#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// Literal segments; `fields[i]` goes between `lits[i]` and `lits[i + 1]`.
    lits: Vec<Vec<u8>>,
    fields: Vec<Field>,
    /// `wb<nonce>-`: the token prefixing the sequence number in Call-ID and branch.
    token: String,
}

/// The run token: `wb` + 8 hex digits of the nonce + `-`. Responses are matched on it.
pub fn run_token(nonce: u32) -> String {
    format!("wb{nonce:08x}-")
}

/// Host part (without port, user or parameters) of a SIP URI, used as the AOR domain
/// for REGISTER. `sip:127.0.0.1:5060` -> `127.0.0.1`, `sip:[::1]:5060` -> `[::1]`.
pub fn uri_host(uri: &str) -> &str {
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .unwrap_or(uri);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    let hostport = &rest[..end];
    if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(i) => &hostport[..=i],
            None => hostport,
        }
    } else {
        hostport.split(':').next().unwrap_or(hostport)
    }
}

impl RequestTemplate {
    /// `ruri`: Request-URI; `aor_host`: domain of the REGISTER AORs; `local`: the address
    /// put into Via sent-by and the REGISTER Contact; `nonce`: per-run random value that
    /// makes branches/Call-IDs unique across runs.
    pub fn new(
        method: Method,
        ruri: &str,
        aor_host: &str,
        local: SocketAddr,
        nonce: u32,
    ) -> anyhow::Result<Self> {
        for (what, s) in [("uri", ruri), ("uri host", aor_host)] {
            if s.is_empty() || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
                anyhow::bail!(
                    "invalid {what} {s:?}: must be non-empty, without whitespace or control characters"
                );
            }
        }
        // `{user}` in the Request-URI becomes the user index, so OPTIONS or
        // INVITE can address the AORs a REGISTER run created (lookups).
        let ruri = &ruri.replace(USER_PLACEHOLDER, &USER_MARK.to_string());
        let token = run_token(nonce);
        let m = method.as_str();
        let s = SEQ_MARK;
        let u = USER_MARK;
        let mut t = String::with_capacity(512);
        t.push_str(&format!("{m} {ruri} SIP/2.0\r\n"));
        t.push_str(&format!(
            "Via: SIP/2.0/UDP {local};branch=z9hG4bK-{token}{s};rport\r\n"
        ));
        t.push_str("Max-Forwards: 70\r\n");
        match method {
            Method::Options | Method::Invite => {
                t.push_str(&format!(
                    "From: <sip:wisp-bench@{}>;tag={token}{s}\r\n",
                    local.ip_str()
                ));
                t.push_str(&format!("To: <{ruri}>\r\n"));
            }
            Method::Register => {
                t.push_str(&format!(
                    "From: <sip:user{u}@{aor_host}>;tag={token}{s}\r\n"
                ));
                t.push_str(&format!("To: <sip:user{u}@{aor_host}>\r\n"));
            }
        }
        t.push_str(&format!("Call-ID: {token}{s}@bench\r\n"));
        t.push_str(&format!("CSeq: 1 {m}\r\n"));
        if method == Method::Register {
            t.push_str(&format!("Contact: <sip:user{u}@{local}>\r\n"));
            t.push_str("Expires: 3600\r\n");
        }
        if method == Method::Invite {
            // Mandatory in an INVITE (RFC 3261 §8.1.1.8). The UAS never sends
            // us requests, so its user part is just a label.
            t.push_str(&format!("Contact: <sip:wisp-bench@{local}>\r\n"));
        }
        t.push_str("User-Agent: wisp-bench\r\n");
        t.push_str("Content-Length: 0\r\n\r\n");

        let mut lits = vec![Vec::new()];
        let mut fields = Vec::new();
        for c in t.chars() {
            match c {
                SEQ_MARK | USER_MARK => {
                    fields.push(if c == SEQ_MARK {
                        Field::Seq
                    } else {
                        Field::User
                    });
                    lits.push(Vec::new());
                }
                c => {
                    let mut b = [0u8; 4];
                    lits.last_mut()
                        .unwrap()
                        .extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        Ok(Self {
            lits,
            fields,
            token,
        })
    }

    /// Sets the transport the Via header names (`UDP` as built): `TLS` for
    /// requests sent over a TLS connection, so the answer comes back on it.
    pub fn set_via_transport(&mut self, transport: &str) {
        let via = b"Via: SIP/2.0/UDP ";
        if let Some(at) = self.lits[0].windows(via.len()).position(|w| w == via) {
            let start = at + via.len() - 4;
            self.lits[0].splice(start..start + 3, transport.bytes());
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Writes request number `seq` (for `user`, REGISTER only) into `out` (cleared first).
    #[inline]
    pub fn write(&self, seq: u64, user: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.lits[0]);
        for (f, lit) in self.fields.iter().zip(&self.lits[1..]) {
            push_u64(out, if *f == Field::Seq { seq } else { user });
            out.extend_from_slice(lit);
        }
    }
}

trait IpStr {
    fn ip_str(&self) -> String;
}
impl IpStr for SocketAddr {
    /// IP as it appears in a URI host (IPv6 in brackets).
    fn ip_str(&self) -> String {
        match self {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    }
}

#[inline]
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
        msg.split("\r\n")
            .filter_map(|l| l.strip_prefix(&format!("{name}: ")))
            .collect()
    }

    #[test]
    fn push_u64_formats() {
        for v in [0u64, 7, 10, 99, 12345, u64::MAX] {
            let mut o = Vec::new();
            push_u64(&mut o, v);
            assert_eq!(o, v.to_string().as_bytes());
        }
    }

    #[test]
    fn options_request_is_well_formed() {
        let t = RequestTemplate::new(
            Method::Options,
            "sip:127.0.0.1:5060",
            "127.0.0.1",
            local(),
            0xabc,
        )
        .unwrap();
        let mut out = Vec::new();
        t.write(42, 0, &mut out);
        let m = String::from_utf8(out).unwrap();
        assert!(
            m.starts_with("OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n"),
            "{m}"
        );
        assert!(m.ends_with("\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!(
            header(&m, "Via"),
            ["SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-wb00000abc-42;rport"]
        );
        assert_eq!(header(&m, "Max-Forwards"), ["70"]);
        assert_eq!(
            header(&m, "From"),
            ["<sip:wisp-bench@127.0.0.1>;tag=wb00000abc-42"]
        );
        assert_eq!(header(&m, "To"), ["<sip:127.0.0.1:5060>"]);
        assert_eq!(header(&m, "Call-ID"), ["wb00000abc-42@bench"]);
        assert_eq!(header(&m, "CSeq"), ["1 OPTIONS"]);
        assert_eq!(header(&m, "User-Agent"), ["wisp-bench"]);
        assert!(header(&m, "Contact").is_empty());
        // Exactly one blank line, at the end.
        assert_eq!(m.matches("\r\n\r\n").count(), 1);
        assert!(!m.contains('\u{1}') && !m.contains('\u{2}'));
    }

    #[test]
    fn register_request_is_well_formed_and_reuses_buffer() {
        let t = RequestTemplate::new(
            Method::Register,
            "sip:127.0.0.1:5060",
            "127.0.0.1",
            local(),
            1,
        )
        .unwrap();
        let mut out = Vec::new();
        t.write(1, 999, &mut out);
        t.write(7, 3, &mut out);
        let m = String::from_utf8(out).unwrap();
        assert!(m.starts_with("REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"));
        assert_eq!(
            header(&m, "From"),
            ["<sip:user3@127.0.0.1>;tag=wb00000001-7"]
        );
        assert_eq!(header(&m, "To"), ["<sip:user3@127.0.0.1>"]);
        assert_eq!(header(&m, "Contact"), ["<sip:user3@127.0.0.1:40000>"]);
        assert_eq!(header(&m, "Expires"), ["3600"]);
        assert_eq!(header(&m, "CSeq"), ["1 REGISTER"]);
        assert_eq!(header(&m, "Call-ID"), ["wb00000001-7@bench"]);
        assert!(!m.contains("999"));
    }

    #[test]
    fn invite_request_has_a_contact() {
        let t = RequestTemplate::new(
            Method::Invite,
            "sip:uas@127.0.0.1:5090",
            "127.0.0.1",
            local(),
            0xabc,
        )
        .unwrap();
        let mut out = Vec::new();
        t.write(5, 0, &mut out);
        let m = String::from_utf8(out).unwrap();
        assert!(
            m.starts_with("INVITE sip:uas@127.0.0.1:5090 SIP/2.0\r\n"),
            "{m}"
        );
        assert_eq!(header(&m, "CSeq"), ["1 INVITE"]);
        assert_eq!(header(&m, "Contact"), ["<sip:wisp-bench@127.0.0.1:40000>"]);
        assert_eq!(
            header(&m, "From"),
            ["<sip:wisp-bench@127.0.0.1>;tag=wb00000abc-5"]
        );
        assert_eq!(header(&m, "To"), ["<sip:uas@127.0.0.1:5090>"]);
    }

    #[test]
    fn ipv6_local_address_is_bracketed() {
        let l: SocketAddr = "[::1]:5555".parse().unwrap();
        let t = RequestTemplate::new(Method::Register, "sip:[::1]:5060", "[::1]", l, 1).unwrap();
        let mut out = Vec::new();
        t.write(0, 0, &mut out);
        let m = String::from_utf8(out).unwrap();
        assert!(m.contains("Via: SIP/2.0/UDP [::1]:5555;branch="));
        assert!(m.contains("Contact: <sip:user0@[::1]:5555>"));
    }

    #[test]
    fn uri_host_extraction() {
        assert_eq!(uri_host("sip:127.0.0.1:5060"), "127.0.0.1");
        assert_eq!(uri_host("sip:example.com"), "example.com");
        assert_eq!(
            uri_host("sip:alice@example.com:5070;transport=udp"),
            "example.com"
        );
        assert_eq!(uri_host("sip:[::1]:5060"), "[::1]");
        assert_eq!(uri_host("sips:[::1]"), "[::1]");
    }

    #[test]
    fn via_names_the_transport_the_request_goes_over() {
        let mut t = RequestTemplate::new(
            Method::Options,
            "sip:127.0.0.1:5061",
            "127.0.0.1",
            local(),
            3,
        )
        .unwrap();
        t.set_via_transport("TLS");
        let mut out = Vec::new();
        t.write(5, 0, &mut out);
        let m = String::from_utf8(out).unwrap();
        assert!(m.contains("\r\nVia: SIP/2.0/TLS "), "{m}");
        assert!(m.contains(";branch=z9hG4bK-wb"), "{m}");
        assert!(!m.contains("UDP"), "{m}");
    }

    #[test]
    fn rejects_bad_uri() {
        assert!(RequestTemplate::new(Method::Options, "sip:a b", "a", local(), 1).is_err());
        assert!(RequestTemplate::new(Method::Options, "sip:a\u{1}", "a", local(), 1).is_err());
    }

    #[test]
    fn user_placeholder_in_the_uri_addresses_each_user() {
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let t = RequestTemplate::new(
            Method::Options,
            "sip:user{user}@127.0.0.1",
            "127.0.0.1",
            local,
            7,
        )
        .unwrap();
        let mut out = Vec::new();
        t.write(9, 42, &mut out);
        let m = String::from_utf8(out).unwrap();
        assert!(
            m.starts_with("OPTIONS sip:user42@127.0.0.1 SIP/2.0\r\n"),
            "{m}"
        );
        assert!(m.contains("To: <sip:user42@127.0.0.1>\r\n"), "{m}");
    }
}
