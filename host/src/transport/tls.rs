//! TLS (RFC 3261 §26.2, RFC 5630): `tls:` listeners and the TLS
//! connections the router opens, with rustls on the `ring` provider.
//!
//! An accepted connection takes its place in the `[tcp]` table of limits
//! first, then shakes hands within `tcp.message_timeout_ms` (a client that
//! opens a connection and never finishes its handshake costs no more than
//! one that never finishes a message); after the handshake it is served by
//! [`tcp::serve_stream`] exactly like TCP: the same framing, deadlines,
//! keepalive answer and connection table, with `proto` TLS.
//!
//! The certificate lives in a [`TlsContext`] whose rustls configurations
//! are swapped whole on reload (`wisp ctl tls reload`, or a change of one of
//! its files, see [`watch`]): a handshake takes the configuration current
//! when it starts, so open connections are untouched and new handshakes see
//! the new certificate. A reload that fails (unreadable file, key not
//! matching the certificate) keeps what was loaded and says why.
//!
//! Connections the router opens verify the peer's certificate against the
//! name of the URI the request goes to (or its IP address), using
//! `[tls] ca_file` when given, else the Mozilla roots of `webpki-roots`;
//! a peer that fails verification fails the connection, and the branch
//! times out as for an unreachable TCP peer.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use notify::{EventKind, RecursiveMode, Watcher};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use super::sendsock::SendSocket;
use super::tcp::{self, Slot};
use super::{Inbound, Proto, Transports};
use crate::config::{TlsConfig, TlsFileError};
use crate::util::lock;

/// Why TLS could not be set up from `[tls]`'s files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    File(#[from] TlsFileError),
    #[error("tls.{key}: {message}")]
    Rustls { key: &'static str, message: String },
}

/// What `wisp ctl tls show` and a reload report.
#[derive(Debug, Clone)]
pub struct TlsStatus {
    /// First 16 hex digits of the SHA-256 of the leaf certificate the
    /// listeners present.
    pub fingerprint: String,
    pub loaded_at: SystemTime,
    pub reloads: u64,
    /// Why the last reload was refused, when it was.
    pub last_error: Option<String>,
}

/// The certificates and trust of TLS, swapped whole on reload.
pub struct TlsContext {
    config: TlsConfig,
    base_dir: PathBuf,
    server: ArcSwap<ServerConfig>,
    client: ArcSwap<ClientConfig>,
    status: Mutex<TlsStatus>,
    /// One reload at a time (ctl and the file watch may race).
    reloading: Mutex<()>,
}

/// The rustls configurations built from one reading of the files.
struct Built {
    server: ServerConfig,
    client: ClientConfig,
    fingerprint: String,
}

/// rustls on `ring`: it builds with a C compiler alone, where the default
/// provider (aws-lc-rs) needs cmake and, for some targets, nasm. rustls
/// marks it deprecated for lacking post-quantum key exchange (X25519MLKEM768);
/// the classical groups it has are what SIP peers negotiate today.
///
/// Key exchange prefers X25519, then P-256, as OpenSSL, browsers and SIP
/// stacks do. rustls's ring list starts with P-384, which ring computes
/// without its fast assembly (six-limb numbers): a handshake on it cost
/// three times the CPU of one on X25519 (scripts/bench-tls.sh).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    Arc::new(rustls::crypto::CryptoProvider {
        kx_groups: vec![X25519, SECP256R1, SECP384R1],
        ..rustls::crypto::ring::default_provider()
    })
}

