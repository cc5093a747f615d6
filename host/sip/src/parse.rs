//! Shared grammar pieces (RFC 3261 §25) and the crate's error type.
//!
//! Everything that more than one header parser needs lives here: character
//! classes, LWS handling, quoted strings, top-level list splitting and
//! `;name=value` parameter lists. Input always comes from the network, so
//! every function returns a [`ParseError`] instead of panicking.

use compact_str::CompactString;
use smallvec::SmallVec;

use nom::{
    IResult, Parser,
    bytes::complete::{take_while, take_while1},
};

/// Why a message or header could not be parsed.
///
/// Reasons are static strings so that building an error never allocates;
/// [`ParseError::reason`] renders them for a `400 Bad Request` log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The request or status line is malformed.
    #[error("bad start line: {0}")]
    StartLine(&'static str),
    /// The header block could not be split into header fields.
    #[error("bad header block: {0}")]
    Headers(&'static str),
    /// A URI did not match the SIP/SIPS/tel grammar.
    #[error("bad URI: {0}")]
    Uri(&'static str),
    /// A header value did not match its grammar.
    #[error("bad {header} header: {reason}")]
    Header {
        header: &'static str,
        reason: &'static str,
    },
    /// A header that the operation needs is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The body does not agree with Content-Length.
    #[error("bad body: {0}")]
    Body(&'static str),
    /// The operation makes no sense for this message (e.g. replying to a response).
    #[error("invalid operation: {0}")]
    Invalid(&'static str),
}

impl ParseError {
    /// Human-readable reason, suitable for `400 Bad Request - <reason>` logs.
    pub fn reason(&self) -> String {
        self.to_string()
    }

    pub(crate) fn header(header: &'static str, reason: &'static str) -> Self {
        ParseError::Header { header, reason }
    }
}

/// `token` characters (RFC 3261 §25.1): alphanumerics and `-.!%*_+`'~`.
const fn token_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
}
static TOKEN: [bool; 256] = token_table();

/// A `token` character (RFC 3261 §25.1): what header names and methods are
/// made of.
#[inline]
pub fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Linear white space. CR and LF count too: header values reach the typed
/// parsers with folds (`CRLF 1*WSP`) still inside, and a fold is LWS.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn trim_lws(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_lws(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_lws(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// nom: optional LWS.
pub(crate) fn lws0(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(is_lws).parse(i)
}

/// nom: mandatory LWS (reference grammars in tests).
#[cfg(test)]
pub(crate) fn lws1(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(is_lws).parse(i)
}

/// nom: a token.
pub(crate) fn token(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(is_token).parse(i)
}

/// Index just past the closing quote of a quoted string starting at `s[0] == '"'`.
/// Backslash escapes any following byte (quoted-pair).
pub(crate) fn quoted_end(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// nom: a whole quoted string, quotes included.
pub(crate) fn quoted_string(i: &[u8]) -> IResult<&[u8], &[u8]> {
    match quoted_end(i) {
        Some(end) => Ok((&i[end..], &i[..end])),
        None => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Char,
        ))),
    }
}

/// Contents of a quoted string (quotes included in `q`) with quoted-pairs
/// resolved. Display names are short: inline (no allocation) up to 24 bytes.
pub(crate) fn unquote(q: &[u8]) -> CompactString {
    let inner = if q.len() >= 2 { &q[1..q.len() - 1] } else { q };
    // Display names are a few bytes: a plain scan beats memchr's setup.
    if !inner.contains(&b'\\') {
        return lossy_compact(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' && i + 1 < inner.len() {
            out.push(inner[i + 1]);
            i += 2;
        } else {
            out.push(inner[i]);
            i += 1;
        }
    }
    lossy_compact(&out)
}

/// Writes `;name=value` / `;name` parameters as URIs, Vias and name-addrs
/// serialize them.
pub(crate) fn write_params(f: &mut std::fmt::Formatter<'_>, params: &[Param]) -> std::fmt::Result {
    for (n, v) in params {
        f.write_str(";")?;
        f.write_str(n)?;
        if let Some(v) = v {
            f.write_str("=")?;
            f.write_str(v)?;
        }
    }
    Ok(())
}

/// Bytes to `String`, replacing invalid UTF-8 rather than failing: header
/// text is mostly ASCII and a broken byte in a display name is no reason to
/// drop a call.
#[inline]
pub(crate) fn lossy(b: &[u8]) -> String {
    // Nearly every header field is ASCII: `is_ascii` is an inlined word
    // loop, while `str::from_utf8` is an out-of-line call that costs more
    // than the copy for the short strings of a SIP message (~50 of them in
    // a full typed parse).
    if b.is_ascii() {
        // SAFETY: every byte is < 0x80, and ASCII is valid UTF-8.
        return unsafe { String::from_utf8_unchecked(b.to_vec()) };
    }
    // Valid non-ASCII UTF-8 is borrowed and copied once; invalid bytes
    // become U+FFFD.
    String::from_utf8_lossy(b).into_owned()
}

/// `b` as text without a copy when it is ASCII (as hosts always are);
/// invalid UTF-8 becomes U+FFFD.
#[inline]
pub(crate) fn ascii_str(b: &[u8]) -> std::borrow::Cow<'_, str> {
    if b.is_ascii() {
        // SAFETY: every byte is < 0x80, and ASCII is valid UTF-8.
        return std::borrow::Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(b) });
    }
    String::from_utf8_lossy(b)
}

