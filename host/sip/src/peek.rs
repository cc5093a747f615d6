//! Peeking at one header of a message that has not been parsed.
//!
//! The receive side steers every datagram of one call to the same worker
//! before any worker parses it, so what it needs is the Call-ID, found with
//! one scan for line ends and no allocation. The value is the header's
//! first line, trimmed; a message with no Call-ID gives `None` (the parser
//! refuses it later, wherever it lands).

use memchr::memchr_iter;

use crate::parse::trim_lws;

/// The Call-ID (or compact `i`) value of the message in `data`, or `None`
/// when its header block has none. Stops at the end of the header block.
pub fn call_id(data: &[u8]) -> Option<&[u8]> {
    let mut line_start = None;
    for nl in memchr_iter(b'\n', data) {
        if let Some(start) = line_start {
            let line = &data[start..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return None;
            }
            if let Some(value) = call_id_value(line) {
                return Some(value);
            }
        }
        line_start = Some(nl + 1);
    }
    // A header block the datagram cuts off: its last line still counts.
    let line = &data[line_start?..];
    call_id_value(line.strip_suffix(b"\r").unwrap_or(line))
}

/// The value of `line` when it is a Call-ID header line.
fn call_id_value(line: &[u8]) -> Option<&[u8]> {
    let rest = match line.first()? {
        b'C' | b'c' if line.len() > 7 && line[..7].eq_ignore_ascii_case(b"call-id") => &line[7..],
        b'I' | b'i' => &line[1..],
        _ => return None,
    };
    let rest = trim_lws(rest);
    let value = rest.strip_prefix(b":")?;
    Some(trim_lws(value))
}

#[cfg(test)]
mod tests {
    use super::call_id;

    #[test]
    fn finds_the_long_and_the_compact_form_in_any_case() {
        let long = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCALL-ID :  abc@h \r\n\r\n";
        assert_eq!(call_id(long), Some(&b"abc@h"[..]));
        let compact = b"SIP/2.0 180 Ringing\r\nv: SIP/2.0/UDP h\r\ni:xyz\r\n\r\n";
        assert_eq!(call_id(compact), Some(&b"xyz"[..]));
        let lf_only = b"BYE sip:a@b SIP/2.0\nCall-ID: q\n\n";
        assert_eq!(call_id(lf_only), Some(&b"q"[..]));
    }

    #[test]
    fn ignores_lookalikes_the_start_line_and_the_body() {
        // Headers that begin like it, a request URI that contains it, and a
        // Call-ID that only the body carries.
        let msg = b"Call-ID: sip:x SIP/2.0\r\nCall-Info: <u>\r\nIn-Reply-To: r\r\nID: 7\r\n\r\nCall-ID: body\r\n";
        assert_eq!(call_id(msg), None);
        assert_eq!(call_id(b""), None);
        assert_eq!(call_id(b"\r\n\r\n"), None);
    }

    #[test]
    fn a_cut_off_header_block_still_yields_its_last_line() {
        assert_eq!(call_id(b"ACK sip:a@b SIP/2.0\r\ni: k"), Some(&b"k"[..]));
    }
}
