//! Authorization / Proxy-Authorization credentials and WWW-/Proxy-Authenticate
//! challenges (RFC 3261 §20.7, §20.27, §20.44; RFC 7616 digest params).
//!
//! Both are `scheme LWS auth-param *(COMMA auth-param)`; values are stored
//! unquoted with `\"` escapes resolved, because callers (digest checks)
//! need the actual value. Commas inside quoted values do not split.

use nom::Parser;

use crate::parse::{ParseError, lws0, quoted_string, token, trim_lws, trim_start_lws, unquote};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Credentials {
    pub fn parse(value: &[u8]) -> Result<Credentials, ParseError> {
        let (scheme, params) = parse_auth(value, "Authorization")?;
        Ok(Credentials { scheme, params })
    }

    /// Case-insensitive parameter lookup (`username`, `realm`, `nonce`, ...).
    pub fn param(&self, name: &str) -> Option<&str> {
        lookup(&self.params, name)
    }
}

impl Challenge {
    pub fn parse(value: &[u8]) -> Result<Challenge, ParseError> {
        let (scheme, params) = parse_auth(value, "WWW-Authenticate")?;
        Ok(Challenge { scheme, params })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        lookup(&self.params, name)
    }
}

fn lookup<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[allow(clippy::type_complexity)]
fn parse_auth(
    value: &[u8],
    header: &'static str,
) -> Result<(String, Vec<(String, String)>), ParseError> {
    let err = |r| ParseError::header(header, r);
    let value = trim_lws(value);
    let (rest, scheme) = token(value).map_err(|_| err("missing scheme"))?;
    let scheme = crate::parse::lossy(scheme);
    let mut s = trim_start_lws(rest);
    if !s.is_empty() && s.len() == rest.len() {
        return Err(err("missing space after scheme"));
    }
    let mut params = Vec::new();
    if s.is_empty() {
        return Ok((scheme, params));
    }
    // token68 form (e.g. `Basic dXNlcjpwYXNz`): a single blob, maybe '='-padded.
    if !s.iter().any(|b| matches!(b, b',' | b'"' | b' ' | b'\t'))
        && s.iter()
            .position(|b| *b == b'=')
            .is_none_or(|p| s[p..].iter().all(|b| *b == b'='))
    {
        params.push((String::new(), crate::parse::lossy(s)));
        return Ok((scheme, params));
    }
    loop {
        let (rest, (name, _, _, _)) = (token, lws0, nom::bytes::complete::tag("="), lws0)
            .parse(s)
            .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| err("bad auth-param"))?;
        let (rest, v) = if rest.first() == Some(&b'"') {
            let (rest, q) = quoted_string(rest).map_err(|_| err("unterminated quoted string"))?;
            (rest, unquote(q).into_string())
        } else {
            // Unquoted values are tokens, but some UAs send e.g. `uri=sip:x@y`
            // unquoted; accept anything up to the next comma or LWS.
            let n = rest
                .iter()
                .take_while(|b| !matches!(b, b',' | b' ' | b'\t' | b'\r' | b'\n'))
                .count();
            if n == 0 {
                return Err(err("empty auth-param value"));
            }
            (&rest[n..], crate::parse::lossy(&rest[..n]))
        };
        params.push((crate::parse::lossy(name), v));
        let rest = trim_start_lws(rest);
        match rest.first() {
            None => return Ok((scheme, params)),
            Some(b',') => s = trim_start_lws(&rest[1..]),
            Some(_) => return Err(err("expected ',' between auth-params")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest() {
        let c = Credentials::parse(
            br#"Digest username="bob", realm="biloxi.com",nonce="dcd98b,7102dd2f0e8b11d0f600bfb0c093", uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41", algorithm=MD5"#,
        )
        .unwrap();
        assert_eq!(c.scheme, "Digest");
        assert_eq!(c.param("USERNAME"), Some("bob"));
        assert_eq!(
            c.param("nonce"),
            Some("dcd98b,7102dd2f0e8b11d0f600bfb0c093")
        );
        assert_eq!(c.param("qop"), Some("auth"));
        assert_eq!(c.param("algorithm"), Some("MD5"));
        assert_eq!(c.params.len(), 10);
    }

    #[test]
    fn escapes_and_errors() {
        let c = Challenge::parse(br#"Digest realm="a \"b\" c",  nonce = "x""#).unwrap();
        assert_eq!(c.param("realm"), Some(r#"a "b" c"#));
        assert_eq!(c.param("nonce"), Some("x"));
        assert!(Credentials::parse(br#"Digest username="bob"#).is_err());
        assert!(Credentials::parse(b"Digest username=bob realm=x").is_err());
        assert!(Credentials::parse(b"").is_err());
        let b = Credentials::parse(b"Basic dXNlcjpwYXNz==").unwrap();
        assert_eq!(b.params[0].1, "dXNlcjpwYXNz==");
    }
}
