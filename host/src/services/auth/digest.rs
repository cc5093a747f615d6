//! The digest computation of RFC 2617 §3.2.2 with the hash algorithms of
//! RFC 7616 (SIP: RFC 8760): `MD5`, `SHA-256`, `SHA-512-256`, each also in
//! its `-sess` form; `qop=auth`, `qop=auth-int` and the RFC 2069 form
//! without qop. Everything is lower-case hex, as on the wire.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use subtle::ConstantTimeEq;

/// A digest algorithm a challenge may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
    Sha512_256,
}

impl Algorithm {
    /// Every algorithm, strongest first (the order a challenge offers them
    /// in, RFC 8760 §2.4).
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5];

    /// The token of the `algorithm` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// The algorithm an `algorithm` parameter names (case-insensitive), and
    /// whether it is the `-sess` form. An absent parameter means MD5.
    pub fn parse(token: Option<&str>) -> Option<(Algorithm, bool)> {
        let Some(token) = token else {
            return Some((Algorithm::Md5, false));
        };
        let (base, sess) = match token.len().checked_sub(5) {
            Some(i) if token.is_char_boundary(i) && token[i..].eq_ignore_ascii_case("-sess") => {
                (&token[..i], true)
            }
            _ => (token, false),
        };
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(base))
            .map(|a| (a, sess))
    }

    /// Lower-case hex of the hash of `parts` joined by `:`.
    pub fn hex_of(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            to_hex(&d.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            Algorithm::Sha512_256 => run::<Sha512_256>(parts),
        }
    }

    /// HA1 = H(username:realm:password), what a subscriber table stores
    /// instead of the password.
    pub fn ha1(self, user: &str, realm: &str, password: &str) -> String {
        self.hex_of(&[user.as_bytes(), realm.as_bytes(), password.as_bytes()])
    }
}

/// Lower-case hex of `bytes`.
pub(super) fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// Quality of protection the response was computed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop<'a> {
    /// RFC 2069: no qop, no cnonce, no nonce count.
    None,
    /// `qop=auth` with the client's nonce count and cnonce.
    Auth { nc: &'a str, cnonce: &'a str },
    /// `qop=auth-int`: the body is part of HA2.
    AuthInt {
        nc: &'a str,
        cnonce: &'a str,
        body: &'a [u8],
    },
}

/// What a response is computed over.
#[derive(Debug, Clone, Copy)]
pub struct Challenge<'a> {
    pub algorithm: Algorithm,
    /// `-sess`: HA1 becomes H(HA1:nonce:cnonce).
    pub sess: bool,
    pub nonce: &'a str,
    pub method: &'a str,
    /// The `uri` parameter of the credentials, as the client wrote it.
    pub uri: &'a str,
    pub qop: Qop<'a>,
}

