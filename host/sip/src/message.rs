//! Framing one datagram into a [`Message`] and reading it.
//!
//! [`Message::parse`] does the minimum every message needs: the start line,
//! one pass of block byte searches (`parse::find_byte`) that cuts the header
//! block into raw name/value slices (handling folding, LF-only line ends
//! and whitespace around `:`), and body framing by Content-Length. Typed views are parsed only when an
//! accessor is called, so a proxy that looks at five headers pays for five.

use std::sync::OnceLock;

use bytes::Bytes;
use compact_str::CompactString;
use memchr::memchr;

use crate::edit::Edits;
use crate::header::name::NameMatcher;
use crate::header::{CSeq, Contacts, Credentials, Header, HeaderName, NameAddr, Via, via};
use crate::parse::{
    FirstParam, ParseError, any_byte, find_byte, find_byte_near, first_element, is_lws, is_token,
    lossy_compact, parse_delta_seconds, parse_u32, skip_while, split_top_level,
};
use crate::uri::Uri;

/// Request methods; unknown ones are kept verbatim in `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Prack,
    Subscribe,
    Notify,
    Update,
    Message,
    Refer,
    Publish,
    Other(String),
}

impl Method {
    /// Case-sensitive, as RFC 3261 §7.1 requires (`invite` is an unknown method).
    pub fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"UPDATE" => Method::Update,
            b"MESSAGE" => Method::Message,
            b"REFER" => Method::Refer,
            b"PUBLISH" => Method::Publish,
            other => Method::Other(String::from_utf8_lossy(other).into_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Update => "UPDATE",
            Method::Message => "MESSAGE",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Request-Line or Status-Line; all text fields are slices of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: Method,
        uri: Bytes,
        version: Bytes,
    },
    Response {
        version: Bytes,
        code: u16,
        reason: Bytes,
    },
}

/// What identifies a transaction (RFC 3261 §17.2.3) plus dialog tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionKey {
    pub branch: Option<CompactString>,
    pub call_id: Bytes,
    pub cseq: CSeq,
    pub from_tag: Option<CompactString>,
    pub to_tag: Option<CompactString>,
    /// Top Via `host[:port]`, as [`Via::sent_by`] writes it (usually a
    /// slice of the message).
    pub via_sent_by: Bytes,
}

/// A parsed SIP message: the received bytes plus header positions, and
/// any recorded edits (see [`crate::edit`]).
///
/// Headers are kept as offsets into `raw` ([`HdrPos`]); `Bytes` handles
/// (refcount updates) are only made for what a caller asks for. The public
/// [`Header`] list is built on first use of [`Message::headers`],
/// [`Message::header`] or [`Message::header_values`].
#[derive(Debug, Clone)]
pub struct Message {
    pub(crate) raw: Bytes,
    pub(crate) head: Head,
    /// Start line span in `raw` (from its first byte to past its line end).
    pub(crate) start_span: (usize, usize),
    pub(crate) hdrs: Vec<HdrPos>,
    /// Index in `hdrs` of the first header of each well-known name
    /// ([`NO_HDR`] when absent), filled during the split so that typed
    /// accessors do not rescan the list.
    first_idx: FirstIdx,
    /// Body span in `raw`: `body_start..end`.
    pub(crate) body_start: usize,
    /// End of the framed message in `raw` (trailing datagram bytes excluded).
    pub(crate) end: usize,
    pub(crate) edits: Edits,
    lazy: Lazy,
}

/// Views made on demand from `raw` and `hdrs`.
#[derive(Debug, Clone, Default)]
struct Lazy {
    start: OnceLock<StartLine>,
    body: OnceLock<Bytes>,
    headers: OnceLock<Vec<Header>>,
}

/// Where one header is in `raw`: name, trimmed value and its full line(s),
/// folds and line terminator included (edits re-emit untouched headers
/// verbatim). Offsets are `u32`: [`Message::parse`] refuses larger buffers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HdrPos {
    pub(crate) name: HeaderName,
    name_s: u32,
    name_e: u32,
    val_s: u32,
    val_e: u32,
    line_s: u32,
    line_e: u32,
}

impl HdrPos {
    #[inline]
    pub(crate) fn name_range(&self) -> std::ops::Range<usize> {
        self.name_s as usize..self.name_e as usize
    }
    #[inline]
    pub(crate) fn value_range(&self) -> std::ops::Range<usize> {
        self.val_s as usize..self.val_e as usize
    }
    #[inline]
    pub(crate) fn line_range(&self) -> std::ops::Range<usize> {
        self.line_s as usize..self.line_e as usize
    }
}

/// Number of well-known [`HeaderName`]s (all variants but `Other`).
const KNOWN_NAMES: usize = HeaderName::Other as usize;
/// "No such header" in [`FirstIdx`].
const NO_HDR: u32 = u32::MAX;
type FirstIdx = [u32; KNOWN_NAMES];

fn sl_err(r: &'static str) -> ParseError {
    ParseError::StartLine(r)
}

