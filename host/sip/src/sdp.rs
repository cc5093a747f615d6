//! The few SDP (RFC 4566) lines a SIP router reads and rewrites for NAT
//! traversal: the connection (`c=`) and origin (`o=`) addresses. No full
//! SDP model: every other line is copied as it is, byte for byte, and a
//! body that is not SDP-like is left alone.

use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};

/// Which address lines [`rewrite_addresses`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLines {
    /// `c=IN IP4 <addr>` (session and media level).
    pub connection: bool,
    /// `o=<user> <sess-id> <version> IN IP4 <addr>`.
    pub origin: bool,
}

/// One address line of a body: where its address is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressLine<'a> {
    /// `b'c'` or `b'o'`.
    pub kind: u8,
    /// The address text (an IP, or a name the SDP may legally carry).
    pub address: &'a [u8],
    /// Byte range of `address` in the body.
    pub range: std::ops::Range<usize>,
}

impl AddressLine<'_> {
    /// The address as an IP, if it is one (`0.0.0.0` included: RFC 3264
    /// hold). A multicast TTL suffix (`/127`) is ignored.
    pub fn ip(&self) -> Option<IpAddr> {
        let text = std::str::from_utf8(self.address).ok()?;
        text.split('/').next()?.parse().ok()
    }
}

/// The `c=` and `o=` lines of an SDP body with network type `IN`, in order.
/// Lines end in CRLF or LF; anything malformed is skipped.
pub fn address_lines(body: &[u8]) -> impl Iterator<Item = AddressLine<'_>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        while start < body.len() {
            let end = body[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(body.len(), |i| start + i);
            let line_start = start;
            start = end + 1;
            let mut line = &body[line_start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let kind = match line {
                [b'c', b'=', ..] => b'c',
                [b'o', b'=', ..] => b'o',
                _ => continue,
            };
            // c=<nettype> <addrtype> <addr>; o= has three fields before those.
            let skip = if kind == b'c' { 2 } else { 5 };
            let fields: Vec<(usize, &[u8])> = split_fields(&line[2..])
                .map(|(off, f)| (line_start + 2 + off, f))
                .collect();
            if fields.len() != skip + 1 || fields[skip - 2].1 != b"IN" {
                continue;
            }
            let (off, address) = fields[skip];
            return Some(AddressLine {
                kind,
                address,
                range: off..off + address.len(),
            });
        }
        None
    })
}

/// Space-separated fields with their offsets.
fn split_fields(line: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    line.split(|&b| b == b' ').filter_map(move |f| {
        let off = pos;
        pos += f.len() + 1;
        (!f.is_empty()).then_some((off, f))
    })
}

