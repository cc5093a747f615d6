//! Checking a request's digest credentials: the typed outcome the auth host
//! functions return (`www_authorize`, `proxy_authorize`).
//!
//! The order is that of Kamailio's `auth` module, with two rules of issue
//! 15 added: an unknown user costs the same work as a known one (a stand-in
//! HA1 is checked), and a nonce count is recorded only for a response that
//! was right, so wrong guesses cannot use up a client's counts.

use std::time::SystemTime;

use wisp_sip::Credentials;

use super::digest::{Algorithm, Challenge, Qop};
use super::nonce::{NonceError, NonceKey, Replay, ReplayGuard};

/// What checking credentials found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Right response, fresh nonce, new nonce count: the user is `user`.
    Authorized {
        user: String,
    },
    /// No Digest credentials for this realm.
    NoCredentials,
    /// Credentials that lack a parameter or have a bad one.
    Malformed(&'static str),
    /// A nonce this router's secret did not make: challenge again.
    InvalidNonce,
    /// An expired nonce (or no room to track it): challenge with `stale=true`.
    Stale,
    /// No such user. Reached after the same work as [`Verdict::WrongResponse`].
    UnknownUser,
    WrongResponse,
    /// A nonce count used before with this nonce.
    Replayed,
}

/// The HA1 a user has, for the algorithm of the credentials.
pub trait Ha1Source {
    fn ha1(&self, user: &str, realm: &str, algorithm: Algorithm) -> Option<String>;
}

impl<F: Fn(&str, &str, Algorithm) -> Option<String>> Ha1Source for F {
    fn ha1(&self, user: &str, realm: &str, algorithm: Algorithm) -> Option<String> {
        self(user, realm, algorithm)
    }
}