/// [`lossy`] into a [`CompactString`]: the text of a typed header value.
/// Up to 24 bytes (users, hosts, tags, most branches, parameter names and
/// values) it is stored inline, so building it costs a copy and no
/// allocation; freeing it costs nothing.
#[inline]
pub(crate) fn lossy_compact(b: &[u8]) -> CompactString {
    if b.is_ascii() {
        // SAFETY: every byte is < 0x80, and ASCII is valid UTF-8.
        // (`CompactString::new` builds an inline string in registers;
        // `from_utf8_unchecked` goes through a capacity and a memcpy call.)
        return CompactString::new(unsafe { std::str::from_utf8_unchecked(b) });
    }
    CompactString::from(String::from_utf8_lossy(b))
}

/// [`lossy_compact`] for text that its scanner has already confined to
/// ASCII: URI parts (`parse_uri_with` refuses every byte >= 0x7f),
/// tokens (parameter names, Via protocol and transport) and host names.
/// The bytes are still checked: skipping the `is_ascii` pass saved ~300
/// instructions of a full typed parse, but would make any future scanner
/// slip undefined behaviour on bytes from the network.
#[inline]
pub(crate) fn ascii_compact(b: &[u8]) -> CompactString {
    debug_assert!(b.is_ascii(), "{b:?}");
    lossy_compact(b)
}

/// Splits a header value into its comma-separated elements, ignoring commas
/// inside quoted strings and `<...>`. Elements are LWS-trimmed; callers
/// decide whether an empty element is an error.
pub(crate) struct SplitTop<'a> {
    s: &'a [u8],
    pos: usize,
    done: bool,
}

pub(crate) fn split_top_level(s: &[u8]) -> SplitTop<'_> {
    SplitTop {
        s,
        pos: 0,
        done: false,
    }
}

impl<'a> SplitTop<'a> {
    /// The not yet consumed rest of the input (after the last returned element's comma).
    pub(crate) fn rest(&self) -> &'a [u8] {
        if self.done { &[] } else { &self.s[self.pos..] }
    }
}