/// `SIP/1*DIGIT.1*DIGIT`, case-insensitive name.
fn valid_version(v: &[u8]) -> bool {
    // Nearly every message says exactly this.
    if v == b"SIP/2.0" {
        return true;
    }
    if v.len() < 7 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let rest = &v[4..];
    // A short field: a plain scan beats memchr's setup.
    match rest.iter().position(|b| *b == b'.') {
        Some(dot) => {
            let (maj, min) = (&rest[..dot], &rest[dot + 1..]);
            !maj.is_empty()
                && !min.is_empty()
                && maj.iter().all(u8::is_ascii_digit)
                && min.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

/// The start line as parsed: method or code, and spans into `raw`. The
/// public [`StartLine`] (with `Bytes` fields) is made on first use.
#[derive(Debug, Clone)]
pub(crate) enum Head {
    Request {
        method: Method,
        uri: (usize, usize),
        version: (usize, usize),
    },
    Response {
        code: u16,
        version: (usize, usize),
        reason: (usize, usize),
    },
}

impl Head {
    fn to_start_line(&self, raw: &Bytes) -> StartLine {
        match self {
            Head::Request {
                method,
                uri,
                version,
            } => StartLine::Request {
                method: method.clone(),
                uri: raw.slice(uri.0..uri.1),
                version: raw.slice(version.0..version.1),
            },
            Head::Response {
                code,
                version,
                reason,
            } => StartLine::Response {
                version: raw.slice(version.0..version.1),
                code: *code,
                reason: raw.slice(reason.0..reason.1),
            },
        }
    }
}

fn parse_start_line(raw: &Bytes, s: usize, e: usize) -> Result<Head, ParseError> {
    let line = &raw[s..e];
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        let sp = find_byte::<b' '>(line, 0).ok_or(sl_err("status line without code"))?;
        if !valid_version(&line[..sp]) {
            return Err(sl_err("bad SIP version"));
        }
        let rest = &line[sp + 1..];
        // Exactly three digits, then SP (reason may be empty; RFC 4475 "noreason").
        if rest.len() < 3
            || !rest[..3].iter().all(u8::is_ascii_digit)
            || (rest.len() > 3 && rest[3] != b' ')
        {
            return Err(sl_err("bad status code"));
        }
        let code = rest[..3]
            .iter()
            .fold(0u16, |a, d| a * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&code) {
            return Err(sl_err("status code out of range"));
        }
        let reason_start = s + sp + 1 + rest.len().min(4);
        return Ok(Head::Response {
            version: (s, s + sp),
            code,
            reason: (reason_start, e),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly two single
    // spaces (RFC 4475 "lwsstart"/"lwsruri"/"trws" are rejected).
    let sp1 = find_byte::<b' '>(line, 0).ok_or(sl_err("request line without URI"))?;
    let sp2 = find_byte::<b' '>(line, sp1 + 1).ok_or(sl_err("request line without version"))?;
    let (method, uri, version) = (&line[..sp1], &line[sp1 + 1..sp2], &line[sp2 + 1..]);
    if method.is_empty() || !method.iter().all(|b| is_token(*b)) {
        return Err(sl_err("bad method"));
    }
    if uri.is_empty() || any_byte(uri, |b| (b <= b' ') | (b == 0x7f)) {
        return Err(sl_err("bad Request-URI"));
    }
    if !valid_version(version) {
        return Err(sl_err("bad SIP version"));
    }
    Ok(Head::Request {
        method: Method::from_bytes(method),
        uri: (s + sp1 + 1, s + sp2),
        version: (s + sp2 + 1, e),
    })
}

/// Strict Content-Length: digits only (RFC 4475 "ncl" has `-999`).
fn parse_content_length(v: &[u8]) -> Result<usize, ParseError> {
    let err = || ParseError::header("Content-Length", "not a non-negative number");
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(err());
    }
    v.iter()
        .try_fold(0usize, |a, d| {
            a.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .ok_or_else(err)
}

impl Message {
    /// Parses start line and splits all headers (raw slices), frames the
    /// body by Content-Length. Datagram semantics: without Content-Length
    /// the body is the rest of the datagram; a Content-Length beyond the end
    /// is an error; bytes after the framed body are ignored.
    pub fn parse(raw: Bytes) -> Result<Message, ParseError> {
        let buf: &[u8] = &raw;
        let mut pos = 0;
        // RFC 3261 §7.5: ignore empty lines before the start line.
        while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
            pos += 1;
        }
        if pos == buf.len() {
            return Err(sl_err("empty message"));
        }
        let sl_start = pos;
        let nl = find_byte::<b'\n'>(buf, pos).ok_or(sl_err("unterminated start line"))?;
        let sl_end = if nl > pos && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let head = parse_start_line(&raw, sl_start, sl_end)?;

        if u32::try_from(buf.len()).is_err() {
            return Err(ParseError::Headers("message larger than 4 GiB"));
        }
        let mut hdrs: Vec<HdrPos> = Vec::with_capacity(24);
        let mut first_idx: FirstIdx = [NO_HDR; KNOWN_NAMES];
        let (body_start, content_length) = split_headers(buf, nl + 1, &mut hdrs, &mut first_idx)?;
        let end = match content_length {
            Some(cl) => {
                let end = body_start.checked_add(cl).filter(|e| *e <= buf.len());
                end.ok_or(ParseError::Body("Content-Length larger than the message"))?
            }
            None => buf.len(),
        };
        Ok(Message {
            head,
            start_span: (sl_start, nl + 1),
            hdrs,
            first_idx,
            body_start,
            end,
            edits: Edits::default(),
            lazy: Lazy::default(),
            raw,
        })
    }

    /// Original bytes as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Original length (Kamailio's `msg:len`).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn start_line(&self) -> &StartLine {
        self.lazy
            .start
            .get_or_init(|| self.head.to_start_line(&self.raw))
    }

    pub fn is_request(&self) -> bool {
        matches!(self.head, Head::Request { .. })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.head {
            Head::Request { method, .. } => Some(method),
            Head::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.head {
            Head::Response { code, .. } => Some(*code),
            Head::Request { .. } => None,
        }
    }

    /// All headers as received, in order (edits are not reflected).
    pub fn headers(&self) -> &[Header] {
        self.lazy
            .headers
            .get_or_init(|| self.hdrs.iter().map(|h| self.make_header(h)).collect())
    }

    /// First header of that name (case-insensitive, compact-form aware).
    pub fn header(&self, name: &str) -> Option<&Header> {
        let m = NameMatcher::new(name);
        let i = self
            .hdrs
            .iter()
            .position(|h| m.matches(h.name, &self.raw[h.name_range()]))?;
        Some(&self.headers()[i])
    }

    /// The value of the first header called `name` (compact forms and case
    /// as [`Message::header`]), as a slice of the received bytes: no
    /// header list is built, so a route reading one header (User-Agent, say)
    /// costs a scan of the positions and nothing more.
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        let m = NameMatcher::new(name);
        self.hdrs
            .iter()
            .find(|h| m.matches(h.name, &self.raw[h.name_range()]))
            .map(|h| self.value_of(h))
    }

    /// The values of every header called `name`, in order, as slices of the
    /// received bytes (no header list is built).
    pub fn header_value_slices<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let m = NameMatcher::new(name);
        self.hdrs
            .iter()
            .filter(move |h| m.matches(h.name, &self.raw[h.name_range()]))
            .map(|h| self.value_of(h))
    }

    /// Values of all headers of that name, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        let m = NameMatcher::new(name);
        self.headers()
            .iter()
            .filter(move |h| m.matches(h.name, &h.raw_name))
            .map(|h| &h.value)
    }

    pub fn body(&self) -> &Bytes {
        self.lazy
            .body
            .get_or_init(|| self.raw.slice(self.body_start..self.end))
    }

    /// The received body as a slice (no `Bytes` handle made).
    pub(crate) fn body_slice(&self) -> &[u8] {
        &self.raw[self.body_start..self.end]
    }

    fn make_header(&self, h: &HdrPos) -> Header {
        let name_bytes = &self.raw[h.name_range()];
        // When the received name is spelled exactly like the canonical or
        // compact form, point at a static copy: same bytes, one refcount
        // bump less.
        let raw_name = match static_name(h.name, name_bytes) {
            Some(s) => Bytes::from_static(s),
            None => self.raw.slice(h.name_range()),
        };
        Header {
            name: h.name,
            raw_name,
            value: self.raw.slice(h.value_range()),
        }
    }

    /// Trimmed value of a header as a slice of the received bytes.
    #[inline]
    pub(crate) fn value_of(&self, h: &HdrPos) -> &[u8] {
        &self.raw[h.value_range()]
    }

    /// Index of the first header called `name` (`hdrs.len()` when none).
    #[inline]
    fn first_index(&self, name: HeaderName) -> usize {
        match self.first_idx.get(name as usize) {
            Some(&NO_HDR) => self.hdrs.len(),
            Some(&i) => i as usize,
            // `Other` is not indexed: scan.
            None => self
                .hdrs
                .iter()
                .position(|h| h.name == name)
                .unwrap_or(self.hdrs.len()),
        }
    }

    fn values(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        let from = self.first_index(name);
        self.hdrs[from..]
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.value_of(h))
    }

    #[inline]
    fn first_pos(&self, name: HeaderName) -> Option<&HdrPos> {
        self.hdrs.get(self.first_index(name))
    }

    fn first(&self, name: HeaderName) -> Option<&[u8]> {
        self.first_pos(name).map(|h| self.value_of(h))
    }

    fn require_pos(&self, name: HeaderName) -> Result<&HdrPos, ParseError> {
        self.first_pos(name)
            .ok_or(ParseError::Missing(name.canonical()))
    }

    fn require(&self, name: HeaderName) -> Result<&[u8], ParseError> {
        self.require_pos(name).map(|h| self.value_of(h))
    }

    /// All Via values across all Via headers, topmost first.
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        let mut out = Vec::new();
        for v in self.values(HeaderName::Via) {
            Via::parse_into(v, &mut out)?;
        }
        Ok(out)
    }

    /// The topmost Via (first value of the first Via header).
    pub fn top_via(&self) -> Result<Via, ParseError> {
        let (first, _) = first_element(self.require(HeaderName::Via)?)?;
        Via::parse_one(first)
    }

    /// Validates every Via exactly like [`Message::vias`] (same errors, in
    /// the same order) but builds only the topmost; `Ok(None)` when there
    /// is no Via value at all.
    pub fn checked_top_via(&self) -> Result<Option<Via>, ParseError> {
        match self.checked_top_via_one_pass() {
            Some(top) => Ok(top),
            // The split for anything the one pass refuses: the exact error.
            None => self.checked_top_via_split(),
        }
    }

    /// [`Message::checked_top_via`] splitting each value first.
    fn checked_top_via_split(&self) -> Result<Option<Via>, ParseError> {
        let mut top = None;
        for v in self.values(HeaderName::Via) {
            for elem in split_top_level(v) {
                let elem = elem?;
                if top.is_none() {
                    top = Some(Via::parse_one(elem)?);
                } else {
                    via::parse_one_with(elem, |_, _| {})?;
                }
            }
        }
        Ok(top)
    }

    /// [`Message::checked_top_via`] with each value parsed in one pass
    /// (see `Via::parse_into`); `None` for anything that pass refuses.
    fn checked_top_via_one_pass(&self) -> Option<Option<Via>> {
        let mut top: Option<Via> = None;
        for v in self.values(HeaderName::Via) {
            let mut s = v;
            loop {
                let next = match top {
                    None => {
                        let mut via = Via::empty();
                        let next = via.parse_prefix_in_place(s)?;
                        top = Some(via);
                        next
                    }
                    Some(_) => via::parse_prefix_with(s, |_, _| {})?.1,
                };
                match next {
                    Some(rest) => s = rest,
                    None => break,
                }
            }
        }
        Some(top)
    }

    /// Validates From exactly like [`Message::from`] and returns its tag
    /// (as `from()?.tag()` would), without building the name-addr.
    pub fn checked_from_tag(&self) -> Result<Option<CompactString>, ParseError> {
        let found = NameAddr::check_and_find_param(self.require(HeaderName::From)?, "tag")?;
        Ok(found.flatten().map(lossy_compact))
    }

    /// Validates To exactly like [`Message::to`] without building it.
    pub fn check_to(&self) -> Result<(), ParseError> {
        NameAddr::check_and_find_param(self.require(HeaderName::To)?, "tag").map(|_| ())
    }

    pub fn from(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(self.require(HeaderName::From)?)
    }

    pub fn to(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(self.require(HeaderName::To)?)
    }

    /// The Call-ID as received (a slice of the message: no copy, no
    /// reference count; `raw().slice_ref(id)` makes a `Bytes` of it).
    pub fn call_id(&self) -> Result<&[u8], ParseError> {
        let v = self.require(HeaderName::CallId)?;
        check_call_id(v)?;
        Ok(v)
    }

    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(self.require(HeaderName::CSeq)?)
    }

    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        self.first(HeaderName::MaxForwards)
            .map(|v| parse_u32(v).ok_or(ParseError::header("Max-Forwards", "not a number")))
            .transpose()
    }

    /// Contacts across all Contact headers; `*` alone gives `Star`; no
    /// Contact header gives an empty list.
    pub fn contacts(&self) -> Result<Contacts, ParseError> {
        Contacts::parse_values(self.values(HeaderName::Contact))
    }

    pub fn routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.name_addr_list(HeaderName::Route)
    }

    pub fn record_routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.name_addr_list(HeaderName::RecordRoute)
    }

    fn name_addr_list(&self, name: HeaderName) -> Result<Vec<NameAddr>, ParseError> {
        let mut out = Vec::new();
        for v in self.values(name) {
            NameAddr::parse_list_into(v, &mut out)?;
        }
        Ok(out)
    }

    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        self.first(HeaderName::ContentLength)
            .map(parse_content_length)
            .transpose()
    }

    /// The Content-Type value as received (a slice of the message).
    pub fn content_type(&self) -> Option<&[u8]> {
        self.first(HeaderName::ContentType)
    }

    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.first(HeaderName::Expires)
            .map(|v| parse_delta_seconds(v).ok_or(ParseError::header("Expires", "not a number")))
            .transpose()
    }

    pub fn authorization(&self) -> Result<Option<Credentials>, ParseError> {
        self.first(HeaderName::Authorization)
            .map(Credentials::parse)
            .transpose()
    }

    pub fn proxy_authorization(&self) -> Result<Option<Credentials>, ParseError> {
        self.first(HeaderName::ProxyAuthorization)
            .map(Credentials::parse)
            .transpose()
    }

    /// Parses the current Request-URI (the rewritten one after `set_request_uri`).
    pub fn request_uri(&self) -> Result<Uri, ParseError> {
        if !self.is_request() {
            return Err(ParseError::Invalid("responses have no Request-URI"));
        }
        let raw: &[u8] = match (&self.edits.ruri, &self.head) {
            (Some(u), _) => u,
            (None, Head::Request { uri, .. }) => &self.raw[uri.0..uri.1],
            (None, Head::Response { .. }) => &[],
        };
        Uri::parse(raw)
    }

    /// Current Request-URI text (edited or original); empty for responses.
    pub fn request_uri_raw(&self) -> Bytes {
        if let Some(u) = &self.edits.ruri {
            return u.clone();
        }
        match &self.head {
            Head::Request { uri, .. } => self.raw.slice(uri.0..uri.1),
            Head::Response { .. } => Bytes::new(),
        }
    }

    /// Resolves what transaction matching needs: top Via, From/To tags,
    /// Call-ID and CSeq (all typed).
    ///
    /// Validates exactly what `top_via()`, `from()`, `to()`, `call_id()`
    /// and `cseq()` validate, in that order, but without building the Via
    /// and name-addr structs: only the strings the key holds are made.
    pub fn transaction_key(&self) -> Result<TransactionKey, ParseError> {
        let vias = self.require(HeaderName::Via)?;
        let mut branch = FirstParam::new("branch");
        // One pass over the top Via (see `Via::parse_into`); the split
        // for anything that pass refuses, which gives the exact error.
        let via = match via::parse_prefix_with(vias, |n, v| branch.see(n, v)) {
            Some((via, _)) => via,
            None => {
                branch = FirstParam::new("branch");
                let (first, _) = first_element(vias)?;
                via::parse_one_with(first, |n, v| branch.see(n, v))?
            }
        };
        let via_sent_by = match via.sent_by_text {
            Some(text) => self.raw.slice_ref(text),
            None => Bytes::copy_from_slice(via.host.sent_by(via.port).as_bytes()),
        };
        let tag = |name| -> Result<Option<CompactString>, ParseError> {
            let found = NameAddr::check_and_find_param(self.require(name)?, "tag")?;
            Ok(found.flatten().map(lossy_compact))
        };
        let from_tag = tag(HeaderName::From)?;
        let to_tag = tag(HeaderName::To)?;
        let call_id = self.require_pos(HeaderName::CallId)?;
        check_call_id(self.value_of(call_id))?;
        Ok(TransactionKey {
            branch: branch.value_string(),
            call_id: self.raw.slice(call_id.value_range()),
            cseq: self.cseq()?,
            from_tag,
            to_tag,
            via_sent_by,
        })
    }
}

