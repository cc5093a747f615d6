//! `[tls]`: the certificate of the TLS listeners and what outbound TLS
//! trusts (Kamailio's `tls` module: `certificate`, `private_key`,
//! `ca_list`, `verify_certificate`, `require_certificate`).

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::{Invalid, KeyPath};

/// `[tls]`. Paths are PEM files, relative to the manifest's folder.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain the TLS listeners present, leaf first
    /// (Kamailio `certificate`). Required when `server.listen` has a
    /// `tls:` entry. Re-read by `wisp ctl tls reload` and when the file
    /// changes.
    pub certificate: Option<PathBuf>,
    /// The certificate's private key, PKCS#8, PKCS#1 (RSA) or SEC1 (EC)
    /// (Kamailio `private_key`). Required with `certificate`.
    pub private_key: Option<PathBuf>,
    /// CA certificates (Kamailio `ca_list`): what client certificates are
    /// checked against when `verify_client` is on, and what the router
    /// trusts when it opens a TLS connection itself (instead of the
    /// Mozilla roots built in).
    pub ca_file: Option<PathBuf>,
    /// Require every TLS client to present a certificate signed by a CA of
    /// `ca_file` (Kamailio `verify_certificate` + `require_certificate`);
    /// a client without one fails the handshake. Default off.
    pub verify_client: bool,
}

/// What `[tls]`'s files hold, parsed.
#[derive(Debug)]
pub struct TlsMaterial {
    /// The chain, leaf first; none without `certificate`.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Option<PrivateKeyDer<'static>>,
    /// `ca_file`'s certificates; none without it.
    pub ca: Vec<CertificateDer<'static>>,
}

/// Why a `[tls]` file could not be used: the key that names it, and why.
#[derive(Debug, thiserror::Error)]
#[error("tls.{key}: {message}")]
pub struct TlsFileError {
    pub key: &'static str,
    pub message: String,
}

impl TlsConfig {
    /// Rules serde does not check: a `tls:` listener needs a certificate
    /// and key; `verify_client` needs the CA to verify with.
    pub(super) fn check(&self, has_tls_listener: bool) -> Result<(), Invalid> {
        let key = |k| KeyPath::new(&["tls", k]);
        if has_tls_listener && self.certificate.is_none() {
            return Err(Invalid::new(
                KeyPath::new(&["server", "listen"]),
                "a tls: or wss: listener needs [tls] certificate and private_key",
            ));
        }
        match (&self.certificate, &self.private_key) {
            (Some(_), None) => Err(Invalid::new(
                key("certificate"),
                "needs private_key, the certificate's key",
            )),
            (None, Some(_)) => Err(Invalid::new(
                key("private_key"),
                "needs certificate, the chain this key belongs to",
            )),
            _ if self.verify_client && self.ca_file.is_none() => Err(Invalid::new(
                key("verify_client"),
                "needs ca_file, the CA client certificates must be signed by",
            )),
            _ => Ok(()),
        }
    }

