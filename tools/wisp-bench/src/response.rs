//! Minimal SIP response parsing: the status code from the status line, and the request
//! sequence number recovered from the Call-ID (or, failing that, the top Via branch).

/// Status code of a SIP response (`SIP/2.0 200 OK`), or `None` if `msg` is not one.
pub fn status_code(msg: &[u8]) -> Option<u16> {
    let rest = msg.strip_prefix(b"SIP/2.0 ")?;
    if rest.len() < 3 {
        return None;
    }
    let d = &rest[..3];
    if !d.iter().all(u8::is_ascii_digit) || d[0] == b'0' {
        return None;
    }
    match rest.get(3) {
        None | Some(b' ') | Some(b'\r') | Some(b'\n') => {}
        _ => return None,
    }
    Some((d[0] - b'0') as u16 * 100 + (d[1] - b'0') as u16 * 10 + (d[2] - b'0') as u16)
}

/// Value of the first header named `long` or `compact` (case-insensitive), trimmed.
/// Only the header section is searched; folded continuation lines are not joined
/// (not needed for Call-ID / Via produced by routers answering our requests).
pub fn header<'a>(msg: &'a [u8], long: &[u8], compact: &[u8]) -> Option<&'a [u8]> {
    headers(msg, long, compact).next()
}

/// Values of every header line named `long` or `compact` (case-insensitive), in
/// message order, trimmed; a line holding a comma-separated list is one value.
pub fn headers<'a: 'n, 'n>(
    msg: &'a [u8],
    long: &'n [u8],
    compact: &'n [u8],
) -> impl Iterator<Item = &'a [u8]> + 'n {
    let mut lines = msg.split(|&b| b == b'\n');
    let started = lines.next().is_some(); // start line
    lines
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(move |line| started && !line.is_empty())
        .filter_map(move |line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = trim(&line[..colon]);
            (name.eq_ignore_ascii_case(long)
                || (!compact.is_empty() && name.eq_ignore_ascii_case(compact)))
            .then(|| trim(&line[colon + 1..]))
        })
}

/// Method of the CSeq header (`CSeq: 2 BYE` -> `BYE`): which of a call's
/// transactions a response belongs to.
pub fn cseq_method(msg: &[u8]) -> Option<&[u8]> {
    let v = header(msg, b"CSeq", b"")?;
    let sp = v.iter().position(|b| b.is_ascii_whitespace())?;
    let m = trim(&v[sp..]);
    (!m.is_empty()).then_some(m)
}

pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses `<token><decimal><suffix>` (exactly) and returns the number.
fn seq_after(s: &[u8], token: &[u8], suffix: &[u8]) -> Option<u64> {
    let rest = s.strip_prefix(token)?;
    let rest = rest.strip_suffix(suffix)?;
    if rest.is_empty() || rest.len() > 19 || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v = 0u64;
    for &b in rest {
        v = v * 10 + (b - b'0') as u64;
    }
    Some(v)
}