impl<'a> Iterator for SplitTop<'a> {
    /// `Err` when a quote or angle bracket is left open.
    type Item = Result<&'a [u8], ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let s = self.s;
        let start = self.pos;
        let mut i = start;
        let mut in_angle = false;
        while i < s.len() {
            // Outside <...> only '"', '<' and ',' matter ('>' is a no-op);
            // inside, only '>' does.
            let next = if in_angle {
                memchr::memchr(b'>', &s[i..])
            } else if matches!(s[i], b'"' | b'<' | b',') {
                // `<uri>` elements and the ',' right after a '>': no
                // memchr3 call (~60 instructions of setup) for those.
                Some(0)
            } else {
                memchr::memchr3(b'"', b'<', b',', &s[i..])
            };
            match next {
                Some(n) => i += n,
                None => break,
            }
            match s[i] {
                b'"' if !in_angle => match quoted_end(&s[i..]) {
                    Some(n) => {
                        i += n;
                        continue;
                    }
                    None => {
                        self.done = true;
                        return Some(Err(ParseError::Headers("unterminated quoted string")));
                    }
                },
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                b',' if !in_angle => {
                    self.pos = i + 1;
                    return Some(Ok(trim_lws(&s[start..i])));
                }
                _ => {}
            }
            i += 1;
        }
        self.done = true;
        if in_angle {
            return Some(Err(ParseError::Headers("unterminated '<'")));
        }
        Some(Ok(trim_lws(&s[start..])))
    }
}

/// First comma-separated element of a header value and the raw rest after
/// its comma (`None` if it was the only element).
pub(crate) fn first_element(s: &[u8]) -> Result<(&[u8], Option<&[u8]>), ParseError> {
    let mut it = split_top_level(s);
    let first = it.next().unwrap_or(Ok(&[][..]))?;
    if it.done {
        Ok((first, None))
    } else {
        Ok((first, Some(it.rest())))
    }
}

/// Characters allowed in an unquoted generic-param value: everything visible
/// except the separators that end it. Non-ASCII is let through (UTF-8 in
/// the wild); `[`/`]`/`:` cover IPv6 references (`received=[::1]`).
#[inline]
fn is_param_value_char(b: u8) -> bool {
    PARAM_VALUE[b as usize]
}

static PARAM_VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b > b' ' && b != 0x7f && !matches!(b, b';' | b',' | b'"' | b'=' | b'<' | b'>');
        i += 1;
    }
    t
};

/// End of the LWS run starting at `p`.
#[inline]
pub(crate) fn skip_lws(s: &[u8], mut p: usize) -> usize {
    while p < s.len() && is_lws(s[p]) {
        p += 1;
    }
    p
}

/// Index of the first `N` at or after `p` in `s` (`None` when `p` is past
/// the end too). For the short spans of a SIP message (a header line, a
/// header name) this beats a `memchr` call, whose dispatch and setup cost
/// ~60 instructions per call: 16-byte blocks are tested with a
/// non-short-circuit fold that LLVM compiles to pcmpeqb + pmovmskb (SSE2,
/// x86-64 baseline), two per step (one branch per 32 bytes), and only the
/// half holding the match is searched, 8 bytes at a time.
///
/// `N` is a const parameter so that each searched byte gets its own copy
/// with the splatted constants folded in; out of line, as inlining it
/// into `Message::parse` costs more in register spills than the call.
#[inline(never)]
pub(crate) fn find_byte<const N: u8>(s: &[u8], p: usize) -> Option<usize> {
    let any = |b: &[u8; 16]| b.iter().fold(false, |a, &c| a | (c == N));
    let mut rest = s.get(p..)?;
    while let Some((pair, tail)) = rest.split_first_chunk::<32>() {
        let (lo, hi) = (pair.first_chunk::<16>()?, pair.last_chunk::<16>()?);
        let (in_lo, in_hi) = (any(lo), any(hi));
        if in_lo | in_hi {
            let i = if in_lo {
                first_in(lo, N)
            } else {
                16 + first_in(hi, N)
            };
            return Some(s.len() - rest.len() + i);
        }
        rest = tail;
    }
    while let Some((block, tail)) = rest.split_first_chunk::<16>() {
        if any(block) {
            return Some(s.len() - rest.len() + first_in(block, N));
        }
        rest = tail;
    }
    let i = rest.iter().position(|&b| b == N)?;
    Some(s.len() - rest.len() + i)
}

