//! SIP over WebSocket (RFC 7118): `ws:` and `wss:` listeners, with
//! tokio-tungstenite for the HTTP upgrade and the framing (wss: TLS from
//! [`super::tls`] first, with the `[tls]` certificate).
//!
//! - The upgrade must offer the `sip` subprotocol (RFC 7118 §4); it is
//!   answered in `Sec-WebSocket-Protocol`, and an upgrade without it is
//!   refused with 400 before any SIP is read.
//! - One SIP message per text or binary frame (§5.1): no Content-Length
//!   framing; a frame is handed to [`Inbound`] as a datagram would be.
//!   Messages sent to the client go as text frames (binary when a body is
//!   not UTF-8).
//! - Pings are answered with pongs; a close is answered and ends the
//!   connection.
//! - A connection is in the one table of stream connections under
//!   `(Ws|Wss, peer)`: responses, and requests to a client whose
//!   registration stored this source, go back over it. The router never
//!   opens a WebSocket connection (a browser cannot be called): a send to a
//!   WebSocket peer that is not connected fails.
//! - The `[tcp]` limits hold as for TCP: a place in the table of limits at
//!   accept (total and per IP, idle ones evicted for newcomers), the TLS
//!   and HTTP handshakes together within `message_timeout_ms`, and
//!   `idle_timeout_s` without a message closes it. A frame received in
//!   pieces is bounded by the idle deadline (the bytes of an unfinished
//!   frame are not a message) and by `server.max_message_size`.
//! - When the connection ends, the bindings registered through it go
//!   ([`Inbound::connection_closed`]): nothing else reaches them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::tcp::{self, Slot};
use super::tls::TlsContext;
use super::{Inbound, Proto, Source, Transports};

/// The subprotocol of SIP over WebSocket (RFC 7118 §4).
const SUBPROTOCOL: &str = "sip";

/// Accept WebSocket connections forever on `listener` (`proto` Ws, or Wss
/// with `tls`); what arrives on them goes to `inbound`.
pub async fn accept_loop(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    listener: TcpListener,
    proto: Proto,
    tls: Option<Arc<TlsContext>>,
) {
    let what = if proto == Proto::Wss { "wss" } else { "ws" };
    tcp::accept_with(
        transports,
        inbound,
        listener,
        what,
        move |t, i, stream, remote, slot| {
            tokio::spawn(serve_accepted(
                t,
                i,
                stream,
                remote,
                slot,
                proto,
                tls.clone(),
            ));
        },
    )
    .await
}

/// Whether the upgrade offers `sip` among its subprotocols (one header
/// with a comma-separated list, or several headers).
fn offers_sip(req: &Request) -> bool {
    req.headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL))
}

/// The handshake callback: answer `sip`, or refuse the upgrade.
#[allow(clippy::result_large_err)] // tungstenite's callback signature
fn choose_subprotocol(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    if !offers_sip(req) {
        let mut refused = ErrorResponse::new(Some(
            "SIP over WebSocket needs the \"sip\" subprotocol (RFC 7118)\n".to_owned(),
        ));
        *refused.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refused);
    }
    resp.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(resp)
}

