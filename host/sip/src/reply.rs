//! Building a response to a request (RFC 3261 §8.2.6, RFC 3581).
//!
//! Via, From, To, Call-ID and CSeq are copied with their received text;
//! only the top Via (`received`, `rport`) and the To tag are touched.

use bytes::{BufMut, Bytes, BytesMut};

use crate::edit::{put_header, put_line};
use crate::header::HeaderName;
use crate::message::Message;
use crate::parse::{ParseError, first_element, quoted_end, trim_lws};

/// Options for [`build_reply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyOptions<'a> {
    /// Added to To unless it already has a tag.
    pub to_tag: Option<&'a str>,
    /// Set as `;received=` on the top Via.
    pub top_via_received: Option<&'a str>,
    /// Fills `;rport` on the top Via if the client sent it (RFC 3581 §4).
    pub top_via_rport: Option<u16>,
    pub extra_headers: &'a [(&'a str, &'a str)],
    /// `(content type, body)`.
    pub body: Option<(&'a str, &'a [u8])>,
    pub server: Option<&'a str>,
}

/// Builds `SIP/2.0 <code> <reason>` for `req`.
pub fn build_reply(
    req: &Message,
    code: u16,
    reason: &str,
    opts: &ReplyOptions,
) -> Result<Bytes, ParseError> {
    if !req.is_request() {
        return Err(ParseError::Invalid("cannot reply to a response"));
    }
    if !(100..=699).contains(&code) {
        return Err(ParseError::Invalid("status code out of range"));
    }
    if !req.hdrs.iter().any(|h| h.name == HeaderName::Via) {
        return Err(ParseError::Missing("Via"));
    }
    const COPIED: [HeaderName; 5] = [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ];
    // One buffer sized for everything written below, so it never grows.
    let copied: usize = req
        .hdrs
        .iter()
        .filter(|h| COPIED.contains(&h.name))
        .map(|h| h.line_range().len() + 2)
        .sum();
    let extra: usize = opts
        .extra_headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum();
    let body = opts.body.map_or(&[][..], |b| b.1);
    let capacity = 16
        + reason.len()
        + copied
        + opts.top_via_received.map_or(0, |r| r.len() + 16)
        + opts.top_via_rport.map_or(0, |_| 16)
        + opts.to_tag.map_or(0, |t| t.len() + 8)
        + extra
        + opts.server.map_or(0, |s| s.len() + 10)
        + opts.body.map_or(0, |(ct, _)| ct.len() + 16)
        + 40
        + body.len();
    let mut out = BytesMut::with_capacity(capacity);
    out.put_slice(b"SIP/2.0 ");
    put_decimal(&mut out, code as u64);
    out.put_u8(b' ');
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\n");

    let mut top_via_done = false;
    // Copy in the order of RFC 3261 §8.2.6.2: Vias, From, To, Call-ID, CSeq.
    for want in COPIED {
        for h in req.hdrs.iter().filter(|h| h.name == want) {
            let line = &req.raw()[h.line_range()];
            let raw_name = &req.raw()[h.name_range()];
            let value = req.value_of(h);
            match want {
                HeaderName::Via if !top_via_done => {
                    top_via_done = true;
                    if opts.top_via_received.is_none() && opts.top_via_rport.is_none() {
                        put_line(&mut out, line);
                        continue;
                    }
                    let (first, rest) = first_element(value)?;
                    out.put_slice(raw_name);
                    out.put_slice(b": ");
                    patch_via(&mut out, first, opts.top_via_received, opts.top_via_rport);
                    if let Some(rest) = rest {
                        out.put_u8(b',');
                        out.put_slice(rest);
                    }
                    out.put_slice(b"\r\n");
                }
                HeaderName::To if opts.to_tag.is_some() => {
                    // A To that does not parse counts as untagged. Most
                    // To headers a reply is built for have no tag at all,
                    // and a value without the letters `tag` cannot have
                    // one: that test spares the full name-addr parse.
                    let has_tag = mentions_tag(value)
                        && matches!(
                            crate::header::NameAddr::check_and_find_param(value, "tag"),
                            Ok(Some(Some(_)))
                        );
                    match opts.to_tag {
                        Some(tag) if !has_tag => {
                            out.put_slice(raw_name);
                            out.put_slice(b": ");
                            out.put_slice(value);
                            out.put_slice(b";tag=");
                            out.put_slice(tag.as_bytes());
                            out.put_slice(b"\r\n");
                        }
                        _ => put_line(&mut out, line),
                    }
                }
                _ => put_line(&mut out, line),
            }
        }
    }
    for (n, v) in opts.extra_headers {
        put_header(&mut out, n.as_bytes(), v.as_bytes());
    }
    if let Some(s) = opts.server {
        put_header(&mut out, b"Server", s.as_bytes());
    }
    if let Some((ct, _)) = opts.body {
        put_header(&mut out, b"Content-Type", ct.as_bytes());
    }
    out.put_slice(b"Content-Length: ");
    put_decimal(&mut out, body.len() as u64);
    out.put_slice(b"\r\n\r\n");
    out.put_slice(body);
    Ok(out.freeze())
}

