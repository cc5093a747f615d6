//! Cutting SIP messages out of a TCP/TLS byte stream (RFC 3261 §18.3).
//!
//! On streams Content-Length is mandatory and is the only way to find the
//! end of a message. The framer first checks cheaply (one memchr scan) for
//! the end of the header block before looking for Content-Length, so a
//! half-received header block costs almost nothing per read.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr_iter;

use crate::header::HeaderName;
use crate::parse::trim_lws;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The message (or its header block) exceeds `max_message`; close the connection.
    #[error("message too large")]
    TooLarge,
    /// Content-Length is mandatory on stream transports.
    #[error("missing Content-Length on stream transport")]
    MissingContentLength,
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Accumulates stream bytes and yields complete messages.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max_message: usize,
    pings: usize,
}

/// The buffer a connection starts with; it grows for a larger message.
/// Messages are cut from its front and the space they leave is used again
/// once they are dropped, so a busy connection keeps writing into the same
/// few cache-warm kilobytes (a 64 KiB buffer per connection swept through
/// tens of megabytes at a thousand connections).
const INITIAL_BUFFER: usize = 4096;

impl StreamFramer {
    pub fn new(max_message: usize) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(max_message.min(INITIAL_BUFFER)),
            max_message,
            pings: 0,
        }
    }

    /// The reader appends received bytes here (e.g. `read_buf`).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Number of RFC 5626 `CRLFCRLF` keepalive pings skipped since the last
    /// call (the caller may answer each with a `CRLF` pong).
    pub fn take_pings(&mut self) -> usize {
        std::mem::take(&mut self.pings)
    }

    /// Next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        // Skip keepalives / stray line ends between messages.
        let skip = self
            .buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        if skip > 0 {
            self.pings += memchr::memmem::find_iter(&self.buf[..skip], b"\r\n\r\n").count();
            self.buf.advance(skip);
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let Some(hdr_end) = header_end(&self.buf) else {
            if self.buf.len() > self.max_message {
                return Err(FrameError::TooLarge);
            }
            return Ok(None);
        };
        if hdr_end > self.max_message {
            return Err(FrameError::TooLarge);
        }
        let cl = content_length(&self.buf[..hdr_end])?;
        let total = hdr_end.checked_add(cl).ok_or(FrameError::TooLarge)?;
        if total > self.max_message {
            return Err(FrameError::TooLarge);
        }
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        // A copy at the message's exact size, not a split of the buffer: a
        // split shares the buffer's allocation, so whoever keeps the
        // message (a transaction, for minutes) would keep all of it, and
        // the buffer could never be reused in place.
        let message = Bytes::copy_from_slice(&self.buf[..total]);
        self.buf.advance(total);
        Ok(Some(message))
    }
}

/// Index just past the empty line ending the header block (CRLFCRLF or LF LF).
fn header_end(buf: &[u8]) -> Option<usize> {
    for i in memchr_iter(b'\n', buf) {
        match buf.get(i + 1) {
            Some(b'\n') => return Some(i + 2),
            Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
            _ => {}
        }
    }
    None
}

/// Finds Content-Length (or `l`) in a header block. Skips the start line
/// and folded continuation lines.
fn content_length(block: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    for line in block.split(|b| *b == b'\n').skip(1) {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if HeaderName::from_bytes(trim_lws(&line[..colon])) != HeaderName::ContentLength {
            continue;
        }
        let v = trim_lws(&line[colon + 1..]);
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::Malformed("bad Content-Length".into()));
        }
        let n = v
            .iter()
            .try_fold(0usize, |a, d| {
                a.checked_mul(10)?.checked_add(usize::from(d - b'0'))
            })
            .ok_or(FrameError::TooLarge)?;
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::Malformed("conflicting Content-Length".into()));
        }
        found = Some(n);
    }
    found.ok_or(FrameError::MissingContentLength)
}
