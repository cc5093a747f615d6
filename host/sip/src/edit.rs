//! Recorded edits and the serializer that applies them.
//!
//! Like Kamailio's lumps: edit methods only record what to change; reads
//! keep seeing the received headers (except the Request-URI, which reads
//! the rewrite), and [`Message::serialize`] applies everything in one pass.
//! Untouched header lines are copied verbatim (folds kept, line end
//! normalized to CRLF). Content-Length is owned by the serializer.

use bytes::{BufMut, Bytes, BytesMut};

use crate::header::HeaderName;
use crate::header::name::NameMatcher;
use crate::message::{Head, Message};
use crate::parse::{ParseError, first_element, split_top_level, trim_lws};

#[derive(Debug, Clone, Default)]
pub(crate) struct Edits {
    pub(crate) ruri: Option<Bytes>,
    /// Inserted Via values; the last one is topmost.
    vias: Vec<Bytes>,
    /// Inserted Record-Route values; the last one is topmost.
    rrs: Vec<Bytes>,
    /// Per original header (sized on first use).
    states: Vec<State>,
    /// Headers added by `replace_header` before original header index.
    replacements: Vec<(usize, String, Bytes)>,
    appended: Vec<Appended>,
    body: Option<Bytes>,
    touched: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Keep,
    Removed,
    /// Same name, new value (e.g. rest of a comma list after removing the first).
    Value(Bytes),
}

#[derive(Debug, Clone)]
enum Appended {
    Header(String, Bytes),
    /// Header line(s) as given; `add_crlf` when the final line end is
    /// still to be written.
    Raw {
        lines: Bytes,
        add_crlf: bool,
    },
}

impl Message {
    fn edits_mut(&mut self) -> &mut Edits {
        self.edits.touched = true;
        if self.edits.states.len() != self.hdrs.len() {
            self.edits.states = vec![State::Keep; self.hdrs.len()];
        }
        &mut self.edits
    }

    pub fn set_request_uri(&mut self, uri: Bytes) {
        self.edits_mut().ruri = Some(uri);
    }

    /// New topmost Via (`value` without `Via: `).
    pub fn insert_via(&mut self, value: Bytes) {
        self.edits_mut().vias.push(value);
    }

    /// Removes the topmost Via value: an inserted one if any, else the first
    /// value of the first remaining Via header (only that value if the
    /// header holds a comma list).
    pub fn remove_top_via(&mut self) -> Result<(), ParseError> {
        if self.edits_mut().vias.pop().is_some() {
            return Ok(());
        }
        self.remove_first_value(HeaderName::Via)
    }

    /// RFC 3261 §18.2.1 / RFC 3581 §4 on the topmost Via: drop its
    /// `received` and `rport` parameters and append `;received=<received>`
    /// and, when given, `;rport=<port>`. Works on the value's text: the
    /// other parameters stay byte for byte, nothing is parsed into a
    /// [`Via`](crate::Via) and written back.
    pub fn mark_top_via_received(
        &mut self,
        received: &str,
        rport: Option<u16>,
    ) -> Result<(), ParseError> {
        let top: &[u8] = match self.edits.vias.last() {
            Some(v) => v,
            None => {
                let v = self
                    .first_remaining_value(HeaderName::Via)
                    .ok_or(ParseError::Missing(HeaderName::Via.canonical()))?;
                first_element(v)?.0
            }
        };
        let mut value = Vec::with_capacity(top.len() + received.len() + 24);
        for (i, part) in split_params(top).enumerate() {
            if i > 0 {
                let name = part.split(|b| *b == b'=').next().unwrap_or(part);
                let name = trim_lws(name);
                if name.eq_ignore_ascii_case(b"received") || name.eq_ignore_ascii_case(b"rport") {
                    continue;
                }
                value.push(b';');
            }
            value.extend_from_slice(part);
        }
        value.extend_from_slice(b";received=");
        value.extend_from_slice(received.as_bytes());
        if let Some(port) = rport {
            value.extend_from_slice(b";rport=");
            value.extend_from_slice(itoa::Buffer::new().format(port).as_bytes());
        }
        self.remove_top_via()?;
        self.insert_via(Bytes::from(value));
        Ok(())
    }

    /// The value of the first header named `name` that edits left in
    /// place, as edits left it (values removed from its front are gone).
    fn first_remaining_value(&self, name: HeaderName) -> Option<&[u8]> {
        let idx = (0..self.hdrs.len()).find(|i| {
            self.hdrs[*i].name == name
                && self
                    .edits
                    .states
                    .get(*i)
                    .is_none_or(|s| *s != State::Removed)
        })?;
        match self.edits.states.get(idx) {
            Some(State::Value(v)) => Some(v),
            _ => Some(&self.raw[self.hdrs[idx].value_range()]),
        }
    }