    /// Read and parse every file `[tls]` names, paths relative to
    /// `base_dir`. Done at start (an error names the key and the manifest
    /// line) and again on each reload (an error keeps the old certificate).
    pub fn load(&self, base_dir: &Path) -> Result<TlsMaterial, TlsFileError> {
        let path = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            }
        };
        let certs = |key: &'static str, p: &Path| -> Result<Vec<CertificateDer<'static>>, _> {
            let p = path(p);
            let err = |e: &dyn std::fmt::Display| TlsFileError {
                key,
                message: format!("{}: {e}", p.display()),
            };
            let list = CertificateDer::pem_file_iter(&p)
                .map_err(|e| err(&pem_error(e)))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(&pem_error(e)))?;
            if list.is_empty() {
                return Err(err(&"no CERTIFICATE PEM block in the file"));
            }
            Ok(list)
        };
        let chain = match &self.certificate {
            Some(p) => certs("certificate", p)?,
            None => Vec::new(),
        };
        let key = match &self.private_key {
            Some(p) => {
                let p = path(p);
                Some(PrivateKeyDer::from_pem_file(&p).map_err(|e| TlsFileError {
                    key: "private_key",
                    message: format!("{}: {}", p.display(), pem_error(e)),
                })?)
            }
            None => None,
        };
        if let (Some(k), Some(p)) = (&key, &self.private_key)
            && !chain.is_empty()
        {
            // A key of another certificate would fail every handshake:
            // refuse it here, where the error can name the key's line.
            #[allow(deprecated)] // rustls on ring, see transport::tls.
            let provider = rustls::crypto::ring::default_provider();
            rustls::sign::CertifiedKey::from_der(chain.clone(), k.clone_key(), &provider).map_err(
                |e| TlsFileError {
                    key: "private_key",
                    message: match e {
                        rustls::Error::InconsistentKeys(_) => format!(
                            "{} is not the key of the certificate in {}",
                            path(p).display(),
                            self.certificate
                                .as_deref()
                                .map(|c| path(c).display().to_string())
                                .unwrap_or_default()
                        ),
                        other => format!("{}: {other}", path(p).display()),
                    },
                },
            )?;
        }
        let ca = match &self.ca_file {
            Some(p) => certs("ca_file", p)?,
            None => Vec::new(),
        };
        Ok(TlsMaterial { chain, key, ca })
    }

    /// The files a reload re-reads, resolved against `base_dir`.
    pub fn files(&self, base_dir: &Path) -> Vec<PathBuf> {
        [&self.certificate, &self.private_key, &self.ca_file]
            .into_iter()
            .flatten()
            .map(|p| {
                if p.is_absolute() {
                    p.clone()
                } else {
                    base_dir.join(p)
                }
            })
            .collect()
    }
}

/// A PEM error as the operator reads it.
fn pem_error(e: rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::Io(e) => format!("cannot read: {e}"),
        Error::NoItemsFound => "no matching PEM block (BEGIN CERTIFICATE / PRIVATE KEY)".into(),
        other => format!("not valid PEM: {other}"),
    }
}

impl From<TlsFileError> for Invalid {
    fn from(e: TlsFileError) -> Invalid {
        Invalid::new(KeyPath::new(&["tls", e.key]), e.message)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{GOOD, refused_at};
    use crate::config::*;

    #[test]
    fn a_tls_listener_without_a_certificate_is_refused() {
        let text = GOOD.replace("\"tcp:127.0.0.1:5060\"]", "\"tls:127.0.0.1:5061\"]");
        let e = refused_at(&text, 3, "server.listen");
        assert!(e.contains("certificate"), "{e}");
    }

    #[test]
    fn half_a_key_pair_or_verify_client_without_a_ca_is_refused_at_its_line() {
        let text = format!("{GOOD}\n[tls]\ncertificate = \"c.pem\"\n");
        refused_at(&text, text.lines().count(), "tls.certificate");
        let text = format!("{GOOD}\n[tls]\nverify_client = true\n");
        refused_at(&text, text.lines().count(), "tls.verify_client");
    }

    #[test]
    fn an_unreadable_or_empty_certificate_names_file_line_and_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("empty.pem"), "nothing here\n").expect("write");
        std::fs::write(dir.path().join("key.pem"), "nothing here\n").expect("write");
        let manifest = dir.path().join("w.toml");
        let text =
            format!("{GOOD}\n[tls]\ncertificate = \"missing.pem\"\nprivate_key = \"key.pem\"\n");
        let e = Manifest::parse(&text, &manifest)
            .expect_err("missing file")
            .to_string();
        let line = text.lines().count() - 1;
        assert!(
            e.contains(&format!("w.toml:{line}: key `tls.certificate`"))
                && e.contains("missing.pem"),
            "{e}"
        );
        let text = text.replace("missing.pem", "empty.pem");
        let e = Manifest::parse(&text, &manifest)
            .expect_err("no certificate in it")
            .to_string();
        assert!(
            e.contains("key `tls.certificate`") && e.contains("PEM block"),
            "{e}"
        );
    }
}