fn ws_config(transports: &Transports) -> WebSocketConfig {
    let max = transports.max_message_size();
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// TLS (wss) and the HTTP upgrade within `tcp.message_timeout_ms`, then
/// serve the connection.
async fn serve_accepted(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    stream: TcpStream,
    remote: SocketAddr,
    slot: Slot,
    proto: Proto,
    tls: Option<Arc<TlsContext>>,
) {
    let Some(local) = tcp::accepted_local(&stream, proto, remote) else {
        return;
    };
    let config = Some(ws_config(&transports));
    let source = Source {
        proto,
        remote,
        local,
    };
    let upgrade = async {
        match tls {
            Some(tls) => {
                let stream = tls
                    .acceptor()
                    .accept(stream)
                    .await
                    .map_err(|e| format!("tls: {e}"))?;
                let ws = tokio_tungstenite::accept_hdr_async_with_config(
                    stream,
                    choose_subprotocol,
                    config,
                )
                .await
                .map_err(|e| format!("websocket upgrade refused: {e}"))?;
                Ok::<_, String>(Either::Tls(Box::new(ws)))
            }
            None => {
                let ws = tokio_tungstenite::accept_hdr_async_with_config(
                    stream,
                    choose_subprotocol,
                    config,
                )
                .await
                .map_err(|e| format!("websocket upgrade refused: {e}"))?;
                Ok(Either::Plain(Box::new(ws)))
            }
        }
    };
    let Some(ws) = tcp::handshake(&transports, &slot, proto, remote, upgrade).await else {
        return;
    };
    match ws {
        Either::Plain(ws) => serve(transports, inbound, *ws, source, slot).await,
        Either::Tls(ws) => serve(transports, inbound, *ws, source, slot).await,
    }
}

/// An upgraded connection, plain or over TLS.
enum Either {
    Plain(Box<WebSocketStream<TcpStream>>),
    Tls(Box<WebSocketStream<tokio_rustls::server::TlsStream<TcpStream>>>),
}

/// The frame a SIP message goes in: text when it is UTF-8 (what browsers'
/// SIP stacks expect), binary otherwise (RFC 7118 §5.1 allows both).
fn frame_of(data: Bytes) -> Message {
    match Utf8Bytes::try_from(data.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(data),
    }
}

/// Serve one upgraded connection until it ends: hand each data frame to
/// `inbound`, write what is queued for the peer, answer pings and close,
/// and enforce the idle deadline. One task: what is written and what is
/// read take turns, so a reply to a ping is never stuck behind a read.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    mut ws: WebSocketStream<S>,
    source: Source,
    slot: Slot,
) {
    let Source { proto, remote, .. } = source;
    let (tx, mut rx) = tcp::register(&transports, proto, remote);
    let idle = Duration::from_secs(transports.tcp_table().config.idle_timeout_s);
    let mut last_message = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = tcp::closing(Some(&slot)) => {
                tracing::debug!(%remote, "{proto} connection idle at the connection limit: closed");
                break;
            }
            out = rx.recv() => {
                let Some(data) = out else { break };
                if let Err(e) = ws.feed(frame_of(data)).await {
                    tracing::debug!(%remote, "{proto} write: {e}");
                    break;
                }
                // Whatever else is queued goes with it, then one flush.
                let mut failed = false;
                while let Ok(data) = rx.try_recv() {
                    if let Err(e) = ws.feed(frame_of(data)).await {
                        tracing::debug!(%remote, "{proto} write: {e}");
                        failed = true;
                        break;
                    }
                }
                if failed || ws.flush().await.is_err() {
                    break;
                }
            }
            read = tokio::time::timeout_at(last_message + idle, ws.next()) => {
                let msg = match read {
                    Err(_) => {
                        tracing::debug!(%remote, "{proto} connection idle for {idle:?}: closed");
                        let _ = ws.close(None).await;
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        crate::log_limited!(info, %remote, "{proto} read: {e}");
                        break;
                    }
                    Ok(Some(Ok(msg))) => msg,
                };
                let data = match msg {
                    Message::Text(t) => Bytes::from(t),
                    Message::Binary(b) => b,
                    Message::Ping(_) => {
                        // tungstenite queued the pong: send it now.
                        last_message = Instant::now();
                        slot.update(last_message, true, false);
                        if ws.flush().await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Message::Pong(_) | Message::Frame(_) => continue,
                    Message::Close(_) => {
                        // The close reply is queued; it leaves with the flush
                        // and the stream then ends.
                        let _ = ws.flush().await;
                        continue;
                    }
                };
                last_message = Instant::now();
                slot.update(last_message, true, false);
                // A frame of blank lines is a keepalive, not a message.
                if data.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                inbound.receive(data, source);
            }
        }
    }
    drop(slot);
    transports.forget_connection_of((proto, remote), &tx);
    inbound.connection_closed(source);
}
