//! `[auth]`: digest authentication (Kamailio `auth` module parameters):
//! the secret nonces are signed with, how long a nonce lives, the
//! algorithms a challenge offers and the bound of the replay record.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Unexpected, Visitor};

use super::{Invalid, KeyPath};

/// Fewest bytes a configured secret may have: shorter ones are guessable.
pub const MIN_SECRET_LEN: usize = 16;

/// `[auth]`: digest authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The key nonces are signed with (Kamailio `secret`), at least 16
    /// bytes. Routers that share it accept each other's nonces. Not with
    /// `secret_file`. With neither, a random one is made at start: nonces
    /// then do not survive a restart and are not shared.
    pub secret: Option<Secret>,
    /// A file holding the secret (its first line, at least 16 bytes),
    /// relative to the manifest's directory; read once at start.
    pub secret_file: Option<PathBuf>,
    /// Seconds a nonce is accepted after its challenge (Kamailio
    /// `nonce_expire`), 1..=86400; default 300. Past it the client is
    /// challenged again with `stale=true`.
    pub nonce_expires: u64,
    /// The algorithms a challenge offers, in this order (one challenge
    /// header each, RFC 8760 §2.4): `"SHA-512-256"`, `"SHA-256"`, `"MD5"`;
    /// default `["SHA-256", "MD5"]`. At least one, no repeats.
    pub algorithms: Vec<DigestAlgorithm>,
    /// How many nonces the replay record tracks at once (its memory is
    /// fixed, about 24 bytes a slot), 1..=16777216; default 65536. A
    /// nonce that finds its slot taken by another live one is answered as
    /// stale, so size it above the challenges issued per `nonce_expires`.
    pub replay_slots: usize,
    /// The secret read from `secret_file` (or `secret`), once parsed.
    #[serde(skip)]
    loaded: Option<Secret>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secret: None,
            secret_file: None,
            nonce_expires: 300,
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            replay_slots: 65_536,
            loaded: None,
        }
    }
}

impl AuthConfig {
    /// The configured secret (from `secret` or `secret_file`), or `None`
    /// when the router must make one up.
    pub fn secret(&self) -> Option<&[u8]> {
        self.loaded.as_ref().map(|s| s.0.as_slice())
    }

    /// Rules serde does not check: bounds, one source of the secret.
    pub(super) fn check(&self) -> Result<(), Invalid> {
        let key = |k| KeyPath::new(&["auth", k]);
        if self.secret.is_some() && self.secret_file.is_some() {
            return Err(Invalid::new(
                key("secret_file"),
                "set either auth.secret or auth.secret_file, not both",
            ));
        }
        if let Some(s) = &self.secret
            && s.0.len() < MIN_SECRET_LEN
        {
            return Err(Invalid::new(
                key("secret"),
                format!("expected at least {MIN_SECRET_LEN} bytes"),
            ));
        }
        if !(1..=86_400).contains(&self.nonce_expires) {
            return Err(Invalid::new(
                key("nonce_expires"),
                "expected 1..=86400 seconds",
            ));
        }
        if self.algorithms.is_empty() {
            return Err(Invalid::new(
                key("algorithms"),
                "at least one algorithm is required",
            ));
        }
        for (i, a) in self.algorithms.iter().enumerate() {
            if self.algorithms[..i].contains(a) {
                return Err(Invalid::new(
                    KeyPath::new(&["auth", "algorithms"]).index(i),
                    format!("{} is listed twice", a.name()),
                ));
            }
        }
        if !(1..=16_777_216).contains(&self.replay_slots) {
            return Err(Invalid::new(key("replay_slots"), "expected 1..=16777216"));
        }
        Ok(())
    }

    /// Take the secret from `secret`, or read `secret_file` (relative to
    /// `base_dir`): its first line, without surrounding whitespace.
    pub(super) fn load_secret(&mut self, base_dir: &Path) -> Result<(), Invalid> {
        let Some(file) = &self.secret_file else {
            self.loaded = self.secret.clone();
            return Ok(());
        };
        let key = KeyPath::new(&["auth", "secret_file"]);
        let path = if file.is_absolute() {
            file.clone()
        } else {
            base_dir.join(file)
        };
        let text = std::fs::read(&path).map_err(|e| {
            Invalid::new(key.clone(), format!("cannot read {}: {e}", path.display()))
        })?;
        let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
        let secret = first.trim_ascii();
        if secret.len() < MIN_SECRET_LEN {
            return Err(Invalid::new(
                key,
                format!(
                    "{} holds {} bytes of secret, expected at least {MIN_SECRET_LEN}",
                    path.display(),
                    secret.len()
                ),
            ));
        }
        self.loaded = Some(Secret(secret.to_vec()));
        Ok(())
    }
}

/// A secret from the manifest; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Secret(s.into_bytes()))
    }
}

