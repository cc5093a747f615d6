//! Property test: nothing from the network may panic the parser, the
//! typed accessors, the editor/serializer, the reply builder or the framer.

use bytes::Bytes;
use proptest::prelude::*;
use wisp_sip::{
    Message, NameAddr, ParseError, ReplyOptions, StreamFramer, TransactionKey, Uri, Via,
    build_reply,
};

/// `transaction_key` built from the typed accessors: the fast path must
/// give the same key, or the same error, for any input.
fn reference_key(m: &Message) -> Result<TransactionKey, ParseError> {
    let via = m.top_via()?;
    let from = m.from()?;
    let to = m.to()?;
    Ok(TransactionKey {
        branch: via.branch().map(Into::into),
        call_id: Bytes::copy_from_slice(m.call_id()?),
        cseq: m.cseq()?,
        from_tag: from.tag().map(Into::into),
        to_tag: to.tag().map(Into::into),
        via_sent_by: Bytes::copy_from_slice(via.sent_by().as_bytes()),
    })
}

const SEEDS: &[&[u8]] = &[
    b"INVITE sip:bob@biloxi.com;transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport, SIP/2.0/TCP h;received=1.2.3.4\r\nMax-Forwards: 70\r\nRoute: <sip:p1;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:rr;lr>\r\nTo: \"Bob \\\"B\\\"\" <sip:bob@biloxi.com>\r\nFrom: Alice <sip:alice@atlanta.com>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\nContact: <sip:alice@pc33.atlanta.com>;q=0.5;expires=60, sip:x@y\r\nAuthorization: Digest username=\"a\", realm=\"b,c\", nonce=x\r\nExpires: 10\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
    b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\nt: sip:c@d;tag=2\r\ni: x\r\nCSeq: 1 REGISTER\r\nm: *\r\nl: 0\r\n\r\n",
    b"REGISTER sip:example.com SIP/2.0\nTo: sip:null-%00-null@example.com\nFrom: tel:+1-555;tag=839923423\nVia  : SIP  /   2.0\n /UDP\n    192.0.2.2;branch=390skdjuw\nProxy-Authorization: Basic abc=\nContact: <sip:%00@host5.example.com>\nCall-ID: c\nCSeq: 2 REGISTER\nL:0\n\n",
];

fn exercise(raw: Bytes) {
    if let Ok(mut m) = Message::parse(raw.clone()) {
        let _ = m.vias();
        let _ = m.top_via();
        let _ = m.from();
        let _ = m.to();
        let _ = m.call_id();
        let _ = m.cseq();
        let _ = m.max_forwards();
        let _ = m.contacts();
        let _ = m.routes();
        let _ = m.record_routes();
        let _ = m.content_length();
        let _ = m.content_type();
        let _ = m.expires();
        let _ = m.authorization();
        let _ = m.proxy_authorization();
        let _ = m.request_uri();
        assert_eq!(m.transaction_key(), reference_key(&m));
        let _ = m.serialize();
        let opts = ReplyOptions {
            to_tag: Some("t"),
            top_via_received: Some("1.2.3.4"),
            top_via_rport: Some(5060),
            server: Some("x"),
            ..Default::default()
        };
        let _ = build_reply(&m, 200, "OK", &opts);
        for h in m.headers() {
            let _ = Via::parse(&h.value);
            let _ = NameAddr::parse_list(&h.value);
            let _ = Uri::parse(&h.value);
            let _ = wisp_sip::Credentials::parse(&h.value);
        }
        let _ = m.remove_top_via();
        let _ = m.remove_top_route();
        m.insert_via(Bytes::from_static(b"SIP/2.0/UDP p;branch=z9hG4bKx"));
        m.set_max_forwards(1);
        m.remove_headers("Contact");
        m.set_body(Bytes::from_static(b"x"), None);
        let out = m.serialize();
        // What we write must parse again whenever the input did.
        let _ = Message::parse(out);
    }
    let mut f = StreamFramer::new(2048);
    for chunk in raw.chunks(37) {
        f.buffer_mut().extend_from_slice(chunk);
        while let Ok(Some(m)) = f.next_message() {
            let _ = Message::parse(m);
        }
    }
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0..SEEDS.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    )
        .prop_map(|(seed, muts)| {
            let mut v = SEEDS[seed].to_vec();
            for (idx, byte, op) in muts {
                if v.is_empty() {
                    v.push(byte);
                    continue;
                }
                let i = idx.index(v.len());
                let interesting = [
                    b'\r', b'\n', b' ', b';', b',', b'"', b'<', b'>', b':', b'@', b'[', b']',
                    b'\\', b'=', b'%', byte,
                ];
                let b = interesting[(byte as usize) % interesting.len()];
                match op {
                    0 => v[i] = b,
                    1 => v.insert(i, b),
                    2 => {
                        v.remove(i);
                    }
                    _ => v.truncate(i),
                }
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(v in prop::collection::vec(any::<u8>(), 0..600)) {
        exercise(Bytes::from(v));
    }

    #[test]
    fn mutated_messages_never_panic(v in mutated()) {
        exercise(Bytes::from(v));
    }

    #[test]
    fn typed_parsers_never_panic(v in "[ -~\r\n\t]{0,120}") {
        let b = v.as_bytes();
        let _ = Uri::parse(b);
        let _ = Via::parse(b);
        let _ = NameAddr::parse_list(b);
        let _ = wisp_sip::Credentials::parse(b);
        let _ = wisp_sip::CSeq::parse(b);
        let _ = wisp_sip::Host::parse(&v);
    }
}

#[test]
fn seeds_parse() {
    for s in SEEDS {
        let m = Message::parse(Bytes::from_static(s)).unwrap();
        m.transaction_key().unwrap();
        exercise(Bytes::from_static(s));
    }
}
