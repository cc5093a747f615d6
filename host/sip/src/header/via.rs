//! Via header (RFC 3261 §20.42, RFC 3581 rport).
//!
//! `sent-protocol LWS sent-by *(SEMI via-params)`, where LWS may appear
//! around every `/`, `:`, `;` and `=` — RFC 4475 "wsinv" folds lines in
//! the middle of the protocol. One header value may hold a comma list.

use std::fmt;

use compact_str::CompactString;

use crate::parse::{
    Params, ParseError, ascii_compact, find_param, generic_param, is_token, parse_params_with,
    push_in_place, skip_lws, skip_while, split_top_level, trim_lws, trim_start_lws, typed_param,
};
use crate::uri::{Host, HostRef, host_text, parse_port, port_text};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `SIP/2.0` (name uppercased, LWS removed).
    pub protocol: CompactString,
    /// Uppercased transport, e.g. `UDP`.
    pub transport: CompactString,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

const H: &str = "Via";

impl Via {
    /// Parses every comma-separated Via in one header value.
    pub fn parse(value: &[u8]) -> Result<Vec<Via>, ParseError> {
        let mut out = Vec::with_capacity(2);
        Via::parse_into(value, &mut out)?;
        Ok(out)
    }

    /// [`Via::parse`] appending to `out` (no Vec per header value).
    ///
    /// One pass: each via-parm is parsed from the front of what is left
    /// and ends at a top-level ',' ([`parse_prefix_with`]), instead of a
    /// split that searches the value for commas, quotes and '<' first. A
    /// value that pass does not accept goes through the split-based
    /// parse, which gives the exact error.
    pub(crate) fn parse_into(value: &[u8], out: &mut Vec<Via>) -> Result<(), ParseError> {
        let len = out.len();
        if Via::parse_list_one_pass(value, out).is_some() {
            return Ok(());
        }
        out.truncate(len);
        Via::parse_into_split(value, out)
    }

    /// The one-pass list parse of [`Via::parse_into`]; `None` (with `out`
    /// partly filled) for anything it does not accept.
    fn parse_list_one_pass(value: &[u8], out: &mut Vec<Via>) -> Option<()> {
        let mut s = value;
        loop {
            // Built in its slot of `out` (see `push_in_place`).
            let via = push_in_place(out, 4, Via::empty);
            match via.parse_prefix_in_place(s)? {
                Some(rest) => s = rest,
                None => return Some(()),
            }
        }
    }

    /// Split on top-level commas first, then parse each element: the
    /// reference for [`Via::parse_into`] and its fallback.
    pub(crate) fn parse_into_split(value: &[u8], out: &mut Vec<Via>) -> Result<(), ParseError> {
        for elem in split_top_level(value) {
            let elem = elem?;
            // Built in its slot of `out` (see `push_in_place`).
            let via = push_in_place(out, 4, Via::empty);
            if let Err(e) = via.parse_in_place(elem) {
                out.pop();
                return Err(e);
            }
        }
        Ok(())
    }

    /// A placeholder for [`Via::parse_in_place`] (no allocation).
    #[inline(always)]
    pub(crate) fn empty() -> Via {
        Via {
            protocol: CompactString::const_new(""),
            transport: CompactString::const_new(""),
            host: Host::Domain(CompactString::const_new("")),
            port: None,
            params: Params::new(),
        }
    }

    /// Parses a single via-parm (no commas at top level).
    pub(crate) fn parse_one(elem: &[u8]) -> Result<Via, ParseError> {
        let mut via = Via::empty();
        via.parse_in_place(elem)?;
        Ok(via)
    }

    /// [`Via::parse_one`] into `self`, which must be [`Via::empty`]. On
    /// error `self` is left half-filled.
    fn parse_in_place(&mut self, elem: &[u8]) -> Result<(), ParseError> {
        let params = &mut self.params;
        let p = parse_one_with(elem, |n, v| params.push(typed_param(n, v)))?;
        self.fill(p);
        Ok(())
    }