impl Challenge<'_> {
    /// The `response` a client that knows `ha1` sends (RFC 2617 §3.2.2.1).
    pub fn expected_response(&self, ha1: &str) -> String {
        let alg = self.algorithm;
        let cnonce = match self.qop {
            Qop::None => "",
            Qop::Auth { cnonce, .. } | Qop::AuthInt { cnonce, .. } => cnonce,
        };
        let session_ha1;
        let ha1 = if self.sess {
            session_ha1 = alg.hex_of(&[ha1.as_bytes(), self.nonce.as_bytes(), cnonce.as_bytes()]);
            session_ha1.as_str()
        } else {
            ha1
        };
        let body_hash;
        let ha2 = match self.qop {
            Qop::AuthInt { body, .. } => {
                body_hash = alg.hex_of(&[body]);
                alg.hex_of(&[
                    self.method.as_bytes(),
                    self.uri.as_bytes(),
                    body_hash.as_bytes(),
                ])
            }
            _ => alg.hex_of(&[self.method.as_bytes(), self.uri.as_bytes()]),
        };
        match self.qop {
            Qop::None => alg.hex_of(&[ha1.as_bytes(), self.nonce.as_bytes(), ha2.as_bytes()]),
            Qop::Auth { nc, cnonce } | Qop::AuthInt { nc, cnonce, .. } => {
                let qop: &[u8] = if matches!(self.qop, Qop::Auth { .. }) {
                    b"auth"
                } else {
                    b"auth-int"
                };
                alg.hex_of(&[
                    ha1.as_bytes(),
                    self.nonce.as_bytes(),
                    nc.as_bytes(),
                    cnonce.as_bytes(),
                    qop,
                    ha2.as_bytes(),
                ])
            }
        }
    }

    /// Whether `response` is the one `ha1` gives, compared in constant time
    /// (case-insensitive hex, as RFC 7616 §3.4 allows).
    pub fn verify(&self, ha1: &str, response: &str) -> bool {
        let expected = self.expected_response(ha1);
        let given = response.to_ascii_lowercase();
        expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5: the example Authorization of "Mufasa".
    #[test]
    fn rfc2617_3_5_md5_qop_auth_example() {
        let ha1 = Algorithm::Md5.ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        let c = Challenge {
            algorithm: Algorithm::Md5,
            sess: false,
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method: "GET",
            uri: "/dir/index.html",
            qop: Qop::Auth {
                nc: "00000001",
                cnonce: "0a4f113b",
            },
        };
        assert_eq!(
            c.expected_response(&ha1),
            "6629fae49393a05397450978507c4ef1"
        );
        assert!(c.verify(&ha1, "6629FAE49393A05397450978507C4EF1"));
        assert!(!c.verify(&ha1, "6629fae49393a05397450978507c4ef0"));
        assert!(!c.verify(&ha1, "6629fae4"));
    }

    /// RFC 7616 §3.9.1: the same user with MD5 and SHA-256. The RFC prints
    /// the MD5 response ending in `...0eca8a6b`; its erratum 4897 corrects
    /// it to the value below, which this computes.
    #[test]
    fn rfc7616_3_9_1_md5_and_sha256_examples() {
        let (user, realm, pass) = ("Mufasa", "http-auth@example.org", "Circle of Life");
        let c = |algorithm| Challenge {
            algorithm,
            sess: false,
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            method: "GET",
            uri: "/dir/index.html",
            qop: Qop::Auth {
                nc: "00000001",
                cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            },
        };
        let md5 = c(Algorithm::Md5);
        assert_eq!(
            md5.expected_response(&Algorithm::Md5.ha1(user, realm, pass)),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let sha = c(Algorithm::Sha256);
        assert_eq!(
            sha.expected_response(&Algorithm::Sha256.ha1(user, realm, pass)),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    /// SHA-512/256 is its own hash (FIPS 180-4 §5.3.6), not SHA-512 cut
    /// short: its digest of the empty string.
    #[test]
    fn sha_512_256_is_the_truncated_variant_with_its_own_start() {
        assert_eq!(
            Algorithm::Sha512_256.hex_of(&[b""]),
            "c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a"
        );
    }

    #[test]
    fn algorithm_tokens_parse_case_insensitively_with_sess() {
        assert_eq!(Algorithm::parse(None), Some((Algorithm::Md5, false)));
        assert_eq!(
            Algorithm::parse(Some("sha-256-SESS")),
            Some((Algorithm::Sha256, true))
        );
        assert_eq!(
            Algorithm::parse(Some("SHA-512-256")),
            Some((Algorithm::Sha512_256, false))
        );
        assert_eq!(Algorithm::parse(Some("SHA-1")), None);
        assert_eq!(Algorithm::parse(Some("-sess")), None);
    }

    /// RFC 2617 §3.2.2.2 and §3.2.2.3: `-sess` and `auth-int` change HA1
    /// and HA2 as written there, checked against the formulas spelled out.
    #[test]
    fn rfc2617_3_2_2_sess_and_auth_int_follow_the_formulas() {
        let alg = Algorithm::Sha256;
        let ha1 = alg.ha1("alice", "example.com", "pw");
        let body = b"v=0\r\n";
        let c = Challenge {
            algorithm: alg,
            sess: true,
            nonce: "n",
            method: "INVITE",
            uri: "sip:bob@example.com",
            qop: Qop::AuthInt {
                nc: "00000002",
                cnonce: "c",
                body,
            },
        };
        let sess_ha1 = alg.hex_of(&[ha1.as_bytes(), b"n", b"c"]);
        let ha2 = alg.hex_of(&[
            b"INVITE",
            b"sip:bob@example.com",
            alg.hex_of(&[body]).as_bytes(),
        ]);
        let want = alg.hex_of(&[
            sess_ha1.as_bytes(),
            b"n",
            b"00000002",
            b"c",
            b"auth-int",
            ha2.as_bytes(),
        ]);
        assert_eq!(c.expected_response(&ha1), want);
        // RFC 2069, no qop: H(HA1:nonce:HA2).
        let plain = Challenge {
            sess: false,
            qop: Qop::None,
            ..c
        };
        let ha2 = alg.hex_of(&[b"INVITE", b"sip:bob@example.com"]);
        assert_eq!(
            plain.expected_response(&ha1),
            alg.hex_of(&[ha1.as_bytes(), b"n", ha2.as_bytes()])
        );
    }
}
