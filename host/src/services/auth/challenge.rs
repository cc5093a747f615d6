//! The `WWW-Authenticate` / `Proxy-Authenticate` values of a challenge:
//! one per algorithm offered, strongest first, all with the same nonce
//! (RFC 8760 §2.4), so the client answers with the best it knows.

use super::digest::Algorithm;

/// `flags` bit: offer `qop="auth"` (Kamailio's flag 1). Always offered, so
/// the bit changes nothing; accepted for scripts that pass it.
pub const FLAG_QOP_AUTH: u32 = 1;
/// `flags` bit: offer `qop="auth-int"` as well (Kamailio's flag 2).
pub const FLAG_QOP_AUTH_INT: u32 = 2;
/// `flags` bit: say `stale=true` whatever the last authorize found
/// (Kamailio's flag 16).
pub const FLAG_STALE: u32 = 16;
/// Every flag a challenge takes; others are refused.
pub const KNOWN_FLAGS: u32 = FLAG_QOP_AUTH | FLAG_QOP_AUTH_INT | FLAG_STALE;

/// One challenge: what every header of it says.
#[derive(Debug, Clone, Copy)]
pub struct ChallengeParams<'a> {
    pub realm: &'a str,
    pub nonce: &'a str,
    /// Also offer `auth-int` (the body is signed too).
    pub auth_int: bool,
    /// The client's nonce expired: it may retry with the new one without
    /// asking its user again (RFC 2617 §3.2.1).
    pub stale: bool,
}

/// Whether `realm` can go into a quoted-string as it is: printable, no
/// quote or backslash (neither is in a domain name).
pub fn realm_is_quotable(realm: &str) -> bool {
    realm
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// The header values of challenge `c`, one per algorithm of `algorithms`
/// in that order.
pub fn header_values(c: &ChallengeParams<'_>, algorithms: &[Algorithm]) -> Vec<String> {
    let qop = if c.auth_int { "auth,auth-int" } else { "auth" };
    algorithms
        .iter()
        .map(|alg| {
            let mut v = format!(
                "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"{qop}\"",
                c.realm,
                c.nonce,
                alg.name()
            );
            if c.stale {
                v.push_str(", stale=true");
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use wisp_sip::Challenge;

    use super::*;

    #[test]
    fn one_header_per_algorithm_in_order_with_one_nonce() {
        let c = ChallengeParams {
            realm: "example.com",
            nonce: "abc123",
            auth_int: false,
            stale: false,
        };
        let values = header_values(&c, &[Algorithm::Sha256, Algorithm::Md5]);
        assert_eq!(
            values,
            [
                "Digest realm=\"example.com\", nonce=\"abc123\", algorithm=SHA-256, qop=\"auth\"",
                "Digest realm=\"example.com\", nonce=\"abc123\", algorithm=MD5, qop=\"auth\"",
            ]
        );
        // What a client parses out of them.
        for (v, alg) in values.iter().zip(["SHA-256", "MD5"]) {
            let parsed = Challenge::parse(v.as_bytes()).expect("parses");
            assert_eq!(parsed.scheme, "Digest");
            assert_eq!(parsed.param("realm"), Some("example.com"));
            assert_eq!(parsed.param("nonce"), Some("abc123"));
            assert_eq!(parsed.param("algorithm"), Some(alg));
            assert_eq!(parsed.param("qop"), Some("auth"));
            assert_eq!(parsed.param("stale"), None);
        }
    }

    #[test]
    fn stale_and_auth_int_are_said_when_asked() {
        let c = ChallengeParams {
            realm: "r",
            nonce: "n",
            auth_int: true,
            stale: true,
        };
        let values = header_values(&c, &[Algorithm::Sha512_256]);
        let parsed = Challenge::parse(values[0].as_bytes()).expect("parses");
        assert_eq!(parsed.param("stale"), Some("true"));
        assert_eq!(parsed.param("qop"), Some("auth,auth-int"));
        assert_eq!(parsed.param("algorithm"), Some("SHA-512-256"));
    }

    #[test]
    fn realms_that_would_break_the_quoted_string_are_not_quotable() {
        assert!(realm_is_quotable("example.com"));
        assert!(realm_is_quotable("[2001:db8::1]"));
        for bad in ["a\"b", "a\\b", "a\r\nX: y", "tab\there"] {
            assert!(!realm_is_quotable(bad), "{bad:?}");
        }
    }
}
