//! The caller's side of a call after the INVITE's final response: the ACK and BYE
//! built from the 200 (RFC 3261 §12.1.2 route set and remote target, §12.2.1.1
//! in-dialog requests), and the ACK for a non-2xx final (§17.1.1.3).
//!
//! From and Call-ID are copied from the response (they are ours, echoed back), so
//! the in-dialog requests need no per-call state in the engine.

use std::net::SocketAddr;

use crate::request::push_u64;
use crate::response::{header, headers, trim};

/// What a 2xx to the INVITE establishes, borrowed from the response.
#[derive(Debug, PartialEq, Eq)]
pub struct Dialog<'a> {
    pub from: &'a [u8],
    /// To with the UAS's tag.
    pub to: &'a [u8],
    pub call_id: &'a [u8],
    /// Remote target: the URI of the Contact.
    pub target: &'a [u8],
    /// Route set: the Record-Route entries in reverse order (§12.1.2).
    pub route: Vec<&'a [u8]>,
}

/// Splits a header value list on commas outside `<...>` and quoted strings.
fn split_list(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(v);
    std::iter::from_fn(move || {
        let s = rest?;
        let (mut angle, mut quote, mut esc) = (false, false, false);
        let mut end = s.len();
        for (i, &b) in s.iter().enumerate() {
            match b {
                _ if esc => esc = false,
                b'\\' if quote => esc = true,
                b'"' if !angle => quote = !quote,
                b'<' if !quote => angle = true,
                b'>' if !quote => angle = false,
                b',' if !angle && !quote => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        rest = s.get(end + 1..);
        Some(trim(&s[..end]))
    })
    .filter(|e| !e.is_empty())
}

/// URI of a Contact value: inside `<...>` if present, else up to the first `;`.
fn contact_uri(v: &[u8]) -> Option<&[u8]> {
    let v = split_list(v).next()?;
    let uri = match v.iter().position(|&b| b == b'<') {
        Some(open) => {
            let inner = &v[open + 1..];
            &inner[..inner.iter().position(|&b| b == b'>')?]
        }
        None => v.split(|&b| b == b';').next()?,
    };
    let uri = trim(uri);
    // `*` is only valid in REGISTER; a target must be a URI.
    (uri.contains(&b':') && !uri.iter().any(|b| b.is_ascii_whitespace())).then_some(uri)
}

fn has_tag(to: &[u8]) -> bool {
    to.windows(5).any(|w| w.eq_ignore_ascii_case(b";tag="))
}

/// The dialog a 2xx to our INVITE sets up; `None` if it cannot (no tagged To,
/// no usable Contact, no From/Call-ID).
pub fn dialog(resp: &[u8]) -> Option<Dialog<'_>> {
    let to = header(resp, b"To", b"t").filter(|t| has_tag(t))?;
    let target = contact_uri(header(resp, b"Contact", b"m")?)?;
    let mut route: Vec<&[u8]> = headers(resp, b"Record-Route", b"")
        .flat_map(split_list)
        .collect();
    route.reverse();
    Some(Dialog {
        from: header(resp, b"From", b"f")?,
        to,
        call_id: header(resp, b"Call-ID", b"i")?,
        target,
        route,
    })
}

/// Writes the requests of calls; one per run.
#[derive(Debug, Clone)]
pub struct CallWriter {
    /// The INVITE's Request-URI (an ACK for a non-2xx repeats it).
    ruri: Vec<u8>,
    /// `Via: SIP/2.0/UDP <local>;branch=z9hG4bK-<token>`, the call's seq follows.
    via: Vec<u8>,
}

impl CallWriter {
    pub fn new(ruri: &str, local: SocketAddr, token: &str) -> Self {
        CallWriter {
            ruri: ruri.as_bytes().to_vec(),
            via: format!("Via: SIP/2.0/UDP {local};branch=z9hG4bK-{token}").into_bytes(),
        }
    }

    /// The ACK (CSeq 1) and BYE (CSeq 2) of call `seq` within dialog `d`; each
    /// is a new transaction, so each gets its own branch (the INVITE's is
    /// `<token><seq>`).
    pub fn write_ack_bye(&self, seq: u64, d: &Dialog, ack: &mut Vec<u8>, bye: &mut Vec<u8>) {
        self.in_dialog(b"ACK", 1, b".a", seq, d, ack);
        self.in_dialog(b"BYE", 2, b".b", seq, d, bye);
    }

    fn in_dialog(
        &self,
        m: &[u8],
        cseq: u8,
        branch: &[u8],
        seq: u64,
        d: &Dialog,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        // Only loose routers (`;lr`) are supported, as both routers under test
        // are: the R-URI is the remote target and the Route set goes as is.
        self.start(m, d.target, seq, branch, out);
        if !d.route.is_empty() {
            out.extend_from_slice(b"Route: ");
            for (i, r) in d.route.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(r);
            }
            out.extend_from_slice(b"\r\n");
        }
        self.end(m, cseq, d.from, d.to, d.call_id, out);
    }

    /// The ACK for a non-2xx final to the INVITE: part of the INVITE
    /// transaction (same branch, R-URI, CSeq number), To from the response.
    /// Without it a stateful router would retransmit its final answer.
    /// `None` if the response lacks From, To or Call-ID.
    pub fn write_ack_failure(&self, seq: u64, resp: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let from = header(resp, b"From", b"f")?;
        let to = header(resp, b"To", b"t")?;
        let call_id = header(resp, b"Call-ID", b"i")?;
        out.clear();
        self.start(b"ACK", &self.ruri, seq, b"", out);
        self.end(b"ACK", 1, from, to, call_id, out);
        Some(())
    }

    fn start(&self, m: &[u8], ruri: &[u8], seq: u64, branch: &[u8], out: &mut Vec<u8>) {
        for part in [m, b" ", ruri, b" SIP/2.0\r\n", &self.via] {
            out.extend_from_slice(part);
        }
        push_u64(out, seq);
        out.extend_from_slice(branch);
        out.extend_from_slice(b";rport\r\nMax-Forwards: 70\r\n");
    }

    fn end(&self, m: &[u8], cseq: u8, from: &[u8], to: &[u8], call_id: &[u8], out: &mut Vec<u8>) {
        for (name, v) in [
            (&b"From: "[..], from),
            (b"To: ", to),
            (b"Call-ID: ", call_id),
        ] {
            out.extend_from_slice(name);
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"CSeq: ");
        push_u64(out, cseq as u64);
        out.push(b' ');
        out.extend_from_slice(m);
        out.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-wb00000abc-7;rport=40000\r\n\
Record-Route: <sip:127.0.0.1:5060;lr>, <sip:10.0.0.1;lr;x=\"a,b\">\r\n\
Record-Route: \"proxy, 3\" <sip:p3@127.0.0.3;lr>\r\n\
From: <sip:wisp-bench@127.0.0.1>;tag=wb00000abc-7\r\n\
To: <sip:uas@127.0.0.1:5090>;tag=uas\r\n\
Call-ID: wb00000abc-7@bench\r\n\
CSeq: 1 INVITE\r\n\
Contact: \"UAS\" <sip:uas@127.0.0.1:5090;transport=udp>;expires=60\r\n\
Content-Length: 0\r\n\r\n";

    fn lines(m: &[u8]) -> Vec<String> {
        String::from_utf8(m.to_vec())
            .unwrap()
            .split("\r\n")
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn dialog_from_a_200() {
        let d = dialog(OK).unwrap();
        assert_eq!(d.target, b"sip:uas@127.0.0.1:5090;transport=udp");
        assert_eq!(d.to, b"<sip:uas@127.0.0.1:5090>;tag=uas");
        assert_eq!(d.call_id, b"wb00000abc-7@bench");
        let route: Vec<&str> = d
            .route
            .iter()
            .map(|r| std::str::from_utf8(r).unwrap())
            .collect();
        assert_eq!(
            route,
            [
                "\"proxy, 3\" <sip:p3@127.0.0.3;lr>",
                "<sip:10.0.0.1;lr;x=\"a,b\">",
                "<sip:127.0.0.1:5060;lr>"
            ]
        );
    }

    #[test]
    fn no_dialog_without_tag_or_contact() {
        let untagged = String::from_utf8(OK.to_vec())
            .unwrap()
            .replace(";tag=uas", "");
        assert_eq!(dialog(untagged.as_bytes()), None);
        let no_contact = String::from_utf8(OK.to_vec())
            .unwrap()
            .replace("Contact:", "X-Contact:");
        assert_eq!(dialog(no_contact.as_bytes()), None);
        let star = String::from_utf8(OK.to_vec()).unwrap().replace(
            "\"UAS\" <sip:uas@127.0.0.1:5090;transport=udp>;expires=60",
            "*",
        );
        assert_eq!(dialog(star.as_bytes()), None);
        assert_eq!(dialog(b"\xff\xfe"), None);
        // A bare Contact URI ends at its first parameter.
        assert_eq!(contact_uri(b"sip:u@h:1;expires=3"), Some(&b"sip:u@h:1"[..]));
        assert_eq!(contact_uri(b"<sip:u@h"), None);
    }

    #[test]
    fn ack_and_bye_within_the_dialog() {
        let w = CallWriter::new(
            "sip:uas@127.0.0.1:5090",
            "127.0.0.1:40000".parse().unwrap(),
            "wb00000abc-",
        );
        let d = dialog(OK).unwrap();
        let (mut ack, mut bye) = (Vec::new(), Vec::new());
        w.write_ack_bye(7, &d, &mut ack, &mut bye);
        let route = "Route: \"proxy, 3\" <sip:p3@127.0.0.3;lr>, <sip:10.0.0.1;lr;x=\"a,b\">, <sip:127.0.0.1:5060;lr>";
        assert_eq!(
            lines(&ack),
            [
                "ACK sip:uas@127.0.0.1:5090;transport=udp SIP/2.0",
                "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-wb00000abc-7.a;rport",
                "Max-Forwards: 70",
                route,
                "From: <sip:wisp-bench@127.0.0.1>;tag=wb00000abc-7",
                "To: <sip:uas@127.0.0.1:5090>;tag=uas",
                "Call-ID: wb00000abc-7@bench",
                "CSeq: 1 ACK",
                "Content-Length: 0",
                "",
                ""
            ]
        );
        let bye = lines(&bye);
        assert_eq!(bye[0], "BYE sip:uas@127.0.0.1:5090;transport=udp SIP/2.0");
        assert_eq!(
            bye[1],
            "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-wb00000abc-7.b;rport"
        );
        assert_eq!(bye[3], route);
        assert_eq!(bye[7], "CSeq: 2 BYE");
    }

    #[test]
    fn ack_for_a_failure_is_in_the_invite_transaction() {
        let w = CallWriter::new(
            "sip:uas@127.0.0.1:5090",
            "127.0.0.1:40000".parse().unwrap(),
            "wb00000abc-",
        );
        let resp = b"SIP/2.0 503 Busy\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-wb00000abc-9\r\nFrom: <sip:a@b>;tag=wb00000abc-9\r\nTo: <sip:uas@127.0.0.1:5090>;tag=p\r\nCall-ID: wb00000abc-9@bench\r\nCSeq: 1 INVITE\r\n\r\n";
        let mut out = Vec::new();
        w.write_ack_failure(9, resp, &mut out).unwrap();
        let l = lines(&out);
        assert_eq!(l[0], "ACK sip:uas@127.0.0.1:5090 SIP/2.0");
        assert_eq!(
            l[1],
            "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-wb00000abc-9;rport"
        );
        assert!(!l.iter().any(|h| h.starts_with("Route:")));
        assert_eq!(l[4], "To: <sip:uas@127.0.0.1:5090>;tag=p");
        assert_eq!(l[6], "CSeq: 1 ACK");
        assert_eq!(
            w.write_ack_failure(9, b"SIP/2.0 503 x\r\n\r\n", &mut out),
            None
        );
    }
}