/// `n` in decimal, without a `String`.
fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// `tag`, in any case, somewhere in `v`.
fn mentions_tag(v: &[u8]) -> bool {
    memchr::memchr2_iter(b't', b'T', v).any(|i| {
        v.get(i + 1..i + 3)
            .is_some_and(|ag| ag.eq_ignore_ascii_case(b"ag"))
    })
}

/// Writes one via-parm with its `received`/`rport` params rewritten
/// textually, so the rest of its text stays exactly as received.
fn patch_via(out: &mut BytesMut, via: &[u8], received: Option<&str>, rport: Option<u16>) {
    // Walk the top-level ';' segments (quoted values may contain ';').
    let mut has_received = false;
    let mut first = true;
    let mut put_seg = |out: &mut BytesMut, seg: &[u8]| {
        if first {
            first = false;
            out.put_slice(seg);
            return;
        }
        out.put_u8(b';');
        let n = seg.iter().position(|b| *b == b'=').unwrap_or(seg.len());
        let name = trim_lws(&seg[..n]);
        match (received, rport) {
            (Some(r), _) if name.eq_ignore_ascii_case(b"received") => {
                has_received = true;
                out.put_slice(b"received=");
                out.put_slice(r.as_bytes());
            }
            (_, Some(p)) if name.eq_ignore_ascii_case(b"rport") => {
                out.put_slice(b"rport=");
                put_decimal(out, p as u64);
            }
            _ => out.put_slice(seg),
        }
    };
    let mut start = 0;
    let mut i = 0;
    while i < via.len() {
        match via[i] {
            b'"' => {
                i += quoted_end(&via[i..]).unwrap_or(via.len() - i);
                continue;
            }
            b';' => {
                put_seg(out, &via[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    put_seg(out, &via[start..]);
    if let (Some(r), false) = (received, has_received) {
        out.put_slice(b";received=");
        out.put_slice(r.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch() {
        let patch = |via: &[u8], received, rport| {
            let mut out = BytesMut::new();
            patch_via(&mut out, via, received, rport);
            out.to_vec()
        };
        let p = patch(
            b"SIP/2.0/UDP h;rport;branch=z9",
            Some("1.2.3.4"),
            Some(5060),
        );
        assert_eq!(p, b"SIP/2.0/UDP h;rport=5060;branch=z9;received=1.2.3.4");
        let p = patch(
            b"SIP/2.0/UDP h;received=9.9.9.9;x=\"a;b\"",
            Some("1.2.3.4"),
            Some(5060),
        );
        assert_eq!(p, b"SIP/2.0/UDP h;received=1.2.3.4;x=\"a;b\"");
    }
}