/// [`find_byte`] for a byte that is usually within 16 bytes of `p` (the
/// ':' after a header name): the first two words are tested inline with
/// SWAR, which costs less than the call and block setup.
#[inline(always)]
pub(crate) fn find_byte_near<const N: u8>(s: &[u8], p: usize) -> Option<usize> {
    if let Some(w) = s.get(p..p.wrapping_add(16)) {
        let (lo, hi) = w.split_at(8);
        let z = zero_bytes(u64::from_le_bytes(lo.try_into().expect("8 bytes")), N);
        if z != 0 {
            return Some(p + (z.trailing_zeros() / 8) as usize);
        }
        let z = zero_bytes(u64::from_le_bytes(hi.try_into().expect("8 bytes")), N);
        if z != 0 {
            return Some(p + 8 + (z.trailing_zeros() / 8) as usize);
        }
        return find_byte::<N>(s, p + 16);
    }
    find_byte::<N>(s, p)
}

/// 0x80 in the bytes of `w` equal to `n` (has-zero test on `w ^ splat(n)`):
/// the lowest flagged byte is always exact, higher ones may not be.
#[inline(always)]
fn zero_bytes(w: u64, n: u8) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let x = w ^ (LO * u64::from(n));
    x.wrapping_sub(LO) & !x & HI
}

