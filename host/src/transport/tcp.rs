//! TCP: accept loop, one task per connection reading framed messages
//! (Content-Length framing, RFC 3261 §18.3) and a writer task fed by a queue,
//! so that replies and forwards from any task reach the connection in order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wisp_sip::StreamFramer;

use super::{ConnectionHandle, Proto, Source, Transports};
use crate::router::Router;

/// Accept connections forever.
pub async fn accept_loop(router: Arc<Router>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let router = router.clone();
                tokio::spawn(async move { serve_connection(router, stream, remote).await });
            }
            Err(e) => {
                // Out of descriptors and similar: back off instead of spinning.
                tracing::warn!("tcp accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Open a connection to `dest`, send `first`, then serve it like an accepted one
/// (the peer answers on it).
pub(crate) async fn connect_and_send(
    transports: Arc<Transports>,
    dest: SocketAddr,
    first: Bytes,
) -> std::io::Result<()> {
    let router = transports
        .router()
        .ok_or_else(|| std::io::Error::other("router is shutting down"))?;
    let stream = TcpStream::connect(dest).await?;
    let (handle, rx) = register(&transports, &stream, dest)?;
    let _ = handle.tx.send(first);
    tokio::spawn(read_connection(router, stream, dest, handle.local, rx));
    Ok(())
}

async fn serve_connection(router: Arc<Router>, stream: TcpStream, remote: SocketAddr) {
    match register(router.transports(), &stream, remote) {
        Ok((handle, rx)) => read_connection(router, stream, remote, handle.local, rx).await,
        Err(e) => tracing::debug!(%remote, "tcp setup: {e}"),
    }
}

/// Make the connection reachable for sends to `remote`; returns the queue its
/// writer drains.
fn register(
    transports: &Transports,
    stream: &TcpStream,
    remote: SocketAddr,
) -> std::io::Result<(ConnectionHandle, mpsc::UnboundedReceiver<Bytes>)> {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = ConnectionHandle { tx, local };
    transports.register_connection(remote, handle.clone());
    Ok((handle, rx))
}

async fn read_connection(
    router: Arc<Router>,
    stream: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    rx: mpsc::UnboundedReceiver<Bytes>,
) {
    let (mut reader, writer) = stream.into_split();
    let writer_task = tokio::spawn(write_connection(writer, rx));
    let mut framer = StreamFramer::new(router.transports().max_message_size());
    let source = Source {
        proto: Proto::Tcp,
        remote,
        local,
    };
    'conn: loop {
        // Hand over every complete message already buffered before reading more.
        loop {
            match framer.next_message() {
                Ok(Some(msg)) => router.handle_incoming(msg, source),
                Ok(None) => break,
                Err(e) => {
                    // A stream that cannot be framed cannot be resynchronised:
                    // end this connection only.
                    tracing::warn!(%remote, "tcp framing: {e}; closing connection");
                    break 'conn;
                }
            }
        }
        match reader.read_buf(framer.buffer_mut()).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(%remote, "tcp read: {e}");
                break;
            }
        }
    }
    router.transports().forget_connection(&remote);
    writer_task.abort();
}

async fn write_connection(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) {
    while let Some(data) = rx.recv().await {
        if let Err(e) = writer.write_all(&data).await {
            tracing::debug!("tcp write: {e}");
            break;
        }
    }
}
