//! Answering a digest challenge (RFC 2617, RFC 8760), written here rather
//! than taken from the router so the load tool checks the router's side
//! independently: a 401/407 to a REGISTER is answered once with
//! `Authorization` / `Proxy-Authorization` (`qop=auth` when offered), CSeq
//! 2, the same Call-ID and a new branch.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

use crate::response::{headers, trim};

/// The parts of a challenge an answer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `Proxy-Authenticate` (407) rather than `WWW-Authenticate` (401).
    pub proxy: bool,
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    pub qop_auth: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
    Sha512_256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    fn hash(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            d.finalize().iter().map(|b| format!("{b:02x}")).collect()
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            Algorithm::Sha512_256 => run::<Sha512_256>(parts),
        }
    }
}

/// The first challenge of `response` (a 401 or 407) whose algorithm is
/// known, in header order; `None` if it has none.
pub fn challenge(response: &[u8]) -> Option<Challenge> {
    let www = headers(response, b"WWW-Authenticate", b"").map(|v| (false, v));
    let proxy = headers(response, b"Proxy-Authenticate", b"").map(|v| (true, v));
    www.chain(proxy)
        .find_map(|(proxy, value)| parse(proxy, value))
}

fn parse(proxy: bool, value: &[u8]) -> Option<Challenge> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, params) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let (mut realm, mut nonce, mut opaque, mut qop) = (None, None, None, None);
    let mut algorithm = Algorithm::Md5;
    for (name, v) in params_of(params) {
        match name.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(v),
            "nonce" => nonce = Some(v),
            "opaque" => opaque = Some(v),
            "qop" => qop = Some(v),
            "algorithm" => {
                algorithm = match v.to_ascii_uppercase().as_str() {
                    "MD5" => Algorithm::Md5,
                    "SHA-256" => Algorithm::Sha256,
                    "SHA-512-256" => Algorithm::Sha512_256,
                    _ => return None,
                }
            }
            _ => {}
        }
    }
    Some(Challenge {
        proxy,
        realm: realm?,
        nonce: nonce?,
        opaque,
        algorithm,
        qop_auth: qop.is_some_and(|q| q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth"))),
    })
}

/// `name=value` pairs of a challenge, quotes removed; commas inside quotes
/// do not split.
fn params_of(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.push((name.trim().to_string(), value.trim().to_string()));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The header line (with CRLF) that answers `ch` for `user` with `password`,
/// for a request with `method` and Request-URI `uri`.
pub fn answer(
    ch: &Challenge,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> String {
    let alg = ch.algorithm;
    let ha1 = alg.hash(&[user.as_bytes(), ch.realm.as_bytes(), password.as_bytes()]);
    let ha2 = alg.hash(&[method.as_bytes(), uri.as_bytes()]);
    let name = if ch.proxy {
        "Proxy-Authorization"
    } else {
        "Authorization"
    };
    let mut line = format!(
        "{name}: Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm={}",
        ch.realm,
        ch.nonce,
        alg.name()
    );
    if ch.qop_auth {
        let nc = "00000001";
        let response = alg.hash(&[
            ha1.as_bytes(),
            ch.nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]);
        line.push_str(&format!(
            ", qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\""
        ));
    } else {
        let response = alg.hash(&[ha1.as_bytes(), ch.nonce.as_bytes(), ha2.as_bytes()]);
        line.push_str(&format!(", response=\"{response}\""));
    }
    if let Some(opaque) = &ch.opaque {
        line.push_str(&format!(", opaque=\"{opaque}\""));
    }
    line.push_str("\r\n");
    line
}

/// `request` (a first REGISTER as the template wrote it) made into its
/// retry: CSeq 2, the branch marked `a` (a new transaction), `auth` (a
/// header line) before Content-Length. `None` if the request lacks a part.
pub fn retry(request: &[u8], auth: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(request).ok()?;
    let cseq = text.find("\r\nCSeq: 1 ")?;
    let branch = text.find(";branch=z9hG4bK-")? + ";branch=z9hG4bK-".len();
    let length = text.find("\r\nContent-Length:")? + 2;
    if !(branch < cseq && cseq < length) {
        return None;
    }
    let mut out = String::with_capacity(text.len() + auth.len() + 2);
    out.push_str(&text[..branch]);
    out.push('a');
    out.push_str(&text[branch..cseq]);
    out.push_str("\r\nCSeq: 2 ");
    out.push_str(&text[cseq + "\r\nCSeq: 1 ".len()..length]);
    out.push_str(auth);
    out.push_str(&text[length..]);
    Some(out.into_bytes())
}

/// The user part of the first REGISTER's To URI (`sip:user7@host` → `user7`).
pub fn to_user(request: &[u8]) -> Option<&str> {
    let to = crate::response::header(request, b"To", b"t")?;
    let to = trim(to);
    let uri = std::str::from_utf8(to).ok()?;
    let start = uri.find("sip:")? + 4;
    let end = uri[start..].find('@')? + start;
    Some(&uri[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_response() {
        // RFC 2617 §3.5 (the MD5 value per erratum 1649 / RFC 7616's note).
        let ch = Challenge {
            proxy: false,
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
            algorithm: Algorithm::Md5,
            qop_auth: true,
        };
        let line = answer(
            &ch,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
        );
        assert!(
            line.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{line}"
        );
        assert!(line.starts_with("Authorization: Digest username=\"Mufasa\""));
    }

    #[test]
    fn the_first_challenge_with_a_known_algorithm_is_taken() {
        let r = b"SIP/2.0 401 Unauthorized\r\n\
            WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n1\", algorithm=SHA-999\r\n\
            WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n2, with comma\", qop=\"auth,auth-int\", algorithm=SHA-256\r\n\
            Content-Length: 0\r\n\r\n";
        let ch = challenge(r).expect("a challenge");
        assert_eq!(ch.nonce, "n2, with comma");
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert!(ch.qop_auth && !ch.proxy);
    }

    #[test]
    fn a_retry_is_a_new_transaction_of_the_same_call() {
        let first = b"REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5;branch=z9hG4bK-wb1-7;rport\r\n\
            To: <sip:user7@h>\r\nCall-ID: wb1-7@bench\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let out = retry(first, "Authorization: Digest x\r\n").expect("retry");
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("branch=z9hG4bK-awb1-7;rport"));
        assert!(out.contains(
            "\r\nCSeq: 2 REGISTER\r\nAuthorization: Digest x\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(out.contains("Call-ID: wb1-7@bench"));
        assert_eq!(to_user(first), Some("user7"));
    }
}