/// Index of the first `n` in a block known to hold one, 8 bytes at a time
/// (SWAR; the lowest flagged byte of the classic has-zero test is always
/// exact).
#[inline(always)]
fn first_in<const L: usize>(b: &[u8; L], n: u8) -> usize {
    let mut i = 0;
    for w in b.chunks_exact(8) {
        let z = zero_bytes(u64::from_le_bytes(w.try_into().expect("8 bytes")), n);
        if z != 0 {
            return i + (z.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    L
}

/// Whether any byte of `v` satisfies `f`. `f` should be plain compares
/// (no table lookup or bit test) so that LLVM vectorizes the fold over
/// each 16-byte block; the last block overlaps the one before instead of
/// a byte-by-byte tail. About a tenth of the instructions of a
/// short-circuiting `any` over a 40-byte field.
#[inline(always)]
pub(crate) fn any_byte(v: &[u8], f: impl Fn(u8) -> bool + Copy) -> bool {
    let block = |b: &[u8; 16]| b.iter().fold(false, |a, &c| a | f(c));
    match v.last_chunk::<16>() {
        Some(last) => v.as_chunks::<16>().0.iter().any(block) || block(last),
        None => v.iter().any(|&c| f(c)),
    }
}

/// End of the run of bytes matching `f` starting at `p`.
#[inline]
pub(crate) fn skip_while(s: &[u8], mut p: usize, f: impl Fn(u8) -> bool) -> usize {
    while p < s.len() && f(s[p]) {
        p += 1;
    }
    p
}

/// [`skip_while`] for runs that are usually longer than a few bytes
/// (hosts, parameter values): four bytes per step while they all match
/// (no short-circuit between them, so one branch instead of four), then
/// byte by byte. A table lookup loop costs ~6 instructions a byte.
#[inline]
pub(crate) fn skip_run(s: &[u8], mut p: usize, f: impl Fn(u8) -> bool) -> usize {
    while let Some(&[a, b, c, d]) = s.get(p..p.wrapping_add(4)) {
        if !(f(a) & f(b) & f(c) & f(d)) {
            break;
        }
        p += 4;
    }
    skip_while(s, p, f)
}

/// `LWS ";" LWS name [LWS "=" LWS value]`: the rest after it, name and
/// value. When `=` is not followed by a valid value, the value is absent
/// and the rest starts after the name (the caller then fails on the `=`).
/// Written by hand for speed; `tests::generic_param_nom` is the grammar it
/// must match.
#[inline]
#[allow(clippy::type_complexity)]
pub(crate) fn generic_param(i: &[u8]) -> Option<(&[u8], (&[u8], Option<&[u8]>))> {
    let mut p = skip_lws(i, 0);
    if i.get(p) != Some(&b';') {
        return None;
    }
    p = skip_lws(i, p + 1);
    let ns = p;
    p = skip_run(i, p, is_token);
    if p == ns {
        return None;
    }
    let name = &i[ns..p];
    let q = skip_lws(i, p);
    if i.get(q) == Some(&b'=') {
        let vs = skip_lws(i, q + 1);
        if i.get(vs) == Some(&b'"') {
            if let Some(n) = quoted_end(&i[vs..]) {
                return Some((&i[vs + n..], (name, Some(&i[vs..vs + n]))));
            }
        } else {
            let ve = skip_run(i, vs, is_param_value_char);
            if ve > vs {
                return Some((&i[ve..], (name, Some(&i[vs..ve]))));
            }
        }
    }
    Some((&i[p..], (name, None)))
}

/// Parses `*(SEMI generic-param)` covering all of `s` (trailing LWS allowed).
/// Values are kept as on the wire (quoted values keep their quotes) so that
/// re-serialization is faithful. (The typed parsers use
/// [`parse_params_with`] directly and build their lists themselves.)
#[cfg(test)]
pub(crate) fn parse_params(
    s: &[u8],
    header: &'static str,
) -> Result<Vec<(String, Option<String>)>, ParseError> {
    let mut out = Vec::new();
    parse_params_with(s, header, |name, value| {
        out.push((lossy(name), value.map(lossy)))
    })?;
    Ok(out)
}

/// The grammar of [`parse_params`] without building anything: `f` sees
/// each `(name, value)` as slices of `s`, in order, as it is validated.
#[inline]
pub(crate) fn parse_params_with<'a>(
    mut s: &'a [u8],
    header: &'static str,
    mut f: impl FnMut(&'a [u8], Option<&'a [u8]>),
) -> Result<(), ParseError> {
    loop {
        s = trim_start_lws(s);
        if s.is_empty() {
            return Ok(());
        }
        match generic_param(s) {
            Some((rest, (name, value))) => {
                f(name, value);
                s = rest;
            }
            None => return Err(ParseError::header(header, "bad parameter")),
        }
    }
}

/// Catches the value of the first parameter called `name` (ASCII
/// case-insensitive; `name` in lowercase letters, see [`name_is`]) while a
/// parameter list is validated: the allocation-free counterpart of
/// `find_param` on a parsed list.
pub(crate) struct FirstParam<'a> {
    name: &'static str,
    found: bool,
    value: Option<&'a [u8]>,
}

impl<'a> FirstParam<'a> {
    pub(crate) fn new(name: &'static str) -> Self {
        FirstParam {
            name,
            found: false,
            value: None,
        }
    }

    #[inline]
    pub(crate) fn see(&mut self, name: &'a [u8], value: Option<&'a [u8]>) {
        if !self.found && name_is(name, self.name) {
            self.found = true;
            self.value = value;
        }
    }

    /// The value as `find_param(..).flatten()` would give it, owned.
    pub(crate) fn value_string(&self) -> Option<CompactString> {
        self.value.map(lossy_compact)
    }
}

/// `name` equals `lower` ignoring ASCII case, where `lower` is a
/// parameter name made of lowercase letters only (`tag`, `branch`). For a
/// lowercase letter `l`, `b | 0x20 == l` holds exactly when `b` is `l` or
/// its uppercase: ~4 instructions a byte instead of ~16 for
/// `eq_ignore_ascii_case`.
#[inline]
pub(crate) fn name_is(name: &[u8], lower: &str) -> bool {
    let lower = lower.as_bytes();
    debug_assert!(lower.iter().all(u8::is_ascii_lowercase), "{lower:?}");
    name.len() == lower.len() && name.iter().zip(lower).all(|(b, l)| b | 0x20 == *l)
}

pub(crate) fn trim_start_lws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| is_lws(**b)).count();
    &s[n..]
}

/// A `;name[=value]` parameter of a URI, Via or name-addr, both as
/// received (quoted values keep their quotes).
pub type Param = (CompactString, Option<CompactString>);

/// A parameter a scanner accepted, as a typed [`Param`]: the name is a
/// token (ASCII), the value may be quoted text in any encoding.
#[inline(always)]
pub(crate) fn typed_param(name: &[u8], value: Option<&[u8]>) -> Param {
    (ascii_compact(name), value.map(lossy_compact))
}

/// The parameters of a URI, Via or name-addr, in order. Nearly every one
/// has at most two (`;branch=..;rport`, `;tag=..`, `;lr`), which are kept
/// inline: no allocation for the list.
pub type Params = SmallVec<[Param; 2]>;