    pub fn insert_record_route(&mut self, value: Bytes) {
        self.edits_mut().rrs.push(value);
    }

    /// Takes back the last Record-Route value `insert_record_route` added
    /// (a send that failed); false when none was added.
    pub fn remove_inserted_record_route(&mut self) -> bool {
        self.edits_mut().rrs.pop().is_some()
    }

    /// Removes the first Route value.
    pub fn remove_top_route(&mut self) -> Result<(), ParseError> {
        self.remove_first_value(HeaderName::Route)
    }

    /// Removes the last Route value: the last value of the last remaining
    /// Route header (only that value if the header holds a comma list).
    /// RFC 3261 §16.4: after a strict router, the real Request-URI is the
    /// last Route entry. Route headers added by `append_header` are not seen.
    pub fn remove_last_route(&mut self) -> Result<(), ParseError> {
        self.remove_last_value(HeaderName::Route)
    }

    fn remove_last_value(&mut self, name: HeaderName) -> Result<(), ParseError> {
        self.edits_mut();
        let idx = (0..self.hdrs.len())
            .rev()
            .find(|i| self.hdrs[*i].name == name && self.edits.states[*i] != State::Removed)
            .ok_or(ParseError::Missing(name.canonical()))?;
        let current = match &self.edits.states[idx] {
            State::Value(v) => v.clone(),
            _ => self.raw.slice(self.hdrs[idx].value_range()),
        };
        // End (exclusive, offset in `current`) of the element before the last.
        let mut kept_end = None;
        let mut prev_end = None;
        for elem in split_top_level(&current) {
            let elem = elem?;
            kept_end = prev_end;
            prev_end = Some(elem.as_ptr() as usize - current.as_ptr() as usize + elem.len());
        }
        self.edits.states[idx] = match kept_end {
            Some(end) => State::Value(current.slice_ref(trim_lws(&current[..end]))),
            None => State::Removed,
        };
        Ok(())
    }

    fn remove_first_value(&mut self, name: HeaderName) -> Result<(), ParseError> {
        self.edits_mut();
        let idx = (0..self.hdrs.len())
            .find(|i| self.hdrs[*i].name == name && self.edits.states[*i] != State::Removed)
            .ok_or(ParseError::Missing(name.canonical()))?;
        let current = match &self.edits.states[idx] {
            State::Value(v) => v.clone(),
            _ => self.raw.slice(self.hdrs[idx].value_range()),
        };
        let (_, rest) = first_element(&current)?;
        self.edits.states[idx] = match rest.map(trim_lws) {
            Some(r) if !r.is_empty() => State::Value(current.slice_ref(r)),
            _ => State::Removed,
        };
        Ok(())
    }

    /// Appends `name: value` at the end of the header block.
    pub fn append_header(&mut self, name: &str, value: Bytes) {
        self.edits_mut()
            .appended
            .push(Appended::Header(name.to_owned(), value));
    }

    /// Appends raw header line(s), e.g. `b"P-hint: x\r\n"`; a missing final
    /// CRLF (or a bare final LF) is written at serialization, so the caller's
    /// buffer is kept as it is rather than copied to add two bytes.
    pub fn append_raw_header_lines(&mut self, lines: Bytes) {
        let (lines, add_crlf) = if lines.ends_with(b"\r\n") {
            (lines, false)
        } else if lines.ends_with(b"\n") {
            (lines.slice(..lines.len() - 1), true)
        } else {
            (lines, true)
        };
        self.edits_mut()
            .appended
            .push(Appended::Raw { lines, add_crlf });
    }

    /// Removes the header at `index` in [`Message::headers`] order (one of
    /// the message as received); false when there is none there or it is
    /// removed already. For a header chosen by its value, e.g. the one
    /// Authorization of several that was checked.
    pub fn remove_header_at(&mut self, index: usize) -> bool {
        if index >= self.hdrs.len() {
            return false;
        }
        let e = self.edits_mut();
        if e.states[index] == State::Removed {
            return false;
        }
        e.states[index] = State::Removed;
        true
    }

    /// Removes every header of that name (original, replaced, appended or
    /// inserted); returns how many were removed.
    pub fn remove_headers(&mut self, name: &str) -> usize {
        let m = NameMatcher::new(name);
        let (headers, raw) = (&self.hdrs, &self.raw);
        let e = {
            self.edits.touched = true;
            if self.edits.states.len() != headers.len() {
                self.edits.states = vec![State::Keep; headers.len()];
            }
            &mut self.edits
        };
        let mut n = 0;
        for (h, st) in headers.iter().zip(e.states.iter_mut()) {
            if *st != State::Removed && m.matches(h.name, &raw[h.name_range()]) {
                *st = State::Removed;
                n += 1;
            }
        }
        let named = |s: &str| m.matches(HeaderName::from_bytes(s.as_bytes()), s.as_bytes());
        let before = e.replacements.len();
        e.replacements.retain(|(_, nm, _)| !named(nm));
        n += before - e.replacements.len();
        let before = e.appended.len();
        e.appended.retain(|a| match a {
            Appended::Header(nm, _) => !named(nm),
            Appended::Raw { .. } => true,
        });
        n += before - e.appended.len();
        if named("Via") {
            n += e.vias.len();
            e.vias.clear();
        }
        if named("Record-Route") {
            n += e.rrs.len();
            e.rrs.clear();
        }
        n
    }