/// Splits the header block starting at `pos` into `hdrs` (see
/// [`Message::parse`]): the body start and the Content-Length. Out of line
/// so that the per-line loop does not share registers with the start line
/// and the `Message` being built.
#[inline(never)]
fn split_headers(
    buf: &[u8],
    mut pos: usize,
    hdrs: &mut Vec<HdrPos>,
    first_idx: &mut FirstIdx,
) -> Result<(usize, Option<usize>), ParseError> {
    let mut content_length: Option<usize> = None;
    // A Content-Length header whose value is checked once the next
    // line is known to be terminated: errors come in the order of a
    // split that pushes each header when the following line starts.
    let mut cl_pending: Option<usize> = None;
    let body_start;
    loop {
        let Some(&first) = buf.get(pos) else {
            // Buffer ends right after a header line with no empty line.
            // Tolerated: there is no body either way.
            body_start = buf.len();
            break;
        };
        // CR, LF, SP and HT are all <= SP: one test keeps the empty
        // line and folds off the common path.
        if first <= b' ' {
            // Empty line: end of the header block.
            if first == b'\n' {
                body_start = pos + 1;
                break;
            }
            if first == b'\r' && buf.get(pos + 1) == Some(&b'\n') {
                body_start = pos + 2;
                break;
            }
            if first == b' ' || first == b'\t' {
                pos = fold_line(buf, pos, hdrs)?;
                continue;
            }
        }
        // Common case: `token *(SP/HT) ':'`. The first ':' is found
        // with a block search; the name before it (SP/HT trimmed) is
        // valid when it is a well-known name (all of them are tokens)
        // or, for other names, all token bytes. This is what a
        // token-then-SP/HT-then-':' scan accepts, in fewer instructions.
        let Some((ne, colon, name)) = header_name(buf, pos) else {
            return Err(bad_header_line(
                buf,
                pos,
                hdrs,
                cl_pending,
                &mut content_length,
            ));
        };
        let nl = find_byte::<b'\n'>(buf, colon + 1)
            .ok_or(ParseError::Headers("unterminated header line"))?;
        if let Some(i) = cl_pending.take() {
            check_content_length(buf, &hdrs[i], &mut content_length)?;
        }
        let le = if buf[nl - 1] == b'\r' { nl - 1 } else { nl };
        let (vs, ve) = trim_value(buf, colon + 1, le);
        // `Message::parse` checked that the buffer length fits in u32, and
        // every header takes at least two bytes, so the count fits too.
        if let Some(slot) = first_idx.get_mut(name as usize)
            && *slot == NO_HDR
        {
            *slot = hdrs.len() as u32;
        }
        if name == HeaderName::ContentLength {
            cl_pending = Some(hdrs.len());
        }
        hdrs.push(HdrPos {
            name,
            name_s: pos as u32,
            name_e: ne as u32,
            val_s: vs as u32,
            val_e: ve as u32,
            line_s: pos as u32,
            line_e: (nl + 1) as u32,
        });
        pos = nl + 1;
    }
    if let Some(i) = cl_pending {
        check_content_length(buf, &hdrs[i], &mut content_length)?;
    }
    Ok((body_start, content_length))
}

