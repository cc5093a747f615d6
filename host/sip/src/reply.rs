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
    let mut out = BytesMut::with_capacity(512 + opts.body.map_or(0, |b| b.1.len()));
    out.put_slice(format!("SIP/2.0 {code} {reason}\r\n").as_bytes());

    let mut top_via_done = false;
    // Copy in the order of RFC 3261 §8.2.6.2: Vias, From, To, Call-ID, CSeq.
    for want in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
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
                    let mut v = patch_via(first, opts.top_via_received, opts.top_via_rport);
                    if let Some(rest) = rest {
                        v.push(b',');
                        v.extend_from_slice(rest);
                    }
                    put_header(&mut out, raw_name, &v);
                }
                HeaderName::To if opts.to_tag.is_some() => {
                    let has_tag = crate::header::NameAddr::parse(value)
                        .map(|n| n.tag().is_some())
                        .unwrap_or(false);
                    match opts.to_tag {
                        Some(tag) if !has_tag => {
                            let mut v = value.to_vec();
                            v.extend_from_slice(b";tag=");
                            v.extend_from_slice(tag.as_bytes());
                            put_header(&mut out, raw_name, &v);
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
    let body = opts.body.map_or(&[][..], |b| b.1);
    put_header(
        &mut out,
        b"Content-Length",
        body.len().to_string().as_bytes(),
    );
    out.put_slice(b"\r\n");
    out.put_slice(body);
    Ok(out.freeze())
}

/// Rewrites the `received`/`rport` params of one via-parm textually so the
/// rest of its text stays exactly as received.
fn patch_via(via: &[u8], received: Option<&str>, rport: Option<u16>) -> Vec<u8> {
    let mut out = Vec::with_capacity(via.len() + 40);
    // Split at top-level ';' (quoted values may contain ';').
    let mut segs = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < via.len() {
        match via[i] {
            b'"' => {
                i += quoted_end(&via[i..]).unwrap_or(via.len() - i);
                continue;
            }
            b';' => {
                segs.push(&via[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    segs.push(&via[start..]);
    let name_of = |seg: &[u8]| -> Vec<u8> {
        let n = seg.iter().position(|b| *b == b'=').unwrap_or(seg.len());
        trim_lws(&seg[..n]).to_ascii_lowercase()
    };
    let mut has_received = false;
    for (k, seg) in segs.iter().enumerate() {
        if k == 0 {
            out.extend_from_slice(seg);
            continue;
        }
        out.push(b';');
        match (name_of(seg).as_slice(), received, rport) {
            (b"received", Some(r), _) => {
                has_received = true;
                out.extend_from_slice(b"received=");
                out.extend_from_slice(r.as_bytes());
            }
            (b"rport", _, Some(p)) => {
                out.extend_from_slice(b"rport=");
                out.extend_from_slice(p.to_string().as_bytes());
            }
            _ => out.extend_from_slice(seg),
        }
    }
    if let (Some(r), false) = (received, has_received) {
        out.extend_from_slice(b";received=");
        out.extend_from_slice(r.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch() {
        let p = patch_via(
            b"SIP/2.0/UDP h;rport;branch=z9",
            Some("1.2.3.4"),
            Some(5060),
        );
        assert_eq!(p, b"SIP/2.0/UDP h;rport=5060;branch=z9;received=1.2.3.4");
        let p = patch_via(
            b"SIP/2.0/UDP h;received=9.9.9.9;x=\"a;b\"",
            Some("1.2.3.4"),
            Some(5060),
        );
        assert_eq!(p, b"SIP/2.0/UDP h;received=1.2.3.4;x=\"a;b\"");
    }
}