    /// Removes all headers of that name and puts one `name: value` where the
    /// first one was (or at the end if there was none).
    pub fn replace_header(&mut self, name: &str, value: Bytes) {
        self.remove_headers(name);
        let m = NameMatcher::new(name);
        let pos = self
            .hdrs
            .iter()
            .position(|h| m.matches(h.name, &self.raw[h.name_range()]));
        let e = self.edits_mut();
        match pos {
            Some(i) => e.replacements.push((i, name.to_owned(), value)),
            None => e.appended.push(Appended::Header(name.to_owned(), value)),
        }
    }

    pub fn set_max_forwards(&mut self, n: u32) {
        // The usual values (a decremented 70, a limit) need no allocation.
        const DIGITS: &[u8; 200] = b"00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
        let value = match n {
            0..=9 => Bytes::from_static(&DIGITS[2 * n as usize + 1..2 * n as usize + 2]),
            10..=99 => Bytes::from_static(&DIGITS[2 * n as usize..2 * n as usize + 2]),
            _ => Bytes::from(n.to_string()),
        };
        // The usual case, one Max-Forwards as received and not edited yet,
        // takes the new value in place: `replace_header` would mark every
        // header, copy the name and scan the other edits (~1k instructions
        // on every relayed or answered request).
        let mut received = self
            .hdrs
            .iter()
            .enumerate()
            .filter(|(_, h)| h.name == HeaderName::MaxForwards);
        if let (Some((i, _)), None) = (received.next(), received.next()) {
            let is_mf = |nm: &str| nm.eq_ignore_ascii_case("Max-Forwards");
            let e = self.edits_mut();
            let added = e.replacements.iter().any(|(_, nm, _)| is_mf(nm))
                || e.appended
                    .iter()
                    .any(|a| matches!(a, Appended::Header(nm, _) if is_mf(nm)));
            if !added && e.states[i] == State::Keep {
                e.states[i] = State::Value(value);
                return;
            }
        }
        self.replace_header("Max-Forwards", value);
    }

    /// Replaces the body. With `Some(content_type)` the Content-Type header
    /// is replaced; with `None` an empty body also drops Content-Type.
    pub fn set_body(&mut self, body: Bytes, content_type: Option<Bytes>) {
        match content_type {
            Some(ct) => self.replace_header("Content-Type", ct),
            None if body.is_empty() => {
                self.remove_headers("Content-Type");
            }
            None => {}
        }
        self.edits_mut().body = Some(body);
    }

    pub fn has_edits(&self) -> bool {
        self.edits.touched
    }

