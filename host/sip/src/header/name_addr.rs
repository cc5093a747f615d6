//! name-addr / addr-spec values: From, To, Contact, Route, Record-Route
//! (RFC 3261 §20, §25.1).
//!
//! Per §20, parameters after an unbracketed addr-spec belong to the header,
//! not the URI: `To: sip:bob@x;tag=1` has header param `tag`.

use std::fmt;

use compact_str::CompactString;

use crate::parse::{
    Params, ParseError, find_byte, find_param, generic_param, is_lws, is_token, lossy_compact,
    name_is, parse_params_with, push_in_place, quoted_end, split_top_level, trim_lws,
    trim_start_lws, typed_param, unquote,
};
use crate::uri::{Uri, parse_uri_with};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Unquoted, `\"` escapes resolved.
    pub display_name: Option<CompactString>,
    pub uri: Uri,
    /// Header parameters (`tag`, `q`, `expires`, `lr` on Route is a URI param).
    pub params: Params,
}

const H: &str = "name-addr";

impl NameAddr {
    /// Parses one value (no top-level commas expected).
    pub fn parse(value: &[u8]) -> Result<NameAddr, ParseError> {
        let mut na = NameAddr::empty();
        na.parse_in_place(value)?;
        Ok(na)
    }

    /// A placeholder for [`NameAddr::parse_in_place`] (no allocation).
    #[inline(always)]
    fn empty() -> NameAddr {
        NameAddr {
            display_name: None,
            uri: Uri::empty(),
            params: Params::new(),
        }
    }

    /// [`NameAddr::parse`] into `self`, which must be [`NameAddr::empty`]:
    /// a `NameAddr` is a few hundred bytes, and building it where it is
    /// kept saves the memcpy of each move (three or four per element of a
    /// list). On error `self` is left half-filled.
    fn parse_in_place(&mut self, value: &[u8]) -> Result<(), ParseError> {
        let (uri, params) = (&mut self.uri, &mut self.params);
        let (display, ()) = parse_with(
            value,
            |u| uri.parse_in_place(u),
            // Names are tokens: ASCII.
            |n, v| params.push(typed_param(n, v)),
        )?;
        self.display_name = display.to_name();
        Ok(())
    }

