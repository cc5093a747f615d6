//! Shared test helpers.
#![allow(dead_code)]

use bytes::Bytes;

/// Turns a `\n`-separated test message into wire form with CRLF line ends.
pub fn crlf(s: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(s.len() + 64);
    for &b in s {
        if b == b'\n' {
            out.extend_from_slice(b"\r\n");
        } else {
            out.push(b);
        }
    }
    Bytes::from(out)
}
