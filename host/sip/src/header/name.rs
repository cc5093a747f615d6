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

/// `name` equals `canonical` ignoring ASCII case (`lower` is its lowercase
/// spelling). Most senders use the canonical spelling, so that is tried
/// first: a fixed-size array compare, a couple of word compares.
#[inline(always)]
fn name_eq<const N: usize>(name: &[u8], canonical: &[u8; N], lower: &[u8; N]) -> bool {
    let Ok(name) = <&[u8; N]>::try_from(name) else {
        return false;
    };
    name == canonical
        || name
            .iter()
            .zip(lower)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
}

impl HeaderName {
    /// Case-insensitive lookup, compact forms included. Dispatches on length
    /// first so that the common case costs one or two comparisons: this
    /// runs for every header of every message.
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        use HeaderName::*;
        let Some(first) = name.first() else {
            return Other;
        };
        match (name.len(), first.to_ascii_lowercase()) {
            (1, b'v') => Via,
            (1, b'f') => From,
            (1, b't') => To,
            (1, b'i') => CallId,
            (1, b'm') => Contact,
            (1, b'l') => ContentLength,
            (1, b'c') => ContentType,
            (1, b'k') => Supported,
            (1, b's') => Subject,
            (2, b't') if name_eq(name, b"To", b"to") => To,
            (3, b'v') if name_eq(name, b"Via", b"via") => Via,
            (4, b'f') if name_eq(name, b"From", b"from") => From,
            (4, b'c') if name_eq(name, b"CSeq", b"cseq") => CSeq,
            (5, b'r') if name_eq(name, b"Route", b"route") => Route,
            (7, b'c') if name_eq(name, b"Call-ID", b"call-id") => CallId,
            (7, b'c') if name_eq(name, b"Contact", b"contact") => Contact,
            (7, b'e') if name_eq(name, b"Expires", b"expires") => Expires,
            (7, b's') if name_eq(name, b"Subject", b"subject") => Subject,
            (9, b's') if name_eq(name, b"Supported", b"supported") => Supported,
            (12, b'm') if name_eq(name, b"Max-Forwards", b"max-forwards") => MaxForwards,
            (12, b'r') if name_eq(name, b"Record-Route", b"record-route") => RecordRoute,
            (12, b'c') if name_eq(name, b"Content-Type", b"content-type") => ContentType,
            (13, b'a') if name_eq(name, b"Authorization", b"authorization") => Authorization,
            (14, b'c') if name_eq(name, b"Content-Length", b"content-length") => ContentLength,
            (16, b'w') if name_eq(name, b"WWW-Authenticate", b"www-authenticate") => {
                WwwAuthenticate
            }
            (18, b'p') if name_eq(name, b"Proxy-Authenticate", b"proxy-authenticate") => {
                ProxyAuthenticate
            }
            (19, b'p') if name_eq(name, b"Proxy-Authorization", b"proxy-authorization") => {
                ProxyAuthorization
            }
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
    /// The header's full name: the canonical spelling of a known header
    /// (compact forms expanded), else the name as received with a known
    /// compact form expanded (`e` → `Content-Encoding`).
    pub fn full_name(&self) -> &[u8] {
        match self.name {
            HeaderName::Other => expand_other_compact(&self.raw_name),
            known => known.canonical().as_bytes(),
        }
    }

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
