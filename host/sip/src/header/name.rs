//! Header names (with RFC 3261 §7.3.3 compact forms) and the raw [`Header`].

use bytes::Bytes;

/// Well-known header names; everything else is `Other` (compare `raw_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    Contact,
    Route,
    RecordRoute,
    ContentLength,
    ContentType,
    Expires,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Supported,
    Subject,
    Other,
}

impl HeaderName {
    /// Case-insensitive lookup, compact forms included. Dispatches on length
    /// first so that the common case costs one or two comparisons: this
    /// runs for every header of every message.
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        use HeaderName::*;
        let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        match name.len() {
            1 => match name[0].to_ascii_lowercase() {
                b'v' => Via,
                b'f' => From,
                b't' => To,
                b'i' => CallId,
                b'm' => Contact,
                b'l' => ContentLength,
                b'c' => ContentType,
                b'k' => Supported,
                b's' => Subject,
                _ => Other,
            },
            2 if eq("to") => To,
            3 if eq("via") => Via,
            4 if eq("from") => From,
            4 if eq("cseq") => CSeq,
            5 if eq("route") => Route,
            7 if eq("call-id") => CallId,
            7 if eq("contact") => Contact,
            7 if eq("expires") => Expires,
            7 if eq("subject") => Subject,
            9 if eq("supported") => Supported,
            12 if eq("max-forwards") => MaxForwards,
            12 if eq("record-route") => RecordRoute,
            12 if eq("content-type") => ContentType,
            13 if eq("authorization") => Authorization,
            14 if eq("content-length") => ContentLength,
            16 if eq("www-authenticate") => WwwAuthenticate,
            18 if eq("proxy-authenticate") => ProxyAuthenticate,
            19 if eq("proxy-authorization") => ProxyAuthorization,
            _ => Other,
        }
    }

    /// Canonical spelling; `Other` has none and returns `""`.
    pub fn canonical(&self) -> &'static str {
        use HeaderName::*;
        match self {
            Via => "Via",
            From => "From",
            To => "To",
            CallId => "Call-ID",
            CSeq => "CSeq",
            MaxForwards => "Max-Forwards",
            Contact => "Contact",
            Route => "Route",
            RecordRoute => "Record-Route",
            ContentLength => "Content-Length",
            ContentType => "Content-Type",
            Expires => "Expires",
            Authorization => "Authorization",
            ProxyAuthorization => "Proxy-Authorization",
            WwwAuthenticate => "WWW-Authenticate",
            ProxyAuthenticate => "Proxy-Authenticate",
            Supported => "Supported",
            Subject => "Subject",
            Other => "",
        }
    }
}

/// Compact forms of headers that are not in [`HeaderName`], so that
/// `is("Content-Encoding")` also matches `e:` (RFC 3261, 3265, 3515, 3841, 4028, 4474).
fn expand_other_compact(name: &[u8]) -> &[u8] {
    if name.len() != 1 {
        return name;
    }
    match name[0].to_ascii_lowercase() {
        b'e' => b"content-encoding",
        b'o' => b"event",
        b'r' => b"refer-to",
        b'b' => b"referred-by",
        b'u' => b"allow-events",
        b'x' => b"session-expires",
        b'y' => b"identity",
        b'a' => b"accept-contact",
        b'j' => b"reject-contact",
        b'd' => b"request-disposition",
        _ => name,
    }
}

/// Resolves a header name given by a caller once, so that scanning many
/// headers compares cheaply.
#[derive(Clone, Copy)]
pub(crate) struct NameMatcher<'a> {
    known: HeaderName,
    other: &'a [u8],
}

impl<'a> NameMatcher<'a> {
    pub(crate) fn new(name: &'a str) -> Self {
        let known = HeaderName::from_bytes(name.as_bytes());
        let other = if known == HeaderName::Other {
            expand_other_compact(name.as_bytes())
        } else {
            &[]
        };
        NameMatcher { known, other }
    }

    #[inline]
    pub(crate) fn matches(&self, name: HeaderName, raw_name: &[u8]) -> bool {
        if self.known != HeaderName::Other {
            name == self.known
        } else {
            name == HeaderName::Other
                && expand_other_compact(raw_name).eq_ignore_ascii_case(self.other)
        }
    }
}

/// One header field as received: name and value are slices of the
/// message buffer. `value` is trimmed of surrounding whitespace; folded
/// continuation lines stay inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub raw_name: Bytes,
    pub value: Bytes,
}

impl Header {
    /// Case-insensitive, compact-form-aware name check: `is("Via")` is true for `v:`.
    pub fn is(&self, name: &str) -> bool {
        NameMatcher::new(name).matches(self.name, &self.raw_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"VIA"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"K"), HeaderName::Supported);
        assert_eq!(HeaderName::from_bytes(b"e"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_bytes(b"Proxy-Authorization"),
            HeaderName::ProxyAuthorization
        );
        assert_eq!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Other);
        assert_eq!(HeaderName::CallId.canonical(), "Call-ID");
        assert_eq!(HeaderName::Other.canonical(), "");
    }

    #[test]
    fn is() {
        let h = Header {
            name: HeaderName::Via,
            raw_name: Bytes::from_static(b"v"),
            value: Bytes::new(),
        };
        assert!(h.is("Via") && h.is("v") && h.is("VIA") && !h.is("To"));
        let h = Header {
            name: HeaderName::Other,
            raw_name: Bytes::from_static(b"e"),
            value: Bytes::new(),
        };
        assert!(h.is("Content-Encoding") && h.is("E") && !h.is("Event"));
        let h = Header {
            name: HeaderName::Other,
            raw_name: Bytes::from_static(b"X-Foo"),
            value: Bytes::new(),
        };
        assert!(h.is("x-foo") && !h.is("X-Bar"));
    }
}