/// Pushes `make()` onto `v` and returns it, for a parser to fill in
/// place: the typed values with inline parameters (`NameAddr`, `Via`) are
/// a few hundred bytes, and `v.push(T::parse(..)?)` copies each of them
/// two or three times on the way (a memcpy call each). The first push
/// reserves `first_cap` elements.
#[inline(always)]
pub(crate) fn push_in_place<T>(
    v: &mut Vec<T>,
    first_cap: usize,
    make: impl FnOnce() -> T,
) -> &mut T {
    if v.capacity() == 0 {
        *v = Vec::with_capacity(first_cap);
    } else {
        v.reserve(1);
    }
    let len = v.len();
    // Writing into the spare slot lets the placeholder be stored straight
    // into the Vec's buffer; `v.push(make())` builds it on the stack and
    // copies it over.
    v.spare_capacity_mut()[0].write(make());
    // SAFETY: `reserve` above made slot `len` part of the capacity, and
    // it was just initialized.
    unsafe { v.set_len(len + 1) };
    &mut v[len]
}

/// `v.push(x)` where the first push allocates through
/// `Vec::with_capacity(4)`: the capacity a first push gets anyway for
/// these element sizes, without the generic growth path (~60 instructions
/// each time an address list gets its first element).
#[inline(always)]
pub(crate) fn push_first4<T>(v: &mut Vec<T>, x: T) {
    if v.capacity() == 0 {
        *v = Vec::with_capacity(4);
    }
    v.push(x);
}

/// Case-insensitive parameter lookup shared by all typed headers.
pub(crate) fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

/// Strict unsigned decimal (leading zeros fine, no sign, no overflow).
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let mut n: u32 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(n)
}

/// `delta-seconds`: RFC 3261 §20.19 says values above 2^32-1 are treated as 2^32-1.
pub(crate) fn parse_delta_seconds(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(parse_u32(s).unwrap_or(u32::MAX))
}