fn build(config: &TlsConfig, base_dir: &Path) -> Result<Built, TlsError> {
    let material = config.load(base_dir)?;
    let rustls_err = |key: &'static str| {
        move |e: rustls::Error| TlsError::Rustls {
            key,
            message: e.to_string(),
        }
    };
    let mut ca = RootCertStore::empty();
    for cert in &material.ca {
        ca.add(cert.clone()).map_err(rustls_err("ca_file"))?;
    }
    let ca = Arc::new(ca);
    let (Some(key), Some(leaf)) = (material.key, material.chain.first().cloned()) else {
        return Err(TlsError::Rustls {
            key: "certificate",
            message: "a TLS listener needs certificate and private_key".into(),
        });
    };
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("certificate"))?;
    let server = if config.verify_client {
        let verifier = WebPkiClientVerifier::builder_with_provider(ca.clone(), provider())
            .build()
            .map_err(|e| TlsError::Rustls {
                key: "ca_file",
                message: e.to_string(),
            })?;
        server.with_client_cert_verifier(verifier)
    } else {
        server.with_no_client_auth()
    };
    let mut server = server
        .with_single_cert(material.chain.clone(), key.clone_key())
        .map_err(rustls_err("private_key"))?;
    // No TLS 1.3 session tickets after the handshake: SIP clients that read
    // one record and expect their response in it (sipsak 0.9.8 on GnuTLS)
    // take the ticket for an empty answer and give up. A SIP connection
    // lives for hours, so resumption saves little; TLS 1.2 clients still
    // resume by session ID.
    server.send_tls13_tickets = 0;
    // What the router trusts when it connects: the CA file, else the
    // Mozilla roots. It presents its own certificate when asked (peers that
    // require client certificates, RFC 5922 §7.4 mutual authentication).
    let roots = if material.ca.is_empty() {
        Arc::new(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
    } else {
        ca
    };
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("certificate"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(material.chain, key)
        .map_err(rustls_err("private_key"))?;
    Ok(Built {
        server,
        client,
        fingerprint: fingerprint(&leaf),
    })
}

/// First 16 hex digits of the SHA-256 of `cert` (what `openssl x509
/// -fingerprint -sha256` starts with, without the colons).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TlsContext {
    /// Read `config`'s files (relative to `base_dir`) and build the
    /// listeners' and the client's configurations.
    pub fn new(config: &TlsConfig, base_dir: &Path) -> Result<Arc<TlsContext>, TlsError> {
        let built = build(config, base_dir)?;
        Ok(Arc::new(TlsContext {
            config: config.clone(),
            base_dir: base_dir.to_path_buf(),
            server: ArcSwap::from_pointee(built.server),
            client: ArcSwap::from_pointee(built.client),
            status: Mutex::new(TlsStatus {
                fingerprint: built.fingerprint,
                loaded_at: SystemTime::now(),
                reloads: 0,
                last_error: None,
            }),
            reloading: Mutex::new(()),
        }))
    }

    /// Read the files again: new handshakes use what they hold from now on,
    /// open connections keep theirs. On error nothing changes. Blocking
    /// (file reads): not on a receive task.
    pub fn reload(&self) -> Result<TlsStatus, TlsError> {
        let _one = lock(&self.reloading);
        match build(&self.config, &self.base_dir) {
            Ok(built) => {
                self.server.store(Arc::new(built.server));
                self.client.store(Arc::new(built.client));
                let mut status = lock(&self.status);
                let n = status.reloads + 1;
                *status = TlsStatus {
                    fingerprint: built.fingerprint,
                    loaded_at: SystemTime::now(),
                    reloads: n,
                    last_error: None,
                };
                tracing::info!(
                    fingerprint = %status.fingerprint,
                    "tls: certificate reloaded; new handshakes use it"
                );
                Ok(status.clone())
            }
            Err(e) => {
                tracing::warn!("tls: reload refused, the loaded certificate stays: {e}");
                lock(&self.status).last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The certificate serving now, and how the last reload went.
    pub fn status(&self) -> TlsStatus {
        lock(&self.status).clone()
    }

    /// The files a change of which triggers a reload.
    pub fn files(&self) -> Vec<PathBuf> {
        self.config.files(&self.base_dir)
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server.load_full())
    }

    fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.client.load_full())
    }
}

/// Accept TLS connections forever on `listener`; what arrives on them goes
/// to `inbound` as from proto TLS.
pub async fn accept_loop(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    listener: TcpListener,
    tls: Arc<TlsContext>,
) {
    tcp::accept_with(
        transports,
        inbound,
        listener,
        "tls",
        move |t, i, stream, remote, slot| {
            tokio::spawn(serve_accepted(t, i, stream, remote, slot, tls.clone()));
        },
    )
    .await
}

