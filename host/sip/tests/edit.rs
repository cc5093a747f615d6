//! Edits are recorded, applied once by `serialize`, and do not change reads.

mod common;

use bytes::Bytes;
use common::crlf;
use wisp_sip::Message;

const REQ: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0
Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;branch=z9hG4bK2
v: SIP/2.0/TCP c.example.com;branch=z9hG4bK3
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>
Max-Forwards: 70
To: <sip:bob@biloxi.com>
From: <sip:alice@atlanta.com>;tag=1
Call-ID: x1
CSeq: 1 INVITE
Content-Length: 4

body";

fn msg() -> Message {
    Message::parse(crlf(REQ)).unwrap()
}

#[test]
fn no_edits_returns_original() {
    let m = msg();
    assert!(!m.has_edits());
    assert_eq!(m.serialize(), *m.raw());
}

#[test]
fn proxy_forward_edits() {
    let mut m = msg();
    m.set_request_uri(Bytes::from_static(b"sip:bob@192.0.2.4:5060"));
    m.insert_via(Bytes::from_static(
        b"SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1",
    ));
    m.insert_record_route(Bytes::from_static(b"<sip:proxy.example.com;lr>"));
    m.remove_top_route().unwrap();
    m.set_max_forwards(69);
    m.append_header(
        "P-Asserted-Identity",
        Bytes::from_static(b"<sip:alice@atlanta.com>"),
    );
    m.append_raw_header_lines(Bytes::from_static(b"X-Hint: a"));
    assert!(m.has_edits());
    // Reads still see the received message (except the R-URI).
    assert_eq!(m.vias().unwrap().len(), 3);
    assert_eq!(m.routes().unwrap().len(), 2);
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert_eq!(m.request_uri().unwrap().port, Some(5060));
    assert_eq!(&m.request_uri_raw()[..], b"sip:bob@192.0.2.4:5060");
    let out = m.serialize();
    let want = "INVITE sip:bob@192.0.2.4:5060 SIP/2.0\r\n\
Record-Route: <sip:proxy.example.com;lr>\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\n\
Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;branch=z9hG4bK2\r\n\
v: SIP/2.0/TCP c.example.com;branch=z9hG4bK3\r\n\
Route: <sip:p2.example.com;lr>\r\n\
Max-Forwards: 69\r\n\
To: <sip:bob@biloxi.com>\r\n\
From: <sip:alice@atlanta.com>;tag=1\r\n\
Call-ID: x1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 4\r\n\
P-Asserted-Identity: <sip:alice@atlanta.com>\r\n\
X-Hint: a\r\n\
\r\n\
body";
    assert_eq!(std::str::from_utf8(&out).unwrap(), want);
    // Applying twice gives the same bytes (edits are not consumed).
    assert_eq!(m.serialize(), out);
    // And the result parses.
    let again = Message::parse(out).unwrap();
    assert_eq!(again.vias().unwrap().len(), 4);
    assert_eq!(again.routes().unwrap().len(), 1);
}

#[test]
fn response_via_removal_only_first_value() {
    let mut m = msg();
    m.remove_top_via().unwrap();
    let out = m.serialize();
    assert!(out.starts_with(b"INVITE sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP b.example.com;branch=z9hG4bK2\r\nv: SIP"));
    m.remove_top_via().unwrap();
    m.remove_top_via().unwrap();
    assert!(m.remove_top_via().is_err());
    let out = Message::parse(m.serialize()).unwrap();
    assert!(out.vias().unwrap().is_empty());
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK1"));
    // Inserted Vias are removed first.
    let mut m = msg();
    m.insert_via(Bytes::from_static(b"SIP/2.0/UDP me;branch=z9hG4bKme"));
    m.remove_top_via().unwrap();
    assert_eq!(
        Message::parse(m.serialize()).unwrap().vias().unwrap().len(),
        3
    );
}

#[test]
fn remove_and_replace_headers() {
    let mut m = msg();
    assert_eq!(m.remove_headers("via"), 2);
    assert_eq!(m.remove_headers("Via"), 0);
    m.replace_header("To", Bytes::from_static(b"<sip:carol@chicago.com>"));
    m.replace_header("X-New", Bytes::from_static(b"1"));
    let out = m.serialize();
    let want = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
To: <sip:carol@chicago.com>\r\n\
From: <sip:alice@atlanta.com>;tag=1\r\n\
Call-ID: x1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 4\r\n\
X-New: 1\r\n\
\r\n\
body";
    assert_eq!(std::str::from_utf8(&out).unwrap(), want);
    assert_eq!(m.to().unwrap().uri.user.as_deref(), Some("bob"));
}

#[test]
fn body_edits_recompute_content_length() {
    let mut m = msg();
    m.set_body(
        Bytes::from_static(b"v=0\r\n"),
        Some(Bytes::from_static(b"application/sdp")),
    );
    let out = m.serialize();
    assert!(out.ends_with(
        b"CSeq: 1 INVITE\r\nContent-Length: 5\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
    ));
    let p = Message::parse(out).unwrap();
    assert_eq!(&p.body()[..], b"v=0\r\n");
    assert_eq!(&m.body()[..], b"body");

    let mut m = msg();
    m.set_body(Bytes::new(), None);
    assert!(m.serialize().ends_with(b"Content-Length: 0\r\n\r\n"));
}