/// The body with the chosen address lines pointing at `ip` (the address
/// type follows it: `IP4` or `IP6`). `None` when there was nothing to
/// change. Lines holding `0.0.0.0` (hold) keep it.
pub fn rewrite_addresses(body: &[u8], ip: IpAddr, which: AddressLines) -> Option<Bytes> {
    let ip_text = ip.to_string();
    let addr_type: &[u8] = if ip.is_ipv4() { b"IP4" } else { b"IP6" };
    let mut out = BytesMut::with_capacity(body.len() + 32);
    let mut copied = 0;
    let mut changed = false;
    for line in address_lines(body) {
        let wanted = match line.kind {
            b'c' => which.connection,
            _ => which.origin,
        };
        if !wanted || line.ip().is_some_and(|a| a.is_unspecified()) {
            continue;
        }
        // The address type is the field before the address: "IP4 " / "IP6 ".
        let type_start = line.range.start.saturating_sub(4);
        if !matches!(&body[type_start..line.range.start], b"IP4 " | b"IP6 ") {
            continue;
        }
        out.put_slice(&body[copied..type_start]);
        out.put_slice(addr_type);
        out.put_u8(b' ');
        out.put_slice(ip_text.as_bytes());
        copied = line.range.end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.put_slice(&body[copied..]);
    Some(out.freeze())
}

/// The body with `line` (e.g. `a=direction:active`) added at the end of
/// the session part (before the first `m=`), unless the body has it already.
pub fn add_session_attribute(body: &[u8], line: &str) -> Option<Bytes> {
    let has = body
        .split(|&b| b == b'\n')
        .any(|l| l.strip_suffix(b"\r").unwrap_or(l) == line.as_bytes());
    if has {
        return None;
    }
    let at = find_media_start(body).unwrap_or(body.len());
    let mut out = BytesMut::with_capacity(body.len() + line.len() + 2);
    out.put_slice(&body[..at]);
    if at > 0 && body[at - 1] != b'\n' {
        out.put_slice(b"\r\n");
    }
    out.put_slice(line.as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(&body[at..]);
    Some(out.freeze())
}

fn find_media_start(body: &[u8]) -> Option<usize> {
    if body.starts_with(b"m=") {
        return Some(0);
    }
    body.windows(3).position(|w| w == b"\nm=").map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &[u8] = b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.168.1.10\r\ns=-\r\n\
c=IN IP4 192.168.1.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\nc=IN IP4 192.168.1.11\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn finds_the_origin_and_every_connection_address() {
        let found: Vec<_> = address_lines(OFFER)
            .map(|l| (l.kind, l.ip().unwrap().to_string()))
            .collect();
        assert_eq!(
            found,
            [
                (b'o', "192.168.1.10".to_string()),
                (b'c', "192.168.1.10".to_string()),
                (b'c', "192.168.1.11".to_string()),
            ]
        );
    }

    #[test]
    fn rewrites_only_the_chosen_lines_and_copies_the_rest() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let c_only = rewrite_addresses(
            OFFER,
            ip,
            AddressLines {
                connection: true,
                origin: false,
            },
        )
        .unwrap();
        let text = std::str::from_utf8(&c_only).unwrap();
        assert!(text.contains("o=alice 2890844526 2890844526 IN IP4 192.168.1.10\r\n"));
        assert_eq!(text.matches("c=IN IP4 203.0.113.7\r\n").count(), 2);
        assert!(text.ends_with("a=rtpmap:0 PCMU/8000\r\n"));
        let both = rewrite_addresses(
            OFFER,
            ip,
            AddressLines {
                connection: true,
                origin: true,
            },
        )
        .unwrap();
        assert!(
            std::str::from_utf8(&both)
                .unwrap()
                .contains("IN IP4 203.0.113.7\r\ns=-")
        );
    }

    #[test]
    fn an_ipv6_source_changes_the_address_type() {
        let ip: IpAddr = "2001:db8::5".parse().unwrap();
        let body = b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
        let out = rewrite_addresses(
            body,
            ip,
            AddressLines {
                connection: true,
                origin: true,
            },
        )
        .unwrap();
        assert_eq!(
            &out[..],
            b"v=0\r\nc=IN IP6 2001:db8::5\r\nm=audio 4000 RTP/AVP 0\r\n"
        );
    }

    #[test]
    fn hold_and_non_sdp_bodies_are_left_alone() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let all = AddressLines {
            connection: true,
            origin: true,
        };
        assert_eq!(
            rewrite_addresses(b"v=0\r\nc=IN IP4 0.0.0.0\r\n", ip, all),
            None
        );
        assert_eq!(rewrite_addresses(b"hello c=IN IP4 1.2.3.4", ip, all), None);
        assert_eq!(address_lines(b"c=IN\r\nc=XX IP4 1.2.3.4\r\n").count(), 0);
    }

    #[test]
    fn a_session_attribute_goes_before_the_first_media_line_once() {
        let out = add_session_attribute(OFFER, "a=direction:active").unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.contains("t=0 0\r\na=direction:active\r\nm=audio"),
            "{text}"
        );
        assert_eq!(add_session_attribute(&out, "a=direction:active"), None);
        let no_media = add_session_attribute(b"v=0\r\ns=-", "a=x").unwrap();
        assert_eq!(&no_media[..], b"v=0\r\ns=-\r\na=x\r\n");
    }
}