/// Shake hands, then serve the connection like a TCP one.
async fn serve_accepted(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    stream: TcpStream,
    remote: SocketAddr,
    slot: Slot,
    tls: Arc<TlsContext>,
) {
    let Some(local) = tcp::accepted_local(&stream, Proto::Tls, remote) else {
        return;
    };
    let accept = tls.acceptor().accept(SendSocket(stream));
    let Some(stream) = tcp::handshake(&transports, &slot, Proto::Tls, remote, accept).await else {
        return;
    };
    let stream = TlsStream::from(stream);
    tcp::serve_registered(transports, inbound, Proto::Tls, stream, remote, local, slot).await
}

/// Open a TLS connection to `dest`, verifying its certificate against
/// `peer_name` (a host name or IP address; `dest`'s IP address when none),
/// then serve it like an accepted one. `tx`/`rx` as in [`tcp::connect`].
pub(crate) async fn connect(
    transports: Arc<Transports>,
    dest: SocketAddr,
    peer_name: Option<&str>,
    tx: mpsc::UnboundedSender<Bytes>,
    rx: mpsc::UnboundedReceiver<Bytes>,
) -> std::io::Result<()> {
    let inbound = transports
        .inbound()
        .ok_or_else(|| std::io::Error::other("router is shutting down"))?;
    let tls = transports
        .tls()
        .ok_or_else(|| std::io::Error::other("no [tls] configured"))?
        .clone();
    let name = match peer_name.map(|n| n.trim_matches(['[', ']'])) {
        Some(n) => ServerName::try_from(n.to_owned()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{n:?}: {e}"))
        })?,
        None => ServerName::IpAddress(dest.ip().into()),
    };
    let stream = tcp::connect_tcp(&transports, dest).await?;
    let local = stream.local_addr()?;
    let limit = transports.tcp_table().config.connect_timeout_ms;
    let shown = format!("{name:?}");
    let stream = tokio::time::timeout(
        Duration::from_millis(limit),
        tls.connector().connect(name, SendSocket(stream)),
    )
    .await
    .map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no TLS handshake within tcp.connect_timeout_ms ({limit} ms)"),
        )
    })?
    .map_err(|e| std::io::Error::new(e.kind(), format!("TLS handshake as {shown}: {e}")))?;
    tokio::spawn(tcp::serve_stream(
        transports,
        inbound,
        Proto::Tls,
        TlsStream::from(stream),
        dest,
        local,
        tx,
        rx,
        None,
    ));
    Ok(())
}

/// How long the files must stay unchanged before they are read.
const QUIET: Duration = Duration::from_millis(250);

/// Keeps the watch alive; dropping it stops watching.
pub struct TlsWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Reload `tls` when one of its files changes. The directories are
/// watched, not the files, so that a certificate deployed by rename (or by
/// a tool replacing a symbolic link, as certbot does) is seen; events are
/// gathered until the files have been quiet for [`QUIET`], so a certificate
/// and key written one after the other cause one reload. Must run inside
/// the router's runtime.
pub fn watch(tls: Arc<TlsContext>) -> Result<TlsWatcher, notify::Error> {
    let mut files = Vec::new();
    let mut dirs = BTreeSet::new();
    for f in tls.files() {
        let (Some(dir), Some(name)) = (f.parent(), f.file_name()) else {
            continue;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let dir = dir.canonicalize().map_err(notify::Error::io)?;
        files.push(dir.join(name));
        dirs.insert(dir);
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("tls watch: {e}");
                return;
            }
        };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        if event.paths.iter().any(|p| files.contains(p)) {
            let _ = tx.send(());
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        tracing::info!(dir = %dir.display(), "watching TLS certificate files");
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            loop {
                match tokio::time::timeout(QUIET, rx.recv()).await {
                    Ok(Some(())) => {}
                    Ok(None) => return,
                    Err(_quiet) => break,
                }
            }
            let tls = tls.clone();
            // The outcome is logged by `reload`.
            let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
        }
    });
    Ok(TlsWatcher { _watcher: watcher })
}