/// The name of the header line at `pos` when it is `token *(SP/HT) ':'`:
/// name end, colon and the name. Known names are all tokens, so only
/// `Other` names need the byte-by-byte token check.
#[inline(always)]
fn header_name(buf: &[u8], pos: usize) -> Option<(usize, usize, HeaderName)> {
    let colon = find_byte_near::<b':'>(buf, pos)?;
    let mut ne = colon;
    while ne > pos && matches!(buf[ne - 1], b' ' | b'\t') {
        ne -= 1;
    }
    if ne == pos {
        return None;
    }
    let raw = &buf[pos..ne];
    let name = HeaderName::from_bytes(raw);
    if name == HeaderName::Other && !raw.iter().all(|&b| is_token(b)) {
        return None;
    }
    Some((ne, colon, name))
}

/// The error for a header line at `pos` that is not `token *(SP/HT) ':'`,
/// chosen as a plain line split reports it: an unterminated line first,
/// then the previous header's Content-Length, then the missing ':'.
#[cold]
#[inline(never)]
fn bad_header_line(
    buf: &[u8],
    pos: usize,
    hdrs: &[HdrPos],
    cl_pending: Option<usize>,
    content_length: &mut Option<usize>,
) -> ParseError {
    let Some(nl) = memchr(b'\n', &buf[pos..]).map(|i| i + pos) else {
        return ParseError::Headers("unterminated header line");
    };
    let le = if nl > pos && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    if let Some(i) = cl_pending
        && let Err(e) = check_content_length(buf, &hdrs[i], content_length)
    {
        return e;
    }
    if memchr(b':', &buf[pos..le]).is_none() {
        return ParseError::Headers("header line without ':'");
    }
    ParseError::Headers("bad header name")
}