    /// One via-parm from the front of `s` into `self`, which must be
    /// [`Via::empty`] (see [`parse_prefix_with`]): what follows its
    /// top-level ',', if anything. `None` for anything the one pass does
    /// not accept, with `self` half-filled.
    pub(crate) fn parse_prefix_in_place<'a>(&mut self, s: &'a [u8]) -> Option<Option<&'a [u8]>> {
        let params = &mut self.params;
        let (p, next) = parse_prefix_with(s, |n, v| params.push(typed_param(n, v)))?;
        self.fill(p);
        Some(next)
    }

    /// Sets everything but the parameters from `p`.
    #[inline(always)]
    fn fill(&mut self, p: ViaParts<'_>) {
        let protocol = if p.name.eq_ignore_ascii_case(b"SIP") && p.version == b"2.0" {
            CompactString::const_new("SIP/2.0")
        } else {
            // Tokens: ASCII.
            let mut protocol = ascii_compact(p.name);
            protocol.make_ascii_uppercase();
            protocol.push('/');
            protocol.push_str(&crate::parse::ascii_str(p.version));
            protocol
        };
        let mut transport = ascii_compact(p.transport);
        transport.make_ascii_uppercase();
        self.protocol = protocol;
        self.transport = transport;
        self.host = p.host.to_host();
        self.port = p.port;
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    pub fn received(&self) -> Option<&str> {
        self.param("received").flatten()
    }

    /// `Some(None)`: `;rport` present without a value (client asks for it).
    /// An unparsable value is reported as `Some(None)` as well.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// `host[:port]` as written in the Via (IPv6 bracketed).
    pub fn sent_by(&self) -> CompactString {
        self.host.as_host_ref().sent_by(self.port)
    }
}

/// A validated via-parm still borrowing its text; parameters went to the
/// callback of [`parse_one_with`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ViaParts<'a> {
    /// Protocol name, version and transport tokens as written.
    pub(crate) name: &'a [u8],
    pub(crate) version: &'a [u8],
    pub(crate) transport: &'a [u8],
    pub(crate) host: HostRef<'a>,
    pub(crate) port: Option<u16>,
    /// The received `host[:port]` when it is byte for byte what
    /// `host.sent_by(port)` writes (a name or dotted quad, no LWS around
    /// ':', no leading zero in the port): a slice of the input can stand
    /// for it.
    pub(crate) sent_by_text: Option<&'a [u8]>,
}

/// `token SLASH token SLASH token LWS host [COLON port]` (LWS allowed
/// around `/` and `:`): `(rest, (name, version, transport, host, port))`.
#[allow(clippy::type_complexity)]
fn sent_protocol_and_by(i: &[u8]) -> Option<(&[u8], (&[u8], &[u8], &[u8], &[u8], Option<&[u8]>))> {
    let tok = |p: usize| {
        let e = skip_while(i, p, is_token);
        (e > p).then_some(e)
    };
    let slash = |p: usize| {
        let p = skip_lws(i, p);
        (i.get(p) == Some(&b'/')).then(|| skip_lws(i, p + 1))
    };
    let ne = tok(0)?;
    let vs = slash(ne)?;
    let ve = tok(vs)?;
    let ts = slash(ve)?;
    let te = tok(ts)?;
    let hs = skip_lws(i, te);
    if hs == te {
        return None;
    }
    let (rest, host) = host_text(&i[hs..])?;
    let (rest, port) = port_text(rest, true);
    Some((rest, (&i[..ne], &i[vs..ve], &i[ts..te], host, port)))
}

/// The grammar of `Via::parse_one` without allocating: `on_param` sees
/// each via-param as it is validated.
pub(crate) fn parse_one_with<'a>(
    elem: &'a [u8],
    on_param: impl FnMut(&'a [u8], Option<&'a [u8]>),
) -> Result<ViaParts<'a>, ParseError> {
    let elem = trim_lws(elem);
    if elem.is_empty() {
        return Err(ParseError::header(H, "empty Via element"));
    }
    let (parts, rest) = sent_protocol_and_by_parts(elem)?;
    parse_params_with(rest, H, on_param)?;
    Ok(parts)
}

/// A via-parm at the front of `s` (LWS before it allowed) followed by LWS
/// and a top-level ',' or the end: its parts and what follows the comma
/// (`None` at the end). `on_param` sees its parameters. `None` for
/// anything else, including every input on which `parse_one_with` over
/// the split elements would fail, so that callers can fall back to the
/// split for the exact error: a via-parm that parses has no '<' and no
/// '"' outside its quoted parameter values, so it ends exactly where the
/// split would end it.
pub(crate) fn parse_prefix_with<'a>(
    s: &'a [u8],
    mut on_param: impl FnMut(&'a [u8], Option<&'a [u8]>),
) -> Option<(ViaParts<'a>, Option<&'a [u8]>)> {
    let s = trim_start_lws(s);
    if s.is_empty() {
        return None;
    }
    let (parts, mut rest) = sent_protocol_and_by_parts(s).ok()?;
    loop {
        rest = trim_start_lws(rest);
        match rest.first() {
            None => return Some((parts, None)),
            Some(b',') => return Some((parts, Some(&rest[1..]))),
            Some(_) => {
                let (r, (name, value)) = generic_param(rest)?;
                on_param(name, value);
                rest = r;
            }
        }
    }
}

