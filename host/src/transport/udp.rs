//! UDP receive loop: one datagram is one SIP message.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
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
    // One slab per loop; each datagram is split off so the message owns its
    // bytes without a copy.
    let limit = router.transports().max_message_size();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        // Receive into spare capacity (no zeroing of 64 KB per datagram);
        // one byte more than the limit tells an oversize datagram apart.
        buf.clear();
        buf.reserve(limit + 1);
        let (n, remote) = match sock.recv_buf_from(&mut (&mut buf).limit(limit + 1)).await {
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
        let data = buf.split_to(n).freeze();
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
