//! TCP: accept loop, one task per connection reading framed messages
//! (Content-Length framing, RFC 3261 §18.3) and a writer task fed by a queue,
//! so that replies and forwards from any task reach the connection in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use wisp_sip::StreamFramer;

use super::{ConnectionHandle, Inbound, Proto, Source, Transports};

/// Most accepted connections served at once; past it new ones wait in the
/// kernel's backlog instead of exhausting descriptors.
const MAX_CONNECTIONS: usize = 4096;

/// A connection that carries nothing (not even a CRLF keepalive) for this
/// long is closed (Kamailio `tcp_connection_lifetime`).
const IDLE_LIFETIME: Duration = Duration::from_secs(120);

/// Accept connections forever; what arrives on them goes to `inbound`.
pub async fn accept_loop(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    listener: TcpListener,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, remote)) => {
                let (transports, inbound) = (transports.clone(), inbound.clone());
                tokio::spawn(async move {
                    serve_connection(transports, inbound, stream, remote).await;
                    drop(permit);
                });
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
    let inbound = transports
        .inbound()
        .ok_or_else(|| std::io::Error::other("router is shutting down"))?;
    let stream = TcpStream::connect(dest).await?;
    let (handle, rx) = register(&transports, &stream, dest)?;
    let _ = handle.tx.send(first);
    tokio::spawn(read_connection(
        transports.clone(),
        inbound,
        stream,
        dest,
        handle.local,
        rx,
    ));
    Ok(())
}

async fn serve_connection(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    stream: TcpStream,
    remote: SocketAddr,
) {
    match register(&transports, &stream, remote) {
        // Only the connection map keeps a sender: when the connection is
        // forgotten, the writer drains its queue and ends.
        Ok((handle, rx)) => {
            let local = handle.local;
            drop(handle);
            read_connection(transports, inbound, stream, remote, local, rx).await
        }
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
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    stream: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    rx: mpsc::UnboundedReceiver<Bytes>,
) {
    let (mut reader, writer) = stream.into_split();
    let writer_task = tokio::spawn(write_connection(writer, rx));
    let mut framer = StreamFramer::new(transports.max_message_size());
    let source = Source {
        proto: Proto::Tcp,
        remote,
        local,
    };
    'conn: loop {
        // Hand over every complete message already buffered before reading more.
        loop {
            match framer.next_message() {
                Ok(Some(msg)) => inbound.receive(msg, source),
                Ok(None) => break,
                Err(e) => {
                    // A stream that cannot be framed cannot be resynchronised:
                    // end this connection only.
                    tracing::warn!(%remote, "tcp framing: {e}; closing connection");
                    break 'conn;
                }
            }
        }
        for _ in 0..framer.take_pings() {
            // RFC 5626 §3.5.1: answer a CRLFCRLF ping with a CRLF pong.
            let pong = Bytes::from_static(b"\r\n");
            if transports.send(Proto::Tcp, remote, None, pong).is_err() {
                break 'conn;
            }
        }
        match tokio::time::timeout(IDLE_LIFETIME, reader.read_buf(framer.buffer_mut())).await {
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%remote, "tcp read: {e}");
                break;
            }
            Err(_) => {
                tracing::debug!(%remote, "tcp connection idle for {IDLE_LIFETIME:?}: closed");
                break;
            }
        }
    }
    // Let the writer drain what is queued (a reply to the last request), but
    // not wait on a peer that stopped reading.
    transports.forget_connection(&remote);
    let abort = writer_task.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), writer_task)
        .await
        .is_err()
    {
        abort.abort();
    }
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