/// A digest algorithm the manifest names (RFC 8760); the auth service maps
/// it to its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
    Sha512_256,
}

/// The names `algorithms` takes, for error messages.
const ALGORITHM_NAMES: &str = "\"SHA-512-256\", \"SHA-256\" or \"MD5\"";

impl DigestAlgorithm {
    /// The token as in the `algorithm` parameter.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha512_256 => "SHA-512-256",
        }
    }
}

impl<'de> Deserialize<'de> for DigestAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = DigestAlgorithm;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(ALGORITHM_NAMES)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DigestAlgorithm, E> {
                [
                    DigestAlgorithm::Sha512_256,
                    DigestAlgorithm::Sha256,
                    DigestAlgorithm::Md5,
                ]
                .into_iter()
                .find(|a| a.name().eq_ignore_ascii_case(s))
                .ok_or_else(|| E::invalid_value(Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::tests::{GOOD, refused_at};
    use crate::config::*;

    fn parse(text: &str) -> Manifest {
        Manifest::parse(text, Path::new("w.toml")).expect("valid")
    }

    #[test]
    fn auth_defaults_offer_sha256_then_md5_with_no_secret() {
        let m = parse(GOOD);
        assert_eq!(m.auth.nonce_expires, 300);
        assert_eq!(
            m.auth.algorithms,
            [DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
        );
        assert_eq!(m.auth.replay_slots, 65_536);
        assert_eq!(m.auth.secret(), None);
    }

    #[test]
    fn secret_and_algorithms_are_read_and_the_secret_is_never_printed() {
        let text = format!(
            "{GOOD}\n[auth]\nsecret = \"0123456789abcdef!\"\nalgorithms = [\"md5\", \"SHA-512-256\"]\nnonce_expires = 60\n"
        );
        let m = parse(&text);
        assert_eq!(m.auth.secret(), Some(&b"0123456789abcdef!"[..]));
        assert_eq!(
            m.auth.algorithms,
            [DigestAlgorithm::Md5, DigestAlgorithm::Sha512_256]
        );
        assert_eq!(m.auth.nonce_expires, 60);
        assert!(!format!("{m:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn an_unknown_algorithm_is_refused_at_its_line() {
        let text = format!("{GOOD}\n[auth]\nalgorithms = [\n  \"SHA-256\",\n  \"SHA-1\",\n]\n");
        let e = refused_at(&text, text.lines().count() - 1, "auth.algorithms[1]");
        assert!(e.contains("\"SHA-256\""), "{e}");
        let text = format!("{GOOD}\n[auth]\nalgorithms = [\"MD5\", \"md5\"]\n");
        refused_at(&text, text.lines().count(), "auth.algorithms[1]");
        let text = format!("{GOOD}\n[auth]\nalgorithms = []\n");
        refused_at(&text, text.lines().count(), "auth.algorithms");
    }

    #[test]
    fn bad_bounds_and_short_secrets_are_refused_at_their_line() {
        for (line, key) in [
            ("nonce_expires = 0", "auth.nonce_expires"),
            ("replay_slots = 0", "auth.replay_slots"),
            ("secret = \"short\"", "auth.secret"),
            ("nonce = 5", "auth.nonce"),
        ] {
            let text = format!("{GOOD}\n[auth]\n{line}\n");
            refused_at(&text, text.lines().count(), key);
        }
    }

    #[test]
    fn secret_file_is_read_relative_to_the_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("nonce.key"),
            "fedcba9876543210fedc\nignored\n",
        )
        .expect("write");
        let text = format!("{GOOD}\n[auth]\nsecret_file = \"nonce.key\"\n");
        let m = Manifest::parse(&text, &dir.path().join("w.toml")).expect("valid");
        assert_eq!(m.auth.secret(), Some(&b"fedcba9876543210fedc"[..]));
    }

    #[test]
    fn secret_file_missing_short_or_with_a_secret_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = dir.path().join("short.key");
        std::fs::write(&short, "abc\n").expect("write");
        let missing = dir.path().join("missing.key");
        for (text, file) in [
            (
                format!("{GOOD}\n[auth]\nsecret_file = \"{}\"\n", short.display()),
                &short,
            ),
            (
                format!("{GOOD}\n[auth]\nsecret_file = \"{}\"\n", missing.display()),
                &missing,
            ),
        ] {
            let e = refused_at(&text, text.lines().count(), "auth.secret_file");
            assert!(e.contains(&file.display().to_string()), "{e}");
        }
        let text = format!(
            "{GOOD}\n[auth]\nsecret = \"0123456789abcdef\"\nsecret_file = \"{}\"\n",
            short.display()
        );
        let e = refused_at(&text, text.lines().count(), "auth.secret_file");
        assert!(e.contains("not both"), "{e}");
    }
}
