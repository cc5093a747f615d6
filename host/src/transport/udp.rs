//! UDP receive loop: one datagram is one SIP message.

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::{Proto, Source};
use crate::router::Router;

/// Receive datagrams on `sock` forever and hand each to the router. Several
/// of these run per socket (one per worker); the kernel spreads datagrams.
pub async fn receive_loop(router: Arc<Router>, sock: Arc<UdpSocket>) {
    let local = match sock.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("udp socket without local address: {e}");
            return;
        }
    };
    // One receive buffer per loop, reused; each datagram is copied out at
    // its exact size. Splitting a shared slab instead (zero-copy) made every
    // datagram allocate a fresh 64 KB slab — `reserve(limit + 1)` cannot
    // reuse a slab the previous message still holds — and a transaction that
    // kept its request kept the whole slab alive.
    let limit = router.transports().max_message_size();
    let mut buf = vec![0u8; limit + 1];
    loop {
        // One byte more than the limit tells an oversize datagram apart.
        let (n, remote) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP port unreachable from an earlier send surfaces here on
                // Linux; it concerns that peer only.
                tracing::debug!("udp recv: {e}");
                continue;
            }
        };
        if n > limit {
            tracing::warn!(%remote, "datagram over max_message_size ({limit} bytes) dropped");
            continue;
        }
        let data = Bytes::copy_from_slice(&buf[..n]);
        router.handle_incoming(
            data,
            Source {
                proto: Proto::Udp,
                remote,
                local,
            },
        );
    }
}