#[test]
fn content_length_added_when_absent() {
    let mut m = Message::parse(crlf(
        b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nCall-ID: c\n\n",
    ))
    .unwrap();
    m.set_max_forwards(10);
    assert_eq!(
        &m.serialize()[..],
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\nMax-Forwards: 10\r\nContent-Length: 0\r\n\r\n"
    );
    // Body present without Content-Length (datagram): length is written.
    let mut m = Message::parse(Bytes::from_static(
        b"MESSAGE sip:a@b SIP/2.0\nCall-ID: c\n\nhello",
    ))
    .unwrap();
    m.append_header("X", Bytes::from_static(b"y"));
    assert_eq!(
        &m.serialize()[..],
        b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: c\r\nX: y\r\nContent-Length: 5\r\n\r\nhello"
    );
}

#[test]
fn folded_headers_survive_edits() {
    let mut m = Message::parse(crlf(
        b"OPTIONS sip:a@b SIP/2.0\nSubject: one\n two\nContent-Length: 0\n\n",
    ))
    .unwrap();
    m.append_header("X", Bytes::from_static(b"1"));
    assert_eq!(
        &m.serialize()[..],
        b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n two\r\nContent-Length: 0\r\nX: 1\r\n\r\n"
    );
}

#[test]
fn set_max_forwards_values() {
    for n in [0u32, 1, 9, 10, 42, 69, 99, 100, 255, 4294967295] {
        let mut m = Message::parse(Bytes::from_static(
            b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\r\n",
        ))
        .unwrap();
        m.set_max_forwards(n);
        let out = Message::parse(m.serialize()).unwrap();
        assert_eq!(out.max_forwards().unwrap(), Some(n));
        let text = String::from_utf8(out.raw().to_vec()).unwrap();
        assert!(
            text.contains(&format!("\r\nMax-Forwards: {n}\r\n")),
            "{text}"
        );
    }
}

#[test]
fn remove_last_route_takes_one_value_from_the_last_route_header() {
    let mut m = Message::parse(crlf(
        b"ACK sip:p1.example.com SIP/2.0
Route: <sip:a.example.com;lr>
Max-Forwards: 70
Route: <sip:b.example.com;lr>, \"C, the UA\" <sip:c@example.com>
Call-ID: r1
Content-Length: 0

",
    ))
    .unwrap();
    m.remove_last_route().unwrap();
    assert!(m.serialize().starts_with(
        b"ACK sip:p1.example.com SIP/2.0\r\nRoute: <sip:a.example.com;lr>\r\nMax-Forwards: 70\r\nRoute: <sip:b.example.com;lr>\r\nCall-ID: r1\r\n"
    ));
    // Then the whole last header, then the one before it.
    m.remove_last_route().unwrap();
    m.remove_last_route().unwrap();
    assert_eq!(
        &m.serialize()[..],
        b"ACK sip:p1.example.com SIP/2.0\r\nMax-Forwards: 70\r\nCall-ID: r1\r\nContent-Length: 0\r\n\r\n"
    );
    assert!(m.remove_last_route().is_err());
    // Reads still see the received Route set.
    assert_eq!(m.routes().unwrap().len(), 3);

    // Top and last removal on one comma list leave the middle value.
    let mut m = msg();
    m.remove_top_route().unwrap();
    assert!(
        m.serialize()
            .windows(32)
            .any(|w| w == b"\r\nRoute: <sip:p2.example.com;lr>")
    );
    m.remove_last_route().unwrap();
    assert!(m.routes().is_ok());
    assert!(!m.serialize().windows(7).any(|w| w == b"Route: "));
}

/// Max-Forwards set twice, on a message with two of them, or after a
/// removal: always exactly one header with the last value, where the first
/// one was received.
#[test]
fn set_max_forwards_leaves_one_header() {
    let count = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .to_ascii_lowercase()
            .matches("max-forwards:")
            .count()
    };
    let once = "OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nCall-ID: c\r\n\r\n";
    let twice = "OPTIONS sip:h SIP/2.0\r\nMax-Forwards: 70\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nmax-forwards: 5\r\nCall-ID: c\r\n\r\n";
    for raw in [once, twice] {
        let mut m = Message::parse(Bytes::from_static(raw.as_bytes())).unwrap();
        m.set_max_forwards(69);
        m.set_max_forwards(68);
        let out = m.serialize();
        assert_eq!(count(&out), 1, "{}", String::from_utf8_lossy(&out));
        assert_eq!(
            Message::parse(out).unwrap().max_forwards().unwrap(),
            Some(68)
        );

        let mut m = Message::parse(Bytes::from_static(raw.as_bytes())).unwrap();
        m.remove_headers("Max-Forwards");
        m.set_max_forwards(3);
        let out = m.serialize();
        assert_eq!(count(&out), 1, "{}", String::from_utf8_lossy(&out));
        assert_eq!(
            Message::parse(out).unwrap().max_forwards().unwrap(),
            Some(3)
        );
    }
    // In place: where the received header was.
    let mut m = Message::parse(Bytes::from_static(once.as_bytes())).unwrap();
    m.set_max_forwards(69);
    assert_eq!(
        &m.serialize()[..],
        b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nMax-Forwards: 69\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn remove_header_at_removes_that_one_header_only() {
    let raw = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nAuthorization: Digest realm=\"a\"\r\nAuthorization: Digest realm=\"b\"\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n";
    let mut m = Message::parse(Bytes::from_static(raw.as_bytes())).unwrap();
    let second = m
        .headers()
        .iter()
        .position(|h| &h.value[..] == b"Digest realm=\"b\"")
        .unwrap();
    assert!(m.remove_header_at(second));
    assert!(!m.remove_header_at(second), "already removed");
    assert!(!m.remove_header_at(99));
    assert_eq!(
        &m.serialize()[..],
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nAuthorization: Digest realm=\"a\"\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n"
    );
}
