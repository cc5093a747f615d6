//! A stateless user agent server for relay benchmarks: every request but
//! ACK is answered `200 OK` at once, with Via, From, To (plus a tag),
//! Call-ID and CSeq copied. An INVITE's 200 also carries the UAS's Contact
//! and the INVITE's Record-Route set (RFC 3261 §12.1.1), so the caller's ACK
//! and BYE go back through the router. It stands behind the router under
//! test, so `--uas` runs measure request -> router -> UAS -> router -> load tool.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};

/// A running UAS; stops when dropped.
pub struct Uas {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Uas {
    /// Bind `addr` (loopback, checked by the caller) and answer in a thread.
    pub fn start(addr: SocketAddr) -> Result<Uas> {
        // Big kernel buffers, as the load socket has: a router answers a
        // receive burst with one sendmmsg, and the UAS never retransmits
        // (its 200 to an INVITE dropped on arrival is a lost call).
        let (sock, _, _) =
            crate::engine::make_socket(addr).with_context(|| format!("UAS cannot bind {addr}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), answered.clone());
        let thread = std::thread::Builder::new()
            .name("wisp-bench-uas".into())
            .spawn(move || serve(sock, &s, &n))?;
        Ok(Uas {
            stop,
            answered,
            thread: Some(thread),
        })
    }

    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

impl Drop for Uas {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(sock: UdpSocket, stop: &AtomicBool, answered: &AtomicU64) {
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::with_capacity(2048);
    let contact = match sock.local_addr() {
        Ok(a) => format!("<sip:uas@{a}>").into_bytes(),
        Err(_) => return,
    };
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if answer(&buf[..n], &contact, &mut out) && sock.send_to(&out, from).is_ok() {
            answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Build the 200 for `req` into `out`; false for ACKs, responses and junk.
/// `contact` (a name-addr) goes into the 200 to an INVITE.
pub fn answer(req: &[u8], contact: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some(head_end) = req.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let mut lines = req[..head_end].split(|b| *b == b'\n');
    let Some(first) = lines.next() else {
        return false;
    };
    if first.starts_with(b"SIP/2.0") || first.starts_with(b"ACK ") {
        return false;
    }
    let invite = first.starts_with(b"INVITE ");
    out.extend_from_slice(b"SIP/2.0 200 OK\r\n");
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        let copy = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if copy(b"via")
            || copy(b"v")
            || copy(b"from")
            || copy(b"f")
            || copy(b"call-id")
            || copy(b"i")
            || copy(b"cseq")
            || (invite && copy(b"record-route"))
        {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        } else if copy(b"to") || copy(b"t") {
            out.extend_from_slice(line);
            if !line.windows(5).any(|w| w.eq_ignore_ascii_case(b";tag=")) {
                out.extend_from_slice(b";tag=uas");
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    if invite {
        out.extend_from_slice(b"Contact: ");
        out.extend_from_slice(contact);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    true
}

#[cfg(test)]
mod tests {
    use super::answer;

    #[test]
    fn an_invite_gets_contact_and_the_record_route_set_a_bye_not() {
        let req = b"INVITE sip:uas@127.0.0.1:5090 SIP/2.0\r\nRecord-Route: <sip:127.0.0.1:5060;lr>\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nRecord-Route: <sip:127.0.0.2;lr>, <sip:127.0.0.3;lr>\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:uas@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:4000>\r\nContent-Length: 0\r\n\r\n";
        let mut out = Vec::new();
        assert!(answer(req, b"<sip:uas@127.0.0.1:5090>", &mut out));
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("Record-Route: <sip:127.0.0.1:5060;lr>\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nRecord-Route: <sip:127.0.0.2;lr>, <sip:127.0.0.3;lr>\r\n"), "{text}");
        assert!(
            text.contains("To: <sip:uas@127.0.0.1>;tag=uas\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nContact: <sip:uas@127.0.0.1:5090>\r\n"),
            "{text}"
        );
        assert!(!text.contains("sip:a@127.0.0.1:4000"), "{text}");
        let dlg = crate::dialog::dialog(&out).unwrap();
        assert_eq!(dlg.target, b"sip:uas@127.0.0.1:5090");
        assert_eq!(dlg.route.len(), 3);

        let bye = b"BYE sip:uas@127.0.0.1:5090 SIP/2.0\r\nRecord-Route: <sip:127.0.0.1:5060;lr>\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKy\r\nTo: <sip:uas@127.0.0.1>;tag=uas\r\nCSeq: 2 BYE\r\n\r\n";
        assert!(answer(bye, b"<sip:uas@127.0.0.1:5090>", &mut out));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\nVia:"), "{text}");
        assert!(
            !text.contains("Record-Route") && !text.contains("Contact"),
            "{text}"
        );
        assert!(
            text.contains("To: <sip:uas@127.0.0.1>;tag=uas\r\nCSeq: 2 BYE"),
            "{text}"
        );
    }

    #[test]
    fn answers_with_the_transaction_headers_and_a_to_tag() {
        let req = b"OPTIONS sip:uas@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nv: SIP/2.0/UDP 127.0.0.1:4000;branch=z9hG4bKy\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:uas@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 3 OPTIONS\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n";
        let mut out = Vec::new();
        assert!(answer(req, b"<sip:uas@127.0.0.1:5090>", &mut out));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nv: SIP/2.0/UDP 127.0.0.1:4000"), "{text}");
        assert!(
            text.contains("To: <sip:uas@127.0.0.1>;tag=uas\r\n"),
            "{text}"
        );
        assert!(
            text.contains("CSeq: 3 OPTIONS\r\n") && !text.contains("Max-Forwards"),
            "{text}"
        );
        assert!(!text.contains("Contact"), "{text}");
        assert!(!answer(
            b"ACK sip:x SIP/2.0\r\nVia: x\r\n\r\n",
            b"<sip:uas@h>",
            &mut Vec::new()
        ));
        assert!(!answer(
            b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n",
            b"<sip:uas@h>",
            &mut Vec::new()
        ));
    }
}