/// Sequence number of the request a response belongs to: Call-ID `<token><seq>@bench`,
/// else the top Via's `branch=z9hG4bK-<token><seq>`. `token` is the run token (`wb<nonce>-`).
pub fn match_seq(msg: &[u8], token: &[u8]) -> Option<u64> {
    if let Some(cid) = header(msg, b"Call-ID", b"i")
        && let Some(seq) = seq_after(cid, token, b"@bench")
    {
        return Some(seq);
    }
    let via = header(msg, b"Via", b"v")?;
    // Top Via only: cut at a comma separating multiple values.
    let via = via.split(|&b| b == b',').next()?;
    for param in via.split(|&b| b == b';').skip(1) {
        let param = trim(param);
        if param.len() > 7 && param[..7].eq_ignore_ascii_case(b"branch=") {
            let v = trim(&param[7..]);
            return seq_after(v.strip_prefix(b"z9hG4bK-")?, token, b"");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &[u8] = b"wb00000abc-";

    #[test]
    fn status_line() {
        assert_eq!(status_code(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"SIP/2.0 100 Trying\r\n\r\n"), Some(100));
        assert_eq!(status_code(b"SIP/2.0 486\r\n"), Some(486));
        assert_eq!(status_code(b"SIP/2.0 699"), Some(699));
        assert_eq!(status_code(b"OPTIONS sip:x SIP/2.0\r\n"), None);
        assert_eq!(status_code(b"SIP/2.0 20 OK\r\n"), None);
        assert_eq!(status_code(b"SIP/2.0 2000 OK\r\n"), None);
        assert_eq!(status_code(b"SIP/2.0 abc OK\r\n"), None);
        assert_eq!(status_code(b"SIP/2.0 099 x\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    #[test]
    fn matches_by_call_id() {
        let m = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:4000;branch=z9hG4bK-other;rport=4000\r\n\
                  call-id :  wb00000abc-123@bench \r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(match_seq(m, TOKEN), Some(123));
    }

    #[test]
    fn matches_compact_call_id() {
        let m = b"SIP/2.0 404 Not Found\r\ni: wb00000abc-9@bench\r\n\r\n";
        assert_eq!(match_seq(m, TOKEN), Some(9));
    }

    #[test]
    fn falls_back_to_via_branch() {
        // Call-ID rewritten (e.g. by a B2BUA-ish topology hider) -> use the top Via branch.
        let m = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:4000;rport=4000;Branch=z9hG4bK-wb00000abc-77;received=127.0.0.1, SIP/2.0/UDP x;branch=z9hG4bK-wb00000abc-1\r\n\
                  Call-ID: something-else\r\n\r\n";
        assert_eq!(match_seq(m, TOKEN), Some(77));
    }

    #[test]
    fn foreign_or_broken_responses_do_not_match() {
        // Other run's token.
        assert_eq!(
            match_seq(
                b"SIP/2.0 200 OK\r\nCall-ID: wb00000abd-1@bench\r\n\r\n",
                TOKEN
            ),
            None
        );
        // Missing suffix, no Via.
        assert_eq!(
            match_seq(
                b"SIP/2.0 200 OK\r\nCall-ID: wb00000abc-1@elsewhere\r\n\r\n",
                TOKEN
            ),
            None
        );
        // Junk between number and suffix.
        assert_eq!(
            match_seq(
                b"SIP/2.0 200 OK\r\nCall-ID: wb00000abc-12x@bench\r\n\r\n",
                TOKEN
            ),
            None
        );
        // No digits.
        assert_eq!(
            match_seq(
                b"SIP/2.0 200 OK\r\nCall-ID: wb00000abc-@bench\r\n\r\n",
                TOKEN
            ),
            None
        );
        // Call-ID only in the body must not count.
        assert_eq!(
            match_seq(
                b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\nCall-ID: wb00000abc-1@bench\r\n",
                TOKEN
            ),
            None
        );
        // Garbage.
        assert_eq!(match_seq(b"\xff\xfe", TOKEN), None);
        assert_eq!(match_seq(b"", TOKEN), None);
    }

    #[test]
    fn header_lookup() {
        let m = b"SIP/2.0 200 OK\r\nTo: <sip:a@b>;tag=1\r\nContent-Length:0\r\n\r\n";
        assert_eq!(header(m, b"to", b"t"), Some(&b"<sip:a@b>;tag=1"[..]));
        assert_eq!(header(m, b"content-length", b"l"), Some(&b"0"[..]));
        assert_eq!(header(m, b"Via", b"v"), None);
    }

    #[test]
    fn all_headers_of_a_name_and_cseq_method() {
        let m = b"SIP/2.0 200 OK\r\nRecord-Route: <sip:a;lr>\r\nCSeq:  2   BYE\r\nrecord-route : <sip:b;lr>, <sip:c;lr>\r\n\r\nRecord-Route: <sip:body>\r\n";
        let rr: Vec<&[u8]> = headers(m, b"Record-Route", b"").collect();
        assert_eq!(rr, [&b"<sip:a;lr>"[..], &b"<sip:b;lr>, <sip:c;lr>"[..]]);
        assert_eq!(cseq_method(m), Some(&b"BYE"[..]));
        assert_eq!(cseq_method(b"SIP/2.0 200 OK\r\nCSeq: 1\r\n\r\n"), None);
        assert_eq!(headers(b"", b"To", b"t").count(), 0);
    }
}
