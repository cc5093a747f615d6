//! Building responses: exact bytes.

mod common;

use common::crlf;
use wisp_sip::{Message, ReplyOptions, build_reply};

const REQ: &[u8] = b"REGISTER sip:registrar.biloxi.com SIP/2.0
Via: SIP/2.0/UDP bobspc.biloxi.com:5060;rport;branch=z9hG4bKnashds7 , SIP/2.0/UDP relay.example.com;branch=z9hG4bK2
Via: SIP/2.0/TCP second.example.com;branch=z9hG4bK3
Max-Forwards: 70
To:  Bob <sip:bob@biloxi.com>
From: Bob <sip:bob@biloxi.com>;tag=456248
Call-ID: 843817637684230@998sdasdh09
CSeq: 1826 REGISTER
Contact: <sip:bob@192.0.2.4>
Expires: 7200
Content-Length: 0

";

#[test]
fn reply_with_received_rport_tag() {
    let req = Message::parse(crlf(REQ)).unwrap();
    let opts = ReplyOptions {
        to_tag: Some("2493k59kd"),
        top_via_received: Some("192.0.2.4"),
        top_via_rport: Some(5070),
        extra_headers: &[("Contact", "<sip:bob@192.0.2.4>;expires=7200")],
        server: Some("Wisp"),
        ..Default::default()
    };
    let out = build_reply(&req, 200, "OK", &opts).unwrap();
    let want = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP bobspc.biloxi.com:5060;rport=5070;branch=z9hG4bKnashds7;received=192.0.2.4, SIP/2.0/UDP relay.example.com;branch=z9hG4bK2\r\n\
Via: SIP/2.0/TCP second.example.com;branch=z9hG4bK3\r\n\
From: Bob <sip:bob@biloxi.com>;tag=456248\r\n\
To: Bob <sip:bob@biloxi.com>;tag=2493k59kd\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4>;expires=7200\r\n\
Server: Wisp\r\n\
Content-Length: 0\r\n\
\r\n";
    assert_eq!(std::str::from_utf8(&out).unwrap(), want);
    let r = Message::parse(out).unwrap();
    assert_eq!(r.status(), Some(200));
    let v = r.top_via().unwrap();
    assert_eq!(
        (v.rport(), v.received()),
        (Some(Some(5070)), Some("192.0.2.4"))
    );
    assert_eq!(r.vias().unwrap().len(), 3);
}

#[test]
fn reply_plain_copies_raw_and_keeps_existing_tag() {
    let req = Message::parse(crlf(
        b"OPTIONS sip:a@b SIP/2.0\nv: SIP/2.0/UDP h;branch=z9hG4bK1\nt: <sip:a@b>;tag=x\nf: <sip:c@d>;tag=y\ni: cid\nCSeq: 2 OPTIONS\n\n",
    ))
    .unwrap();
    let opts = ReplyOptions {
        to_tag: Some("zzz"),
        body: Some(("text/plain", b"hi")),
        ..Default::default()
    };
    let out = build_reply(&req, 404, "Not Found", &opts).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "SIP/2.0 404 Not Found\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:c@d>;tag=y\r\nt: <sip:a@b>;tag=x\r\ni: cid\r\nCSeq: 2 OPTIONS\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    );
}

#[test]
fn reply_rport_absent_not_added_and_errors() {
    let req = Message::parse(crlf(
        b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nTo: sip:a@b\nCall-ID: c\n\n",
    ))
    .unwrap();
    let opts = ReplyOptions {
        to_tag: Some("t1"),
        top_via_rport: Some(1),
        top_via_received: Some("10.0.0.1"),
        ..Default::default()
    };
    let out = build_reply(&req, 100, "Trying", &opts).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1;received=10.0.0.1\r\nTo: sip:a@b;tag=t1\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n"
    );
    let resp = Message::parse(out).unwrap();
    assert_eq!(resp.to().unwrap().tag(), Some("t1"));
    assert!(build_reply(&resp, 200, "OK", &ReplyOptions::default()).is_err());
    let novia = Message::parse(crlf(b"OPTIONS sip:a@b SIP/2.0\nCall-ID: c\n\n")).unwrap();
    assert!(build_reply(&novia, 200, "OK", &ReplyOptions::default()).is_err());
}

/// The To tag is looked for as a header parameter, in any case; the letters
/// `tag` elsewhere in To (a user part, a URI parameter) are not one.
#[test]
fn reply_to_tag_only_when_to_has_none() {
    let cases = [
        ("<sip:a@b>;TAG=x", "<sip:a@b>;TAG=x"),
        (
            "\"Tag\" <sip:tag@b;tag=u>",
            "\"Tag\" <sip:tag@b;tag=u>;tag=t1",
        ),
        ("sip:vintage@b", "sip:vintage@b;tag=t1"),
        ("<sip:a@b>;Tag=", "<sip:a@b>;Tag=;tag=t1"),
    ];
    for (to, want) in cases {
        let raw = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: {to}\r\nCall-ID: c\r\n\r\n"
        );
        let req = Message::parse(bytes::Bytes::from(raw)).unwrap();
        let opts = ReplyOptions {
            to_tag: Some("t1"),
            ..Default::default()
        };
        let out = build_reply(&req, 200, "OK", &opts).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.contains(&format!("\r\nTo: {want}\r\n")),
            "To {to:?} should become {want:?}:\n{text}"
        );
    }
}
