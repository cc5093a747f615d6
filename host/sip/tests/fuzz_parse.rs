//! Property test: nothing from the network may panic the parser, the
//! typed accessors, the editor/serializer, the reply builder or the framer.

use bytes::Bytes;
use proptest::prelude::*;
use wisp_sip::Message;

const SEEDS: &[&[u8]] = &[
    b"INVITE sip:bob@biloxi.com;transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport, SIP/2.0/TCP h;received=1.2.3.4\r\nMax-Forwards: 70\r\nRoute: <sip:p1;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:rr;lr>\r\nTo: \"Bob \\\"B\\\"\" <sip:bob@biloxi.com>\r\nFrom: Alice <sip:alice@atlanta.com>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\nContact: <sip:alice@pc33.atlanta.com>;q=0.5;expires=60, sip:x@y\r\nAuthorization: Digest username=\"a\", realm=\"b,c\", nonce=x\r\nExpires: 10\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
    b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\nt: sip:c@d;tag=2\r\ni: x\r\nCSeq: 1 REGISTER\r\nm: *\r\nl: 0\r\n\r\n",
    b"REGISTER sip:example.com SIP/2.0\nTo: sip:null-%00-null@example.com\nFrom: tel:+1-555;tag=839923423\nVia  : SIP  /   2.0\n /UDP\n    192.0.2.2;branch=390skdjuw\nProxy-Authorization: Basic abc=\nContact: <sip:%00@host5.example.com>\nCall-ID: c\nCSeq: 2 REGISTER\nL:0\n\n",
];

fn exercise(raw: Bytes) {
    wisp_sip::fuzzing::message(raw.clone(), 37);
    wisp_sip::fuzzing::datagram(raw);
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
        wisp_sip::fuzzing::header_value(v.as_bytes());
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