    /// Writes the message with all edits applied. Content-Length is
    /// rewritten when the body changed, added when absent (also as
    /// `Content-Length: 0`), otherwise kept. Without edits this is a cheap
    /// slice of the received bytes.
    pub fn serialize(&self) -> Bytes {
        if !self.edits.touched {
            return self.raw.slice(self.start_span.0..self.end);
        }
        let e = &self.edits;
        let body: &[u8] = match &e.body {
            Some(b) => b,
            None => self.body_slice(),
        };
        let mut out = BytesMut::with_capacity(self.raw.len() + 256);

        match (&self.head, &e.ruri) {
            (
                Head::Request {
                    method, version, ..
                },
                Some(uri),
            ) => {
                out.put_slice(method.as_str().as_bytes());
                out.put_u8(b' ');
                out.put_slice(uri);
                out.put_u8(b' ');
                out.put_slice(&self.raw[version.0..version.1]);
                out.put_slice(b"\r\n");
            }
            _ => put_line(&mut out, &self.raw[self.start_span.0..self.start_span.1]),
        }

        let first_via = self.hdrs.iter().position(|h| h.name == HeaderName::Via);
        let first_rr = self
            .hdrs
            .iter()
            .position(|h| h.name == HeaderName::RecordRoute);
        let put_vias = |out: &mut BytesMut| {
            for v in e.vias.iter().rev() {
                put_header(out, b"Via", v);
            }
        };
        let put_rrs = |out: &mut BytesMut| {
            for v in e.rrs.iter().rev() {
                put_header(out, b"Record-Route", v);
            }
        };
        if first_via.is_none() {
            put_vias(&mut out);
        }
        if first_rr.is_none() {
            put_rrs(&mut out);
        }

        let mut wrote_cl = false;
        let len_text = body.len().to_string();
        for (i, h) in self.hdrs.iter().enumerate() {
            let raw_name = &self.raw[h.name_range()];
            let line = &self.raw[h.line_range()];
            for (_, name, value) in e.replacements.iter().filter(|r| r.0 == i) {
                if HeaderName::from_bytes(name.as_bytes()) != HeaderName::ContentLength {
                    put_header(&mut out, name.as_bytes(), value);
                }
            }
            if Some(i) == first_via {
                put_vias(&mut out);
            }
            if Some(i) == first_rr {
                put_rrs(&mut out);
            }
            let state = e.states.get(i).unwrap_or(&State::Keep);
            if h.name == HeaderName::ContentLength {
                // Owned by the serializer: keep the first one (rewritten if the
                // body changed), drop duplicates.
                if *state == State::Removed || wrote_cl {
                    continue;
                }
                if e.body.is_some() {
                    put_header(&mut out, raw_name, len_text.as_bytes());
                } else {
                    put_line(&mut out, line);
                }
                wrote_cl = true;
                continue;
            }
            match state {
                State::Keep => put_line(&mut out, line),
                State::Removed => {}
                State::Value(v) => put_header(&mut out, raw_name, v),
            }
        }
        for a in &e.appended {
            match a {
                Appended::Header(name, value) => {
                    if HeaderName::from_bytes(name.as_bytes()) != HeaderName::ContentLength {
                        put_header(&mut out, name.as_bytes(), value);
                    }
                }
                Appended::Raw { lines, add_crlf } => {
                    out.put_slice(lines);
                    if *add_crlf {
                        out.put_slice(b"\r\n");
                    }
                }
            }
        }
        if !wrote_cl {
            put_header(&mut out, b"Content-Length", len_text.as_bytes());
        }
        out.put_slice(b"\r\n");
        out.put_slice(body);
        out.freeze()
    }
}

/// Copies a received line (folds included) and normalizes its terminator to CRLF.
pub(crate) fn put_line(out: &mut BytesMut, line: &[u8]) {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    out.put_slice(line);
    out.put_slice(b"\r\n");
}

pub(crate) fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// A Via value cut at the `;` that separate its parameters (none inside a
/// quoted string): the sent-protocol and sent-by first, then each
/// parameter as written, without its `;`.
fn split_params(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, b) in s.iter().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b';' if !quoted => {
                    rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(s)
    })
}

#[cfg(test)]
mod mark_received_tests {
    use bytes::Bytes;

    use crate::Message;

    fn vias_after(raw: &str, edit: impl FnOnce(&mut Message)) -> Vec<String> {
        let mut m = Message::parse(Bytes::from(raw.to_owned())).expect("parses");
        edit(&mut m);
        let out = Message::parse(m.serialize()).expect("serialized parses");
        out.vias()
            .expect("vias")
            .iter()
            .map(|v| v.to_string())
            .collect()
    }

    const HEAD: &str = "OPTIONS sip:b@example.com SIP/2.0\r\n";
    const TAIL: &str = "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn rfc3581_4_rport_gets_the_source_port_and_received_is_added() {
        let raw = format!("{HEAD}Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\n{TAIL}");
        let vias = vias_after(&raw, |m| {
            m.mark_top_via_received("192.0.2.7", Some(5070))
                .expect("marked")
        });
        assert_eq!(
            vias,
            ["SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;received=192.0.2.7;rport=5070"]
        );
    }

    #[test]
    fn old_received_and_rport_go_quoted_semicolons_and_later_vias_stay() {
        let raw = format!(
            "{HEAD}Via: SIP/2.0/UDP h;received=9.9.9.9;x=\"a;b\";RPORT=1 , SIP/2.0/TCP second;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP third\r\n{TAIL}"
        );
        let vias = vias_after(&raw, |m| {
            m.mark_top_via_received("::1", None).expect("marked")
        });
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP h;x=\"a;b\";received=::1",
                "SIP/2.0/TCP second;branch=z9hG4bK2",
                "SIP/2.0/UDP third"
            ]
        );
    }

    #[test]
    fn an_inserted_via_is_the_top_one() {
        let raw = format!("{HEAD}Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\n{TAIL}");
        let vias = vias_after(&raw, |m| {
            m.insert_via(Bytes::from_static(
                b"SIP/2.0/UDP mine;branch=z9hG4bK9;rport",
            ));
            m.mark_top_via_received("192.0.2.1", Some(1))
                .expect("marked")
        });
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP mine;branch=z9hG4bK9;received=192.0.2.1;rport=1",
                "SIP/2.0/UDP a;branch=z9hG4bK1"
            ]
        );
    }
}