fn check_call_id(v: &[u8]) -> Result<(), ParseError> {
    // `is_lws` spelled as compares so that the check vectorizes.
    let lws = any_byte(v, |c| {
        (c == b' ') | (c == b'\t') | (c == b'\r') | (c == b'\n')
    });
    if v.is_empty() || lws {
        return Err(ParseError::header(
            "Call-ID",
            "empty or contains whitespace",
        ));
    }
    Ok(())
}

/// `value` LWS-trimmed on both sides (folds included).
#[inline(always)]
fn trim_value(buf: &[u8], mut vs: usize, mut ve: usize) -> (usize, usize) {
    // Nearly every header is `Name: value`: one SP, then a byte that is
    // not LWS (all LWS bytes are <= SP), and no LWS at the end. Three
    // compares instead of the two trim loops.
    if vs + 1 < ve
        && let (Some(b' '), Some(&first), Some(&last)) =
            (buf.get(vs), buf.get(vs + 1), buf.get(ve - 1))
        && first > b' '
        && last > b' '
    {
        return (vs + 1, ve);
    }
    vs = skip_while(&buf[..ve], vs, is_lws);
    while ve > vs && is_lws(buf[ve - 1]) {
        ve -= 1;
    }
    (vs, ve)
}

/// Strict Content-Length of a header, and agreement with earlier ones.
#[cold]
fn check_content_length(
    buf: &[u8],
    h: &HdrPos,
    content_length: &mut Option<usize>,
) -> Result<(), ParseError> {
    let cl = parse_content_length(&buf[h.value_range()])?;
    match *content_length {
        None => *content_length = Some(cl),
        Some(prev) if prev != cl => {
            return Err(ParseError::header("Content-Length", "conflicting values"));
        }
        Some(_) => {}
    }
    Ok(())
}