    /// One bracketed name-addr from the front of `s` into `self`, which
    /// must be [`NameAddr::empty`] (see [`parse_prefix_with`]): what follows
    /// its top-level ',', if anything. `None` for anything the one pass does
    /// not accept, with `self` half-filled.
    fn parse_prefix_in_place<'a>(&mut self, s: &'a [u8]) -> Option<Option<&'a [u8]>> {
        let (uri, params) = (&mut self.uri, &mut self.params);
        let (display, next) = parse_prefix_with(
            s,
            |u| uri.parse_in_place(u),
            |n, v| params.push(typed_param(n, v)),
        )?;
        self.display_name = display.to_name();
        Some(next)
    }

    /// Validates one value exactly like [`NameAddr::parse`] and returns the
    /// first header parameter called `name` (`Some(None)` when it has no
    /// value), without building the URI or any string. `name` is in
    /// lowercase letters (see [`crate::parse::name_is`]).
    pub(crate) fn check_and_find_param<'a>(
        value: &'a [u8],
        name: &'static str,
    ) -> Result<Option<Option<&'a [u8]>>, ParseError> {
        let mut found: Option<Option<&'a [u8]>> = None;
        parse_with(
            value,
            |u| parse_uri_with(u, |_, _| {}, |_, _| {}).map(|_| ()),
            |n, v| {
                if found.is_none() && name_is(n, name) {
                    found = Some(v);
                }
            },
        )?;
        Ok(found)
    }

    /// Parses a comma-separated list; commas inside quotes and `<>` do not split.
    pub fn parse_list(value: &[u8]) -> Result<Vec<NameAddr>, ParseError> {
        let mut out = Vec::new();
        NameAddr::parse_list_into(value, &mut out)?;
        Ok(out)
    }

    /// [`NameAddr::parse_list`] appending to `out` (no Vec per header value).
    ///
    /// One pass when every element is `"display" <uri>` or `<uri>`: each
    /// is parsed from the front of what is left and ends at a top-level
    /// ',' ([`parse_prefix_with`]), instead of a split that searches the
    /// value for commas, quotes and angle brackets first. Anything that
    /// pass does not accept goes through the split-based parse, which
    /// gives the exact error.
    pub(crate) fn parse_list_into(value: &[u8], out: &mut Vec<NameAddr>) -> Result<(), ParseError> {
        let len = out.len();
        if NameAddr::parse_list_one_pass(value, out).is_some() {
            return Ok(());
        }
        out.truncate(len);
        NameAddr::parse_list_split(value, out)
    }

    /// The one pass of [`NameAddr::parse_list_into`]; `None` (with `out`
    /// partly filled) for anything it does not accept.
    fn parse_list_one_pass(value: &[u8], out: &mut Vec<NameAddr>) -> Option<()> {
        let mut s = value;
        loop {
            // Built in its slot of `out` (see `parse_list_split`).
            let na = push_in_place(out, 3, NameAddr::empty);
            match na.parse_prefix_in_place(s)? {
                Some(rest) => s = rest,
                None => return Some(()),
            }
        }
    }

    /// Split on top-level commas first, then parse each element: the
    /// reference for [`NameAddr::parse_list_into`] and its fallback.
    pub(crate) fn parse_list_split(
        value: &[u8],
        out: &mut Vec<NameAddr>,
    ) -> Result<(), ParseError> {
        for elem in split_top_level(value) {
            let elem = elem?;
            // Built in its slot of `out`. Three fit mimalloc's small-object
            // size classes (up to 1 KiB); lists are rarely longer.
            let na = push_in_place(out, 3, NameAddr::empty);
            if let Err(e) = na.parse_in_place(elem) {
                out.pop();
                return Err(e);
            }
        }
        Ok(())
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Contact `q` preference (0..=1); `None` if absent or malformed.
    pub fn q(&self) -> Option<f32> {
        self.param("q")
            .flatten()
            .and_then(|v| v.parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
    }

    /// Contact `expires` parameter in seconds (saturating at 2^32-1).
    pub fn expires(&self) -> Option<u32> {
        self.param("expires")
            .flatten()
            .and_then(|v| crate::parse::parse_delta_seconds(v.as_bytes()))
    }
}

/// Display name as written: quoted (quotes included) or LWS-trimmed tokens.
enum DisplayRef<'a> {
    None,
    Quoted(&'a [u8]),
    Token(&'a [u8]),
}

impl DisplayRef<'_> {
    /// `NameAddr::display_name`: unquoted; an empty token list is none.
    fn to_name(&self) -> Option<CompactString> {
        match *self {
            DisplayRef::None => None,
            DisplayRef::Quoted(q) => Some(unquote(q)),
            DisplayRef::Token(t) => (!t.is_empty()).then(|| lossy_compact(t)),
        }
    }
}

/// A name-addr in one of its bracketed forms, `"display" <uri>` or
/// `<uri>`, at the front of `s` (LWS before it allowed), then its header
/// parameters, LWS and a top-level ',' or the end: the display name and
/// what follows the comma (`None` at the end). `uri` and `on_param` are
/// called as in [`parse_with`]. `None` for anything else (token display
/// names and addr-specs included), and for every input on which
/// [`parse_with`] over the split elements would fail, so that callers can
/// fall back to the split for the exact error: an element of these forms
/// that parses has '"' only in its display name and quoted parameter
/// values and '<' only before its URI, so it ends exactly where the split
/// would end it.
fn parse_prefix_with<'a>(
    s: &'a [u8],
    uri: impl FnOnce(&'a [u8]) -> Result<(), ParseError>,
    mut on_param: impl FnMut(&'a [u8], Option<&'a [u8]>),
) -> Option<(DisplayRef<'a>, Option<&'a [u8]>)> {
    let s = trim_start_lws(s);
    let (display, s) = match s.first()? {
        b'"' => {
            let end = quoted_end(s)?;
            (DisplayRef::Quoted(&s[..end]), trim_start_lws(&s[end..]))
        }
        // What `parse_with` reports for `<uri>`: an empty token list.
        b'<' => (DisplayRef::Token(&s[..0]), s),
        _ => return None,
    };
    if s.first() != Some(&b'<') {
        return None;
    }
    let gt = find_byte::<b'>'>(s, 1)?;
    uri(trim_lws(&s[1..gt])).ok()?;
    let mut rest = &s[gt + 1..];
    loop {
        rest = trim_start_lws(rest);
        match rest.first() {
            None => return Some((display, None)),
            Some(b',') => return Some((display, Some(&rest[1..]))),
            Some(_) => {
                let (r, (name, value)) = generic_param(rest)?;
                on_param(name, value);
                rest = r;
            }
        }
    }
}

/// The name-addr / addr-spec grammar; `uri` parses (or only validates)
/// the URI text, `on_param` sees each header parameter as it is validated.
fn parse_with<'a, U>(
    value: &'a [u8],
    uri: impl FnOnce(&'a [u8]) -> Result<U, ParseError>,
    on_param: impl FnMut(&'a [u8], Option<&'a [u8]>),
) -> Result<(DisplayRef<'a>, U), ParseError> {
    let s = trim_lws(value);
    if s.is_empty() {
        return Err(ParseError::header(H, "empty value"));
    }
    if s[0] == b'"' {
        let end = quoted_end(s).ok_or(ParseError::header(H, "unterminated quoted display name"))?;
        let rest = trim_lws(&s[end..]);
        if rest.first() != Some(&b'<') {
            return Err(ParseError::header(H, "expected '<' after display name"));
        }
        let u = bracketed(rest, uri, on_param)?;
        return Ok((DisplayRef::Quoted(&s[..end]), u));
    }
    // Contact/Route values mostly start with '<': no search for them.
    // The span is short: `find_byte` costs less than memchr's set-up.
    let lt = if s[0] == b'<' {
        Some(0)
    } else {
        find_byte::<b'<'>(s, 0)
    };
    if let Some(lt) = lt {
        // Token display name: tokens separated by LWS (non-ASCII tolerated).
        let disp = trim_lws(&s[..lt]);
        if !disp
            .iter()
            .all(|b| is_token(*b) || is_lws(*b) || *b >= 0x80)
        {
            return Err(ParseError::header(H, "bad display name"));
        }
        let u = bracketed(&s[lt..], uri, on_param)?;
        return Ok((DisplayRef::Token(disp), u));
    }
    // addr-spec: URI runs to the first ';' or LWS, the rest are header params.
    let end = s
        .iter()
        .position(|b| *b == b';' || is_lws(*b))
        .unwrap_or(s.len());
    let u = uri(&s[..end])?;
    parse_params_with(&s[end..], H, on_param)?;
    Ok((DisplayRef::None, u))
}

/// `"<" URI ">" params` — `s` starts with '<'.
fn bracketed<'a, U>(
    s: &'a [u8],
    uri: impl FnOnce(&'a [u8]) -> Result<U, ParseError>,
    on_param: impl FnMut(&'a [u8], Option<&'a [u8]>),
) -> Result<U, ParseError> {
    let gt = find_byte::<b'>'>(s, 1).ok_or(ParseError::header(H, "missing '>'"))?;
    let u = uri(trim_lws(&s[1..gt]))?;
    parse_params_with(&s[gt + 1..], H, on_param)?;
    Ok(u)
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display_name {
            f.write_str("\"")?;
            for c in d.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        crate::parse::write_params(f, &self.params)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let n = NameAddr::parse(br#""Bob \"B\"" <sip:bob@biloxi.com;transport=tcp>;tag=a6c85cf"#)
            .unwrap();
        assert_eq!(n.display_name.as_deref(), Some(r#"Bob "B""#));
        assert_eq!(n.uri.transport(), Some("tcp"));
        assert_eq!(n.tag(), Some("a6c85cf"));
        assert_eq!(
            n.to_string(),
            r#""Bob \"B\"" <sip:bob@biloxi.com;transport=tcp>;tag=a6c85cf"#
        );

        let n = NameAddr::parse(b"sip:bob@biloxi.com;tag=1;lr").unwrap();
        assert!(n.uri.params.is_empty());
        assert_eq!(n.tag(), Some("1"));
        assert_eq!(n.param("lr"), Some(None));
        assert_eq!(n.to_string(), "<sip:bob@biloxi.com>;tag=1;lr");

        let n = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        let n = NameAddr::parse(b"<sip:a@b>").unwrap();
        assert_eq!(n.display_name, None);
    }

    use proptest::prelude::*;

    proptest! {
        /// The one-pass list parse gives what splitting first gives: the
        /// same name-addrs or the same error.
        #[test]
        fn one_pass_list_matches_split(
            elems in prop::collection::vec(
                (
                    r#"[ \t]{0,2}("[a-z ,<>]{0,4}" ?|[a-z]{1,3} )?(<sip:[a-z]{1,3}@[a-z.]{1,4}(;lr)?>|sip:[a-z]{1,3})(;[ ]?[a-z]{1,3}(=([a-z0-9]{1,3}|"[a-z,<>]{0,3}"))?){0,2}[ ]?"#,
                    prop::option::weighted(0.2, r#"[ ,<>";=\\]{1,2}"#),
                    prop::option::weighted(0.2, 0usize..30),
                ),
                1..4,
            ),
            sep in "[ ]?,[ \t]?",
        ) {
            // Valid elements, sometimes with junk put in somewhere.
            let v = elems
                .iter()
                .map(|(e, junk, at)| match (junk, at) {
                    (Some(j), Some(at)) => {
                        let at = (*at).min(e.len());
                        let at = (0..=at).rev().find(|i| e.is_char_boundary(*i)).unwrap_or(0);
                        format!("{}{j}{}", &e[..at], &e[at..])
                    }
                    (Some(j), None) => format!("{e}{j}"),
                    _ => e.clone(),
                })
                .collect::<Vec<_>>()
                .join(&sep);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = NameAddr::parse_list_into(v.as_bytes(), &mut a).map(|_| a);
            let rb = NameAddr::parse_list_split(v.as_bytes(), &mut b).map(|_| b);
            prop_assert_eq!(ra, rb);
        }
    }

    #[test]
    fn one_pass_forms() {
        // Accepted in one pass, and what the split gives.
        for v in [
            &br#""A, B" <sip:a@x>;q=0.7;expires=3600 , <sip:b@y;lr>;x="a,b""#[..],
            b"<sip:proxy1.example.com;lr>, <sip:proxy2.example.com;lr>",
            b"  <sip:a@b>  ",
        ] {
            let mut a = Vec::new();
            assert!(NameAddr::parse_list_one_pass(v, &mut a).is_some());
            assert_eq!(Ok(a), NameAddr::parse_list(v));
            let mut b = Vec::new();
            NameAddr::parse_list_split(v, &mut b).unwrap();
            assert_eq!(NameAddr::parse_list(v), Ok(b));
        }
        // Left to the split.
        for v in [
            &b"sip:a@b"[..],
            b"Bob <sip:a@b>",
            b"<sip:a@b>,",
            b"<sip:a@b",
            b"",
        ] {
            assert!(NameAddr::parse_list_one_pass(v, &mut Vec::new()).is_none());
        }
    }

    #[test]
    fn lists_and_contact_params() {
        let l = NameAddr::parse_list(
            br#""A, B" <sip:a@x>;q=0.7;expires=3600, <sip:b@y?h=1,2>;q=0.1 ,sip:c@z"#,
        )
        .unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].display_name.as_deref(), Some("A, B"));
        assert_eq!(l[0].q(), Some(0.7));
        assert_eq!(l[0].expires(), Some(3600));
        assert_eq!(l[1].q(), Some(0.1));
        assert_eq!(l[2].q(), None);
    }

    #[test]
    fn errors() {
        for bad in [
            &br#""unterminated <sip:a@b>"#[..],
            b"<sip:a@b",
            b"Bell, Alexander <sip:a@b>",
            b"",
            b"<sip:a@b>;;",
            b"a\"b <sip:a@b>",
        ] {
            assert!(
                NameAddr::parse_list(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