/// Check `creds` (one Authorization or Proxy-Authorization value) against
/// `realm` for a request with `method` and `body`, at `now`.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    creds: &Credentials,
    realm: &str,
    method: &str,
    body: &[u8],
    now: SystemTime,
    key: &NonceKey,
    replays: &ReplayGuard,
    users: &impl Ha1Source,
) -> Verdict {
    if !creds.scheme.eq_ignore_ascii_case("Digest") || creds.param("realm") != Some(realm) {
        return Verdict::NoCredentials;
    }
    let (Some(user), Some(nonce), Some(uri), Some(response)) = (
        creds.param("username"),
        creds.param("nonce"),
        creds.param("uri"),
        creds.param("response"),
    ) else {
        return Verdict::Malformed("username, nonce, uri and response are required");
    };
    let Some((algorithm, sess)) = Algorithm::parse(creds.param("algorithm")) else {
        return Verdict::Malformed("unsupported algorithm");
    };
    let (qop, nc) = match creds.param("qop") {
        None => (Qop::None, 1),
        Some(q) => {
            let (Some(nc_text), Some(cnonce)) = (creds.param("nc"), creds.param("cnonce")) else {
                return Verdict::Malformed("qop without nc and cnonce");
            };
            let Ok(nc) = u32::from_str_radix(nc_text, 16) else {
                return Verdict::Malformed("nc is not 8 hex digits");
            };
            if nc_text.len() != 8 || nc == 0 {
                return Verdict::Malformed("nc is not 8 hex digits");
            }
            let qop = if q.eq_ignore_ascii_case("auth") {
                Qop::Auth {
                    nc: nc_text,
                    cnonce,
                }
            } else if q.eq_ignore_ascii_case("auth-int") {
                Qop::AuthInt {
                    nc: nc_text,
                    cnonce,
                    body,
                }
            } else {
                return Verdict::Malformed("unsupported qop");
            };
            (qop, nc)
        }
    };
    let checked = match key.check(nonce, now) {
        Ok(n) => n,
        Err(NonceError::Stale) => return Verdict::Stale,
        Err(NonceError::Forged) => return Verdict::InvalidNonce,
    };
    let challenge = Challenge {
        algorithm,
        sess,
        nonce,
        method,
        uri,
        qop,
    };
    let known = users.ha1(user, realm, algorithm);
    // The same computation for an unknown user, against an HA1 nobody has.
    let stand_in;
    let ha1 = match &known {
        Some(h) => h.as_str(),
        None => {
            stand_in = algorithm.ha1(user, realm, nonce);
            stand_in.as_str()
        }
    };
    let right = challenge.verify(ha1, response);
    if known.is_none() {
        return Verdict::UnknownUser;
    }
    if !right {
        return Verdict::WrongResponse;
    }
    match replays.use_nonce(checked, nc, now) {
        Ok(()) => Verdict::Authorized {
            user: user.to_owned(),
        },
        Err(Replay::Replayed) => Verdict::Replayed,
        Err(Replay::NoRoom) => Verdict::Stale,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const REALM: &str = "example.com";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn users(user: &str, _realm: &str, alg: Algorithm) -> Option<String> {
        (user == "alice").then(|| alg.ha1("alice", REALM, "s3cret"))
    }

    /// The Authorization a client with `password` sends for `nonce`.
    fn creds(alg: Algorithm, user: &str, password: &str, nonce: &str, nc: &str) -> Credentials {
        let uri = "sip:example.com";
        let c = Challenge {
            algorithm: alg,
            sess: false,
            nonce,
            method: "REGISTER",
            uri,
            qop: Qop::Auth {
                nc,
                cnonce: "c0ffee",
            },
        };
        let response = c.expected_response(&alg.ha1(user, REALM, password));
        let value = format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"c0ffee\"",
            alg.name()
        );
        Credentials::parse(value.as_bytes()).expect("credentials parse")
    }

    fn check(key: &NonceKey, guard: &ReplayGuard, c: &Credentials, now: u64) -> Verdict {
        verify(c, REALM, "REGISTER", b"", at(now), key, guard, &users)
    }

    #[test]
    fn rfc8760_the_right_password_with_each_algorithm_is_authorized() {
        let key = NonceKey::new(b"k", Duration::from_secs(300));
        let guard = ReplayGuard::new(64);
        for alg in Algorithm::ALL {
            let nonce = key.issue(at(0));
            let c = creds(alg, "alice", "s3cret", &nonce, "00000001");
            assert_eq!(
                check(&key, &guard, &c, 10),
                Verdict::Authorized {
                    user: "alice".into()
                },
                "{alg:?}"
            );
        }
    }

    #[test]
    fn wrong_password_unknown_user_stale_forged_and_replayed_are_told_apart() {
        let key = NonceKey::new(b"k", Duration::from_secs(300));
        let guard = ReplayGuard::new(64);
        let nonce = key.issue(at(0));
        let alg = Algorithm::Sha256;
        let wrong = creds(alg, "alice", "guess", &nonce, "00000001");
        assert_eq!(check(&key, &guard, &wrong, 10), Verdict::WrongResponse);
        let nobody = creds(alg, "mallory", "guess", &nonce, "00000001");
        assert_eq!(check(&key, &guard, &nobody, 10), Verdict::UnknownUser);
        // A wrong guess used no count: the right one with nc 1 still works.
        let right = creds(alg, "alice", "s3cret", &nonce, "00000001");
        assert!(matches!(
            check(&key, &guard, &right, 10),
            Verdict::Authorized { .. }
        ));
        assert_eq!(check(&key, &guard, &right, 11), Verdict::Replayed);
        let next = creds(alg, "alice", "s3cret", &nonce, "00000002");
        assert!(matches!(
            check(&key, &guard, &next, 12),
            Verdict::Authorized { .. }
        ));
        assert_eq!(check(&key, &guard, &next, 300), Verdict::Stale);
        let other_key = NonceKey::new(b"other", Duration::from_secs(300));
        let foreign = creds(alg, "alice", "s3cret", &other_key.issue(at(0)), "00000001");
        assert_eq!(check(&key, &guard, &foreign, 10), Verdict::InvalidNonce);
    }

    #[test]
    fn credentials_for_another_realm_or_scheme_or_incomplete_ones_are_not_taken() {
        let key = NonceKey::new(b"k", Duration::from_secs(300));
        let guard = ReplayGuard::new(8);
        let other_realm = Credentials::parse(
            b"Digest username=\"alice\", realm=\"elsewhere\", nonce=\"n\", uri=\"u\", response=\"r\"",
        )
        .expect("parse");
        assert_eq!(check(&key, &guard, &other_realm, 1), Verdict::NoCredentials);
        let basic = Credentials::parse(b"Basic YWxpY2U6czNjcmV0").expect("parse");
        assert_eq!(check(&key, &guard, &basic, 1), Verdict::NoCredentials);
        let no_response = Credentials::parse(
            b"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"u\"",
        )
        .expect("parse");
        assert!(matches!(
            check(&key, &guard, &no_response, 1),
            Verdict::Malformed(_)
        ));
        let bad_nc = Credentials::parse(
            b"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"u\", response=\"r\", qop=auth, nc=1, cnonce=\"c\"",
        )
        .expect("parse");
        assert!(matches!(
            check(&key, &guard, &bad_nc, 1),
            Verdict::Malformed(_)
        ));
    }
}