/// A folded continuation line at `pos` (it starts with SP/HT): extends the
/// last header's value and line. Returns the start of the next line.
#[cold]
#[inline(never)]
fn fold_line(buf: &[u8], pos: usize, hdrs: &mut [HdrPos]) -> Result<usize, ParseError> {
    let nl = find_byte::<b'\n'>(buf, pos).ok_or(ParseError::Headers("unterminated header line"))?;
    let le = if buf[nl - 1] == b'\r' { nl - 1 } else { nl };
    let h = hdrs
        .last_mut()
        .ok_or(ParseError::Headers("continuation line before first header"))?;
    // The value starts after the ':' that follows the name and its SP/HT.
    let colon = skip_while(buf, h.name_e as usize, |b| b == b' ' || b == b'\t');
    let (vs, ve) = trim_value(buf, colon + 1, le);
    h.val_s = vs as u32;
    h.val_e = ve as u32;
    h.line_e = (nl + 1) as u32;
    Ok(nl + 1)
}

fn static_name(name: HeaderName, b: &[u8]) -> Option<&'static [u8]> {
    if name == HeaderName::Other {
        return None;
    }
    let canonical = name.canonical().as_bytes();
    if b == canonical {
        return Some(canonical);
    }
    const COMPACT: [&[u8]; 9] = [b"v", b"f", b"t", b"i", b"m", b"l", b"c", b"k", b"s"];
    COMPACT.iter().find(|c| **c == b).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type OldHeaders = Vec<(HeaderName, Bytes, Bytes, (usize, usize))>;

    /// A header line being accumulated until the next non-continuation line.
    struct Pending {
        name: (usize, usize),
        value: (usize, usize),
        line: (usize, usize),
    }

    /// The header split of `Message::parse` before header positions: one
    /// memchr per line, then ':' and the name check. The new line scan
    /// must produce the same headers, spans, body and errors.
    #[allow(clippy::type_complexity)]
    fn old_parse(
        raw: &Bytes,
    ) -> Result<(StartLine, (usize, usize), OldHeaders, Bytes, usize), ParseError> {
        let buf: &[u8] = raw;
        let mut pos = 0;
        while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
            pos += 1;
        }
        if pos == buf.len() {
            return Err(sl_err("empty message"));
        }
        let sl_start = pos;
        let nl = memchr(b'\n', &buf[pos..]).ok_or(sl_err("unterminated start line"))? + pos;
        let sl_end = if nl > pos && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let start = parse_start_line(raw, sl_start, sl_end)?.to_start_line(raw);
        pos = nl + 1;
        let mut headers = Vec::new();
        let mut content_length: Option<usize> = None;
        let mut cur: Option<Pending> = None;
        let push = |headers: &mut OldHeaders, cl: &mut Option<usize>, p: Pending| {
            let (mut vs, mut ve) = p.value;
            while vs < ve && is_lws(buf[vs]) {
                vs += 1;
            }
            while ve > vs && is_lws(buf[ve - 1]) {
                ve -= 1;
            }
            let name = HeaderName::from_bytes(&buf[p.name.0..p.name.1]);
            if name == HeaderName::ContentLength {
                let v = parse_content_length(&buf[vs..ve])?;
                match *cl {
                    None => *cl = Some(v),
                    Some(prev) if prev != v => {
                        return Err(ParseError::header("Content-Length", "conflicting values"));
                    }
                    Some(_) => {}
                }
            }
            headers.push((
                name,
                raw.slice(p.name.0..p.name.1),
                raw.slice(vs..ve),
                p.line,
            ));
            Ok(())
        };
        let body_start;
        loop {
            if pos >= buf.len() {
                body_start = buf.len();
                break;
            }
            let nl = memchr(b'\n', &buf[pos..])
                .ok_or(ParseError::Headers("unterminated header line"))?
                + pos;
            let le = if nl > pos && buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            if le == pos {
                body_start = nl + 1;
                break;
            }
            let first = buf[pos];
            if first == b' ' || first == b'\t' {
                let c = cur
                    .as_mut()
                    .ok_or(ParseError::Headers("continuation line before first header"))?;
                c.value.1 = le;
                c.line.1 = nl + 1;
            } else {
                if let Some(p) = cur.take() {
                    push(&mut headers, &mut content_length, p)?;
                }
                let colon = memchr(b':', &buf[pos..le])
                    .ok_or(ParseError::Headers("header line without ':'"))?
                    + pos;
                let mut ne = colon;
                while ne > pos && (buf[ne - 1] == b' ' || buf[ne - 1] == b'\t') {
                    ne -= 1;
                }
                if ne == pos || !buf[pos..ne].iter().all(|b| is_token(*b)) {
                    return Err(ParseError::Headers("bad header name"));
                }
                cur = Some(Pending {
                    name: (pos, ne),
                    value: (colon + 1, le),
                    line: (pos, nl + 1),
                });
            }
            pos = nl + 1;
        }
        if let Some(p) = cur.take() {
            push(&mut headers, &mut content_length, p)?;
        }
        let end = match content_length {
            Some(cl) => {
                let end = body_start.checked_add(cl).filter(|e| *e <= buf.len());
                end.ok_or(ParseError::Body("Content-Length larger than the message"))?
            }
            None => buf.len(),
        };
        Ok((
            start,
            (sl_start, nl + 1),
            headers,
            raw.slice(body_start..end),
            end,
        ))
    }

    const SEED: &[u8] = b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9\r\nv :x\r\n \tfold\r\nMax-Forwards:70\nTo: <sip:b@h>\r\nX-A\t: 1\r\nl: 3\r\nContent-Length: 3\r\n\r\nabcdef";

    /// Folds, empty values and Content-Length next to them.
    const SEED2: &[u8] =
        b"SIP/2.0 200 OK\r\nl: 2\r\n \r\nSubject:\r\n\tz \r\nContent-Length :2\r\nX:\r\n\r\nab";

    #[test]
    fn seed_parses_like_old() {
        let raw = Bytes::from_static(SEED);
        let m = Message::parse(raw.clone()).unwrap();
        let (_, _, headers, body, _) = old_parse(&raw).unwrap();
        assert_eq!(m.headers().len(), 7);
        assert_eq!(headers.len(), 7);
        assert_eq!(&m.body()[..], b"abc");
        assert_eq!(&body, m.body());
    }

    #[test]
    fn first_header_index() {
        let m = Message::parse(Bytes::from_static(SEED)).unwrap();
        // `v :x` comes after `Via:`; the index points at the first.
        assert_eq!(m.first_idx[HeaderName::Via as usize], 0);
        assert_eq!(m.first_idx[HeaderName::To as usize], 3);
        assert_eq!(m.first_idx[HeaderName::From as usize], NO_HDR);
        assert_eq!(m.values(HeaderName::Via).count(), 2);
        assert_eq!(m.first(HeaderName::ContentLength), Some(&b"3"[..]));
        assert!(m.first(HeaderName::CSeq).is_none());
    }

    #[test]
    fn checked_accessors_match_full_parses() {
        let cases: [&[u8]; 6] = [
            b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9;rport, SIP/2.0/TCP b\r\nv: SIP/2.0/UDP c\r\nFrom: <sip:a@h>;TAG=x\r\nTo: sip:b@h\r\n\r\n",
            b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9\r\nVia: bogus\r\nFrom: \"A\" <sip:a@h>\r\nTo: <sip:b@h>;tag=1\r\n\r\n",
            b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP a, ,\r\nFrom: sip:a@h;tag\r\nTo: <sip:b@h\r\n\r\n",
            b"OPTIONS sip:h SIP/2.0\r\nVia:\r\nVia: SIP/2.0/UDP a\r\nFrom: <bad>\r\nTo: x y\r\n\r\n",
            b"OPTIONS sip:h SIP/2.0\r\nFrom: <sip:a@h>;tag=a;tag=b\r\n\r\n",
            b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5060;x=\"a,b\";branch=q\r\n\r\n",
        ];
        for raw in cases {
            let m = Message::parse(Bytes::from_static(raw)).unwrap();
            let full = m.vias().map(|v| v.into_iter().next());
            assert_eq!(m.checked_top_via(), full);
            let tag = m.from().map(|f| f.tag().map(str::to_owned));
            assert_eq!(m.checked_from_tag(), tag.map(|t| t.map(Into::into)));
            assert_eq!(m.check_to(), m.to().map(|_| ()));
        }
    }

    proptest! {
        /// The one-pass `checked_top_via` gives what splitting first gives.
        #[test]
        fn checked_top_via_matches_split(vias in prop::collection::vec(r#"[ ]{0,1}(SIP/2.0/UDP|SIP/2.0/tcp)[ ]{1,2}[a-z0-9.:]{0,6}(;[a-z]{0,3}(=("[a-z,<]{0,2}"?|[a-z0-9,<]{1,3}))?){0,2}[ ]{0,1}[,<"]{0,1}"#, 0..4)) {
            let mut raw = b"OPTIONS sip:h SIP/2.0\r\n".to_vec();
            for v in &vias {
                raw.extend_from_slice(b"Via: ");
                raw.extend_from_slice(v.as_bytes());
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"\r\n");
            let m = Message::parse(Bytes::from(raw)).unwrap();
            prop_assert_eq!(m.checked_top_via(), m.checked_top_via_split());
        }

        #[test]
        fn line_scan_matches_old(seed in 0usize..2, muts in prop::collection::vec((any::<prop::sample::Index>(), 0usize..12, 0u8..3), 0..6)) {
            let mut v = [SEED, SEED2][seed].to_vec();
            for (idx, b, op) in muts {
                let interesting = [b'\r', b'\n', b' ', b'\t', b':', b'x', b'@', 0, b'9', b'(', b'-', b'\xff'];
                let i = idx.index(v.len());
                match op {
                    0 => v[i] = interesting[b],
                    1 => v.insert(i, interesting[b]),
                    _ => { v.remove(i); }
                }
            }
            let raw = Bytes::from(v);
            let old = old_parse(&raw);
            match Message::parse(raw.clone()) {
                Ok(m) => {
                    let (start, span, headers, body, end) = old.expect("new parse accepted what the old refused");
                    prop_assert_eq!(m.start_line(), &start);
                    prop_assert_eq!(m.start_span, span);
                    prop_assert_eq!(m.body(), &body);
                    prop_assert_eq!(m.end, end);
                    prop_assert_eq!(m.headers().len(), headers.len());
                    // The first-header index agrees with a scan of the list.
                    for i in 0..KNOWN_NAMES {
                        let want = m.hdrs.iter().position(|h| h.name as usize == i);
                        let got = m.first_idx[i];
                        prop_assert_eq!(want, (got != NO_HDR).then_some(got as usize));
                    }
                    for ((h, p), (name, raw_name, value, line)) in m.headers().iter().zip(&m.hdrs).zip(&headers) {
                        prop_assert_eq!(h.name, *name);
                        prop_assert_eq!(&h.raw_name, raw_name);
                        prop_assert_eq!(&h.value, value);
                        prop_assert_eq!(p.line_range(), line.0..line.1);
                    }
                }
                Err(e) => prop_assert_eq!(Err(e), old.map(|_| ())),
            }
        }
    }
}