/// Percent-decoding; malformed escapes are kept literally.
pub(crate) fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && i + 2 < s.len()
            && let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nom::{bytes::complete::tag, combinator::opt, sequence::preceded};
    use proptest::prelude::*;

    fn param_value_nom(i: &[u8]) -> IResult<&[u8], &[u8]> {
        if i.first() == Some(&b'"') {
            quoted_string(i)
        } else {
            take_while1(is_param_value_char).parse(i)
        }
    }

    /// The nom grammar the hand-written `generic_param` replaces.
    #[allow(clippy::type_complexity)]
    fn generic_param_nom(i: &[u8]) -> IResult<&[u8], (&[u8], Option<&[u8]>)> {
        (
            preceded((lws0, tag(";"), lws0), token),
            opt(preceded((lws0, tag("="), lws0), param_value_nom)),
        )
            .parse(i)
    }

    proptest! {
        #[test]
        fn generic_param_matches_nom(v in r#"[ ;=a-z0-9"\\,<>\t\r\n.\[\]:]{0,24}"#) {
            let b = v.as_bytes();
            prop_assert_eq!(generic_param(b), generic_param_nom(b).ok());
        }
    }

    proptest! {
        #[test]
        fn find_byte_matches_memchr(v in prop::collection::vec(prop::sample::select(vec![b'\n', b':', b'a', 0x0b, 0x8a, 0xff, 0x00, 0x09]), 0..70), p in 0usize..80) {
            for n in [b'\n', b':', 0x00, 0xff] {
                let want = v.get(p..).and_then(|s| memchr::memchr(n, s)).map(|i| p + i);
                let got = match n {
                    b'\n' => find_byte::<b'\n'>(&v, p),
                    b':' => find_byte::<b':'>(&v, p),
                    0 => find_byte::<0>(&v, p),
                    _ => find_byte::<0xff>(&v, p),
                };
                prop_assert_eq!(got, want);
                let near = match n {
                    b'\n' => find_byte_near::<b'\n'>(&v, p),
                    b':' => find_byte_near::<b':'>(&v, p),
                    0 => find_byte_near::<0>(&v, p),
                    _ => find_byte_near::<0xff>(&v, p),
                };
                prop_assert_eq!(near, want);
            }
        }
    }

    proptest! {
        #[test]
        fn skip_run_matches_skip_while(v in prop::collection::vec(prop::sample::select(vec![b'a', b'-', b';', b' ', 0x80]), 0..20), p in 0usize..24) {
            prop_assert_eq!(skip_run(&v, p, is_token), skip_while(&v, p, is_token));
        }
    }

    proptest! {
        #[test]
        fn name_is_matches_eq_ignore_ascii_case(v in prop::collection::vec(any::<u8>(), 0..8), i in 0usize..5) {
            let names = ["tag", "branch", "rport", "", "lr"];
            let mut v = v;
            // Often a case variant of the name itself.
            if i % 2 == 0 {
                v = names[i].bytes().enumerate().map(|(k, b)| if v.get(k).is_some_and(|x| x & 1 == 1) { b.to_ascii_uppercase() } else { b }).collect();
            }
            prop_assert_eq!(name_is(&v, names[i]), v.eq_ignore_ascii_case(names[i].as_bytes()));
        }
    }

    proptest! {
        #[test]
        fn any_byte_matches_any(v in prop::collection::vec(prop::sample::select(vec![b'a', b' ', b'\t', 0x80, b'@']), 0..50)) {
            let f = |c: u8| (c == b' ') | (c == b'@');
            prop_assert_eq!(any_byte(&v, f), v.iter().any(|&c| f(c)));
        }
    }

    #[test]
    fn split_respects_quotes_and_angles() {
        let v: Vec<_> = split_top_level(br#""a,b" <sip:x;p=1,2>;q=1 , sip:y"#)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(v, vec![&br#""a,b" <sip:x;p=1,2>;q=1"#[..], b"sip:y"]);
        assert!(split_top_level(br#""abc, <x>"#).any(|r| r.is_err()));
    }

    #[test]
    fn params_with_lws() {
        let p = parse_params(b" ;  tag  =\r\n  x ; lr;q=0.5", "t").unwrap();
        assert_eq!(
            p,
            vec![
                ("tag".into(), Some("x".into())),
                ("lr".into(), None),
                ("q".into(), Some("0.5".into()))
            ]
        );
        assert!(parse_params(b";;", "t").is_err());
        assert!(parse_params(b";a=", "t").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"0068"), Some(68));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_delta_seconds(b"280297596632815"), Some(u32::MAX));
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode(b"%75se%72"), b"user");
        assert_eq!(percent_decode(b"a%2"), b"a%2");
        assert_eq!(percent_decode(b"%zz%00"), b"%zz\0");
    }

    #[test]
    fn lossy_strings() {
        assert_eq!(lossy(b"z9hG4bK-1"), "z9hG4bK-1");
        assert_eq!(lossy("Jos\u{e9}".as_bytes()), "Jos\u{e9}");
        assert_eq!(lossy(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(lossy_compact(b"z9hG4bK-1"), "z9hG4bK-1");
        assert_eq!(lossy_compact("Jos\u{e9}".as_bytes()), "Jos\u{e9}");
        assert_eq!(lossy_compact(b"a\xffb"), "a\u{fffd}b");
        // Past the inline capacity too.
        let long = "z9hG4bK-524287-1---7ebd6fcd2a1a9b51";
        assert_eq!(lossy_compact(long.as_bytes()), long);
        assert!(!lossy_compact(b"pc33.atlanta.example.com").is_heap_allocated());
    }

    #[test]
    fn push_in_place_appends() {
        let mut v: Vec<String> = Vec::new();
        push_in_place(&mut v, 3, String::new).push('a');
        assert_eq!(v.capacity(), 3);
        for c in ['b', 'c', 'd', 'e'] {
            push_in_place(&mut v, 3, || String::from("x")).push(c);
        }
        assert_eq!(v, ["a", "xb", "xc", "xd", "xe"]);
        v.pop();
        push_in_place(&mut v, 3, String::new);
        assert_eq!(v.len(), 5);
        assert_eq!(v[4], "");
    }

    #[test]
    fn quoted() {
        assert_eq!(unquote(br#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
        assert_eq!(quoted_end(br#""abc"#), None);
    }
}
