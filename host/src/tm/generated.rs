//! Requests the transaction layer makes itself: the hop-by-hop ACK for a
//! non-2xx final response (RFC 3261 §17.1.1.3) and the CANCEL of a pending
//! branch (§9.1). Both are built from the request as it was sent on the
//! branch, so they carry its Request-URI, top Via (same branch), Route set,
//! From, Call-ID and CSeq number.

use std::fmt::Write;

use bytes::Bytes;
use wisp_sip::{Message, ParseError};

/// ACK for `response` (a 300–699 to the INVITE `sent`): To comes from the
/// response (it carries the UAS's tag).
/// `user_agent`: the router's `User-Agent` value, if it sends one.
pub fn ack_for(
    sent: &Message,
    response: &Message,
    user_agent: Option<&str>,
) -> Result<Bytes, ParseError> {
    let to = response
        .header("To")
        .map(|h| h.value.clone())
        .ok_or(ParseError::Missing("To"))?;
    build(sent, "ACK", &to, user_agent)
}

/// CANCEL for the pending request `sent`: To as sent (no tag yet).
pub fn cancel_for(sent: &Message, user_agent: Option<&str>) -> Result<Bytes, ParseError> {
    let to = sent
        .header("To")
        .map(|h| h.value.clone())
        .ok_or(ParseError::Missing("To"))?;
    build(sent, "CANCEL", &to, user_agent)
}

fn build(
    sent: &Message,
    method: &str,
    to: &[u8],
    user_agent: Option<&str>,
) -> Result<Bytes, ParseError> {
    let top_via = sent.top_via()?;
    let from = sent
        .header("From")
        .map(|h| h.value.clone())
        .ok_or(ParseError::Missing("From"))?;
    let call_id = sent.call_id()?;
    let cseq = sent.cseq()?;
    let mut s = String::with_capacity(512);
    let ruri = String::from_utf8_lossy(&sent.request_uri_raw()).into_owned();
    // Writing to a String cannot fail.
    let _ = write!(s, "{method} {ruri} SIP/2.0\r\nVia: {top_via}\r\n");
    for route in sent.header_values("Route") {
        let _ = write!(s, "Route: {}\r\n", String::from_utf8_lossy(route));
    }
    let _ = write!(
        s,
        "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\nContent-Length: 0\r\n\r\n",
        String::from_utf8_lossy(&from),
        String::from_utf8_lossy(to),
        String::from_utf8_lossy(call_id),
        cseq.seq,
    );
    if let Some(ua) = user_agent {
        // Before the blank line that ends the headers.
        s.truncate(s.len() - 2);
        let _ = write!(s, "User-Agent: {ua}\r\n\r\n");
    }
    Ok(Bytes::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT: &str = "INVITE sip:bob@10.0.0.2:5070 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKwspT1.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKcaller;received=10.0.0.1\r\n\
Route: <sip:10.0.0.9;lr>\r\n\
Max-Forwards: 69\r\n\
From: Alice <sip:alice@a.example>;tag=a1\r\n\
To: <sip:bob@b.example>\r\n\
Call-ID: c1@a\r\n\
CSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    fn sent() -> Message {
        Message::parse(Bytes::from_static(SENT.as_bytes())).expect("parses")
    }

    #[test]
    fn rfc3261_9_1_cancel_copies_ruri_top_via_route_and_cseq_number() {
        let c = cancel_for(&sent(), None).expect("builds");
        let m = Message::parse(c).expect("CANCEL parses");
        assert!(m.header("User-Agent").is_none());
        assert_eq!(m.method(), Some(&wisp_sip::Method::Cancel));
        assert_eq!(&m.request_uri_raw()[..], b"sip:bob@10.0.0.2:5070");
        let vias = m.vias().expect("via");
        assert_eq!(vias.len(), 1, "only our Via");
        assert_eq!(vias[0].branch(), Some("z9hG4bKwspT1.0"));
        assert_eq!(m.routes().expect("route").len(), 1);
        assert_eq!(m.cseq().expect("cseq").seq, 7);
        assert_eq!(m.cseq().expect("cseq").method, wisp_sip::Method::Cancel);
        assert_eq!(m.to().expect("to").tag(), None);
        let c = cancel_for(&sent(), Some("Edge/2")).expect("builds");
        let m = Message::parse(c).expect("CANCEL with User-Agent parses");
        assert_eq!(
            m.header("User-Agent").map(|h| &h.value[..]),
            Some(&b"Edge/2"[..])
        );
        assert_eq!(m.content_length().expect("length"), Some(0));
    }

    #[test]
    fn rfc3261_17_1_1_3_ack_takes_to_tag_from_the_response() {
        let resp = Message::parse(Bytes::from_static(
            b"SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKwspT1.0\r\n\
From: Alice <sip:alice@a.example>;tag=a1\r\n\
To: <sip:bob@b.example>;tag=b9\r\n\
Call-ID: c1@a\r\n\
CSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\r\n",
        ))
        .expect("response");
        let a = Message::parse(ack_for(&sent(), &resp, Some("Edge/2")).expect("builds"))
            .expect("ACK parses");
        assert_eq!(a.method(), Some(&wisp_sip::Method::Ack));
        assert_eq!(a.to().expect("to").tag(), Some("b9"));
        assert_eq!(a.from().expect("from").tag(), Some("a1"));
        assert_eq!(a.cseq().expect("cseq").method, wisp_sip::Method::Ack);
        assert_eq!(a.vias().expect("via")[0].branch(), Some("z9hG4bKwspT1.0"));
        assert_eq!(
            a.header("User-Agent").map(|h| &h.value[..]),
            Some(&b"Edge/2"[..])
        );
    }
}
