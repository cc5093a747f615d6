//! The management socket: a Unix socket served on the router's runtime.
//! Only the owner of the router may use it (mode 0600): it changes who
//! receives whose calls.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{Request, Response, handle, loggable};
use crate::router::Router;

/// Most bytes one connection may send: a management client sends a few
/// short lines, anything else is cut off.
const MAX_REQUEST: u64 = 64 * 1024;

/// Why the socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: another wisp is serving this management socket")]
    InUse { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The bound socket; the file is removed when this is dropped.
pub struct CtlSocket {
    path: PathBuf,
}

impl Drop for CtlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Bind `path` (creating its directory) and serve requests on the current
/// runtime. A socket file left by a router that was killed is replaced; one
/// that still answers is refused.
pub fn serve(router: Arc<Router>, path: &Path) -> Result<CtlSocket, ServeError> {
    let io = |source| ServeError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::InUse {
                path: path.to_owned(),
            });
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    tokio::spawn(accept_loop(router, listener));
    Ok(CtlSocket {
        path: path.to_owned(),
    })
}

async fn accept_loop(router: Arc<Router>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(router.clone(), stream));
            }
            Err(e) => {
                tracing::warn!("management socket: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Requests of one client, one per line, until it closes.
async fn connection(router: Arc<Router>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_REQUEST)).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("management socket: {e}");
                return;
            }
        };
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                tracing::info!(args = ?loggable(&request.args), "management command");
                handle(&router, request).await
            }
            Err(e) => Response {
                ok: false,
                output: String::new(),
                error: format!("not a request: {e}"),
            },
        };
        let mut text = match serde_json::to_string(&response) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("management socket: cannot encode a response: {e}");
                return;
            }
        };
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}