/// `sent-protocol LWS sent-by` at the start of `elem` (which neither is
/// empty nor starts with LWS), validated: the parts and the rest.
#[inline(always)]
fn sent_protocol_and_by_parts(elem: &[u8]) -> Result<(ViaParts<'_>, &[u8]), ParseError> {
    let (rest, (name, version, transport, host_text, port_text)) =
        sent_protocol_and_by(elem).ok_or(ParseError::header(H, "bad sent-protocol or sent-by"))?;
    let host = HostRef::from_host_text(host_text).map_err(|_| ParseError::header(H, "bad host"))?;
    // `host_text` is a slice of `elem`: from its start to `rest` is the
    // sent-by as received.
    let sent_by =
        &elem[host_text.as_ptr() as usize - elem.as_ptr() as usize..elem.len() - rest.len()];
    let canonical = matches!(host, HostRef::Domain(_) | HostRef::Ipv4(_))
        && sent_by.len() == host_text.len() + port_text.map_or(0, |p| 1 + p.len())
        && port_text.is_none_or(|p| p.len() == 1 || p[0] != b'0');
    let port = port_text
        .map(parse_port)
        .transpose()
        .map_err(|_| ParseError::header(H, "bad port"))?;
    let parts = ViaParts {
        name,
        version,
        transport,
        host,
        port,
        sent_by_text: canonical.then_some(sent_by),
    };
    Ok((parts, rest))
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Piece by piece: `write!` with arguments costs far more per call.
        f.write_str(&self.protocol)?;
        f.write_str("/")?;
        f.write_str(&self.transport)?;
        f.write_str(" ")?;
        fmt::Display::fmt(&self.host, f)?;
        if let Some(p) = self.port {
            f.write_str(":")?;
            f.write_str(itoa::Buffer::new().format(p))?;
        }
        crate::parse::write_params(f, &self.params)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{lws0, lws1, token};
    use nom::{
        IResult, Parser,
        branch::alt,
        bytes::complete::{tag, take_while1},
        character::complete::digit1,
        combinator::{opt, recognize},
        sequence::preceded,
    };
    use proptest::prelude::*;

    /// The nom grammar `sent_protocol_and_by` replaces.
    #[allow(clippy::type_complexity)]
    fn sent_nom(i: &[u8]) -> IResult<&[u8], (&[u8], &[u8], &[u8], &[u8], Option<&[u8]>)> {
        let slash = || (lws0, tag("/"), lws0);
        let host = alt((
            recognize((
                tag("["),
                take_while1(|b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
                tag("]"),
            )),
            take_while1(crate::uri::is_host_char),
        ));
        let port = opt(preceded((lws0, tag(":"), lws0), digit1));
        (token, slash(), token, slash(), token, lws1, host, port)
            .parse(i)
            .map(|(r, (n, _, v, _, t, _, h, p))| (r, (n, v, t, h, p)))
    }

    proptest! {
        #[test]
        fn sent_by_matches_nom(v in r"[SIPsip]{0,3}[ /\t\r\n]{0,3}[0-9.]{0,3}[ /\t]{0,3}[UDPTCudp]{0,3}[ \t\r\n]{0,2}[\[\]a-f0-9:.]{0,12}[ :\t]{0,3}[0-9]{0,3}[;x ]{0,2}") {
            let b = v.as_bytes();
            prop_assert_eq!(sent_protocol_and_by(b), sent_nom(b).ok());
        }
    }

    proptest! {
        /// The received sent-by stands for `sent_by` only when it is the same text.
        #[test]
        fn sent_by_text_is_sent_by(v in r"SIP/2.0/UDP[ \t]{1,2}(\[[0-9a-f:]{2,8}\]|[0-9.]{1,15}|[a-zA-Z0-9.-]{1,12})([ \t]{0,1}:[ \t]{0,1}[0-9]{1,6})?[ ;a-z=]{0,4}") {
            if let Ok(p) = parse_one_with(v.as_bytes(), |_, _| {}) {
                let want = p.host.sent_by(p.port);
                if let Some(t) = p.sent_by_text {
                    prop_assert_eq!(t, want.as_bytes());
                } else {
                    // Only LWS, a leading zero or an IPv6 reference make it differ.
                    let plain = !v.contains(['[', '\t']) && !v[12..].trim_start().contains(" :") && !v.contains(": ") && !v.contains(":0");
                    prop_assert!(!plain, "{v}: {want}");
                }
            }
        }
    }

    proptest! {
        /// The one-pass list parse gives what splitting first gives:
        /// the same Vias or the same error.
        #[test]
        fn one_pass_list_matches_split(v in r#"([ \t]{0,2}(SIP/2.0/UDP|sip / 2.0 /tcp|SIP/2.0)[ \t\r\n]{0,2}[a-z0-9.:\[\]]{0,8}([ \t]{0,1};[ \t]{0,1}[a-z]{0,3}(=("[a-z,<;]{0,3}"?|[a-z0-9,<>]{1,3}))?){0,3}[ \t]{0,1}[,<>";]{0,2}){1,3}"#) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = Via::parse_into(v.as_bytes(), &mut a).map(|_| a);
            let rb = Via::parse_into_split(v.as_bytes(), &mut b).map(|_| b);
            prop_assert_eq!(ra, rb);
        }

        /// The top Via of the one pass is the first split element's.
        #[test]
        fn prefix_matches_first_element(v in r#"[ \t]{0,2}SIP/2.0/UDP[ \t]{1,2}[a-z0-9.:]{1,8}([ \t]{0,1};[ \t]{0,1}[a-z]{0,3}(=("[a-z,<]{0,3}"?|[a-z0-9,<>]{1,3}))?){0,3}[ \t]{0,1}[,<>"]{0,2}.{0,4}"#) {
            let mut seen = Vec::new();
            if let Some((p, _)) = parse_prefix_with(v.as_bytes(), |n, v| seen.push((n, v))) {
                let (first, _) = crate::parse::first_element(v.as_bytes()).expect("split accepts it");
                let mut want = Vec::new();
                let q = parse_one_with(first, |n, v| want.push((n, v))).expect("element parses");
                prop_assert_eq!((p.name, p.version, p.transport, p.host, p.port, p.sent_by_text), (q.name, q.version, q.transport, q.host, q.port, q.sent_by_text));
                prop_assert_eq!(seen, want);
            }
        }
    }

    #[test]
    fn sent_by_text() {
        for (elem, text) in [
            (
                &b"SIP/2.0/UDP h.example:5060;branch=x"[..],
                Some(&b"h.example:5060"[..]),
            ),
            (b"SIP/2.0/UDP 192.0.2.1", Some(b"192.0.2.1")),
            (b"SIP/2.0/UDP h:0", Some(b"h:0")),
            (b"SIP/2.0/UDP h:05060", None),
            (b"SIP/2.0/UDP h : 5060", None),
            (b"SIP/2.0/UDP [::1]:5060", None),
        ] {
            let p = parse_one_with(elem, |_, _| {}).unwrap();
            assert_eq!(p.sent_by_text, text, "{}", String::from_utf8_lossy(elem));
        }
    }

    #[test]
    fn simple() {
        let v = Via::parse(
            b"SIP/2.0/udp 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport;received=10.0.0.1",
        )
        .unwrap();
        assert_eq!(v.len(), 1);
        let v = &v[0];
        assert_eq!(v.protocol, "SIP/2.0");
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::parse("192.0.2.1").unwrap());
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("10.0.0.1"));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport;received=10.0.0.1"
        );
    }

    #[test]
    fn protocol_and_param_names_as_received() {
        let v = &Via::parse(b"sip/2.0/udp h;Branch=z9;x-a;rport").unwrap()[0];
        assert_eq!(v.protocol, "SIP/2.0");
        assert_eq!(v.branch(), Some("z9"));
        let names: Vec<&str> = v.params.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, ["Branch", "x-a", "rport"]);
        assert_eq!(v.to_string(), "SIP/2.0/UDP h;Branch=z9;x-a;rport");
        let v = &Via::parse(b"sip/3.0/udp h").unwrap()[0];
        assert_eq!(v.protocol, "SIP/3.0");
    }

    #[test]
    fn folded_list() {
        let v = Via::parse(
            b"SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].transport, "TCP");
        assert_eq!(v[0].host, Host::Domain("spindle.example.com".into()));
        assert_eq!(v[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(v[1].branch(), Some("z9hG4bK30239"));
    }

    #[test]
    fn ipv6_and_errors() {
        let v = &Via::parse(b"SIP/2.0/TLS [2001:db8::10]:5070;maddr=[2001:db8::1];rport=5071")
            .unwrap()[0];
        assert_eq!(v.host.to_string(), "[2001:db8::10]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(Some(5071)));
        assert_eq!(v.param("maddr"), Some(Some("[2001:db8::1]")));
        assert_eq!(v.sent_by(), "[2001:db8::10]:5070");
        for bad in [
            &b"SIP/2.0/UDP 192.0.2.15;;,;,,"[..],
            b"SIP/2.0 host",
            b"SIP/2.0/UDP",
            b"",
            b"SIP/2.0/UDP h:99999",
            b"SIP/2.0/UDP h;branch=a b",
        ] {
            assert!(Via::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
