//! The least a UDP SIP responder can cost on this machine: `recvmmsg` a
//! burst, answer each datagram `200 OK` by copying its Via, From, To,
//! Call-ID and CSeq lines (no parse, no checks, no routing), `sendmmsg` the
//! burst. `scripts/bench-options.sh --floor` runs it beside Kamailio and
//! Wisp: its CPU per request is the kernel's share that every router pays
//! for a datagram in and a datagram out on loopback.
//!
//! Usage: `udp_floor <port>` (binds 127.0.0.1:<port>, runs until killed).

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

const BURST: usize = 32;
const SIZE: usize = 4096;

fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "usage: udp_floor <port>"))?;
    let sock = UdpSocket::bind(("127.0.0.1", port))?;
    let fd = sock.as_raw_fd();
    // The receive buffer the router asks for too (4 MB), so a window of
    // 256 is not dropped at the socket.
    let size: libc::c_int = 4 << 20;
    // SAFETY: setsockopt on a valid socket with a c_int value.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let mut input = vec![[0u8; SIZE]; BURST];
    let mut output: Vec<Vec<u8>> = (0..BURST).map(|_| Vec::with_capacity(SIZE)).collect();
    // SAFETY: all-zero is a valid sockaddr_storage, iovec and mmsghdr.
    let mut from: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BURST];
    let mut in_iov: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BURST];
    let mut out_iov: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BURST];
    let mut in_msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BURST];
    let mut out_msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BURST];
    loop {
        for i in 0..BURST {
            in_iov[i] = libc::iovec {
                iov_base: input[i].as_mut_ptr().cast(),
                iov_len: SIZE,
            };
            let h = &mut in_msgs[i].msg_hdr;
            h.msg_name = (&mut from[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut in_iov[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: the headers point at buffers that live across the call.
        // MSG_WAITFORONE: block for the first datagram only, then take what is queued.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                in_msgs.as_mut_ptr(),
                BURST as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue;
        }
        let n = n as usize;
        for i in 0..n {
            let len = in_msgs[i].msg_len as usize;
            answer(&input[i][..len], &mut output[i]);
            out_iov[i] = libc::iovec {
                iov_base: output[i].as_mut_ptr().cast(),
                iov_len: output[i].len(),
            };
            let h = &mut out_msgs[i].msg_hdr;
            h.msg_name = (&mut from[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = in_msgs[i].msg_hdr.msg_namelen;
            h.msg_iov = &mut out_iov[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: as above; the answers live until the next burst.
        unsafe { libc::sendmmsg(fd, out_msgs.as_mut_ptr(), n as u32, 0) };
    }
}

/// `200 OK` with the request's Via, From, To, Call-ID and CSeq lines.
fn answer(request: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"SIP/2.0 200 OK\r\n");
    let mut lines = request.split(|&b| b == b'\n').skip(1);
    for line in lines.by_ref() {
        if line == b"\r" || line.is_empty() {
            break;
        }
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        if [&b"Via"[..], b"From", b"To", b"Call-ID", b"CSeq"]
            .iter()
            .any(|h| name.trim_ascii().eq_ignore_ascii_case(h))
        {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
}
