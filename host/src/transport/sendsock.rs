//! A TCP stream that writes with `send(2)` / `sendmsg(2)` instead of
//! `write(2)` / `writev(2)`.
//!
//! mio writes a socket through the file layer (`writev` for the vectored
//! writes rustls makes). On Linux that path costs more than the socket
//! calls: a profile of the TLS benchmark showed `vfs_writev` alone at 2.4%
//! of the router's core, against 0.3% for Kamailio's `send`. Reads stay
//! as they are.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// `stream`, written with the socket calls.
#[derive(Debug)]
pub(crate) struct SendSocket(pub(crate) TcpStream);

impl SendSocket {
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        send: impl Fn(SockRef<'_>) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self
                .0
                .try_io(Interest::WRITABLE, || send(SockRef::from(&self.0)))
            {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

impl AsyncRead for SendSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // socket2 adds MSG_NOSIGNAL on Linux.
        self.poll_send(cx, |s| s.send(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match bufs {
            [one] => self.poll_send(cx, |s| s.send(one)),
            _ => self.poll_send(cx, |s| s.send_vectored(bufs)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What is written whole, in pieces and vectored arrives in order, and
    /// a shutdown ends the peer's stream.
    #[tokio::test]
    async fn bytes_written_any_way_arrive_in_order_and_shutdown_ends_the_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = SendSocket(TcpStream::connect(addr).await.unwrap());
            s.write_all(b"INVITE ").await.unwrap();
            let parts = [IoSlice::new(b"sip:bob"), IoSlice::new(b"@example.com")];
            let n = s.write_vectored(&parts).await.unwrap();
            assert_eq!(n, 19, "a short vectored write on an idle loopback socket");
            s.write_all(b" SIP/2.0\r\n").await.unwrap();
            s.shutdown().await.unwrap();
        });
        let (mut server, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        client.await.unwrap();
        assert_eq!(got, b"INVITE sip:bob@example.com SIP/2.0\r\n");
    }
}
