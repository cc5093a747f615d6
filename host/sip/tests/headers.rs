//! URI and header forms through the message API.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::crlf;
use wisp_sip::{
    Challenge, Contacts, Credentials, HeaderName, Host, Message, NameAddr, Scheme, Uri, Via,
};

#[test]
fn uri_forms() {
    let u = Uri::parse(b"sips:alice:pw%40x@[2001:db8::10]:5071;transport=tls;maddr=[2001:db8::1]?subject=hi%20there&priority=urgent").unwrap();
    assert_eq!(u.scheme, Scheme::Sips);
    assert_eq!(u.password.as_deref(), Some("pw%40x"));
    assert_eq!(
        u.host,
        Host::Ipv6("2001:db8::10".parse::<Ipv6Addr>().unwrap())
    );
    assert_eq!(u.port, Some(5071));
    assert_eq!(u.transport(), Some("tls"));
    assert_eq!(u.param("maddr"), Some(Some("[2001:db8::1]")));
    assert_eq!(
        u.headers,
        vec![
            ("subject".into(), "hi%20there".into()),
            ("priority".into(), "urgent".into())
        ]
    );
    assert_eq!(u.aor(), "sips:alice@[2001:db8::10]:5071");
    assert_eq!(
        u.to_string(),
        "sips:alice:pw%40x@[2001:db8::10]:5071;transport=tls;maddr=[2001:db8::1]?subject=hi%20there&priority=urgent"
    );

    let t = Uri::parse(b"TEL:+1-201-555-0123;phone-context=example.com").unwrap();
    assert_eq!(t.scheme, Scheme::Tel);
    assert_eq!(t.user.as_deref(), Some("+1-201-555-0123"));
    assert_eq!(t.host, Host::Domain("".into()));
    assert_eq!(t.param("phone-context"), Some(Some("example.com")));
    assert_eq!(t.aor(), "tel:+1-201-555-0123");
    assert_eq!(
        t.to_string(),
        "tel:+1-201-555-0123;phone-context=example.com"
    );

    let h = Uri::parse(b"sip:192.0.2.1").unwrap();
    assert_eq!(
        (h.user, h.host),
        (None, Host::Ipv4(Ipv4Addr::new(192, 0, 2, 1)))
    );
    assert_eq!(
        Uri::parse(b"sip:Bob@BILOXI.com").unwrap().aor(),
        "sip:Bob@biloxi.com"
    );
}

#[test]
fn compact_and_mixed_case_names() {
    let m = Message::parse(crlf(
        b"\r\n\r\nMESSAGE sip:a@b SIP/2.0\nv: SIP/2.0/UDP h;branch=z9hG4bK1\nf: <sip:x@y>;tag=1\nt: sip:a@b\ni: cid\nCSEQ: 5 MESSAGE\nm: <sip:x@10.0.0.1>\nK: path\ns: hi\ne: gzip\nc: text/plain\nL: 2\n\nok",
    ))
    .unwrap();
    assert_eq!(m.headers().len(), 11);
    assert_eq!(m.headers()[0].name, HeaderName::Via);
    assert!(m.header("Via").unwrap().is("v"));
    assert_eq!(&m.header("supported").unwrap().value[..], b"path");
    assert_eq!(&m.header("Subject").unwrap().value[..], b"hi");
    assert_eq!(&m.header("Content-Encoding").unwrap().value[..], b"gzip");
    assert_eq!(m.header("e").unwrap().name, HeaderName::Other);
    assert_eq!(m.cseq().unwrap().seq, 5);
    assert_eq!(m.content_length().unwrap(), Some(2));
    assert_eq!(&m.body()[..], b"ok");
    assert_eq!(m.header_values("CONTACT").count(), 1);
    // The one-value accessor agrees with the header list.
    for name in [
        "Via",
        "supported",
        "k",
        "SUBJECT",
        "e",
        "Content-Length",
        "i",
    ] {
        assert_eq!(
            m.header_value(name),
            m.header(name).map(|h| &h.value[..]),
            "{name}"
        );
    }
    assert_eq!(m.header_value("User-Agent"), None);
    assert_eq!(
        m.header_value_slices("contact").collect::<Vec<_>>(),
        m.header_values("m").map(|v| &v[..]).collect::<Vec<_>>()
    );
}

#[test]
fn whitespace_and_lf_only() {
    let m = Message::parse(bytes::Bytes::from_static(
        b"OPTIONS sip:a@b SIP/2.0\nVia   :  SIP/2.0/UDP h:5060 ;branch=z9hG4bK1\nTo:\tsip:a@b  \nX-Folded: a,\n\tb\nContent-Length: 0\n\n",
    ))
    .unwrap();
    assert_eq!(m.top_via().unwrap().port, Some(5060));
    assert_eq!(&m.header("to").unwrap().value[..], b"sip:a@b");
    assert_eq!(&m.header("x-folded").unwrap().value[..], b"a,\n\tb");
    assert!(
        Message::parse(bytes::Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\n continuation\r\n\r\n"
        ))
        .is_err()
    );
    assert!(
        Message::parse(bytes::Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n"
        ))
        .is_err()
    );
    assert!(
        Message::parse(bytes::Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n"
        ))
        .is_err()
    );
    assert!(
        Message::parse(bytes::Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nTo: x"
        ))
        .is_err()
    );
    assert!(Message::parse(bytes::Bytes::from_static(b"\r\n\r\n")).is_err());
}

#[test]
fn contacts_across_headers_star_q_expires() {
    let m = Message::parse(crlf(
        b"REGISTER sip:r SIP/2.0\nContact: \"A, Smith\" <sip:a@1.2.3.4;transport=tcp>;q=0.7;expires=60, <sip:b@[2001:db8::10]:5070>;q=1\nm: sip:c@h;expires=0\nContent-Length: 0\n\n",
    ))
    .unwrap();
    let c = m.contacts().unwrap();
    let l = c.list();
    assert_eq!(l.len(), 3);
    assert_eq!(l[0].display_name.as_deref(), Some("A, Smith"));
    assert_eq!((l[0].q(), l[0].expires()), (Some(0.7), Some(60)));
    assert_eq!(l[1].uri.host.to_string(), "[2001:db8::10]");
    assert_eq!(l[1].uri.port, Some(5070));
    assert_eq!(l[2].expires(), Some(0));
    assert!(l[2].uri.params.is_empty());

    let m = Message::parse(crlf(
        b"REGISTER sip:r SIP/2.0\nContact: *\nExpires: 0\nContent-Length: 0\n\n",
    ))
    .unwrap();
    assert_eq!(m.contacts().unwrap(), Contacts::Star);
    assert_eq!(m.expires().unwrap(), Some(0));
    let m = Message::parse(crlf(b"REGISTER sip:r SIP/2.0\nContent-Length: 0\n\n")).unwrap();
    assert_eq!(m.contacts().unwrap(), Contacts::List(vec![]));
    assert_eq!(m.expires().unwrap(), None);
    assert_eq!(m.max_forwards().unwrap(), None);
    assert!(m.from().is_err());
}

#[test]
fn vias_received_rport_maddr_ipv6() {
    let m = Message::parse(crlf(
        b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bKa;rport=5070;received=2001:db8::99, SIP/2.0/TCP 10.0.0.1;maddr=224.2.0.1;ttl=16;branch=z9hG4bKb\nVia: SIP/2.0/UDP x.example.com;branch=z9hG4bKc;rport\nl: 0\n\n",
    ))
    .unwrap();
    let v = m.vias().unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].host, Host::parse("2001:db8::10").unwrap());
    assert_eq!(
        (v[0].port, v[0].rport(), v[0].received()),
        (Some(5070), Some(Some(5070)), Some("2001:db8::99"))
    );
    assert_eq!(v[1].param("maddr"), Some(Some("224.2.0.1")));
    assert_eq!(v[1].param("TTL"), Some(Some("16")));
    assert_eq!(v[2].rport(), Some(None));
    assert_eq!(
        v[0].to_string(),
        "SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bKa;rport=5070;received=2001:db8::99"
    );
    assert_eq!(Via::parse(v[1].to_string().as_bytes()).unwrap()[0], v[1]);
    assert_eq!(m.top_via().unwrap().sent_by(), "[2001:db8::10]:5070");
}

#[test]
fn routes_and_record_routes() {
    let m = Message::parse(crlf(
        b"INVITE sip:a@b SIP/2.0\nRoute: <sip:p1;lr>,<sip:p2;lr>\nRoute: <sip:p3;lr>\nRecord-Route: <sip:rr1;lr;ftag=x>\nRecord-Route: <sip:rr2;lr>\nl: 0\n\n",
    ))
    .unwrap();
    let r: Vec<_> = m
        .routes()
        .unwrap()
        .iter()
        .map(|n| n.uri.to_string())
        .collect();
    assert_eq!(r, ["sip:p1;lr", "sip:p2;lr", "sip:p3;lr"]);
    let rr = m.record_routes().unwrap();
    assert_eq!(rr.len(), 2);
    assert_eq!(rr[0].uri.param("ftag"), Some(Some("x")));
}

#[test]
fn display_names_and_tags() {
    let n = NameAddr::parse(br#"  "Bob \"the\" \\Builder"   <sip:bob@x>;tag=a;foo"#).unwrap();
    assert_eq!(n.display_name.as_deref(), Some(r#"Bob "the" \Builder"#));
    assert_eq!(
        n.to_string(),
        r#""Bob \"the\" \\Builder" <sip:bob@x>;tag=a;foo"#
    );
    assert_eq!(NameAddr::parse(&n.to_string().into_bytes()).unwrap(), n);
    let n = NameAddr::parse(b"Bob Smith <sip:bob@x>").unwrap();
    assert_eq!(n.display_name.as_deref(), Some("Bob Smith"));
    assert_eq!(n.tag(), None);
}

#[test]
fn authorization_headers() {
    let m = Message::parse(crlf(
        b"REGISTER sip:r SIP/2.0\nAuthorization: Digest username=\"bob\",\n realm=\"atlanta.com\", nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", opaque=\"\",\n uri=\"sips:ss2.biloxi.example.com\", response=\"dfe56131d1958046689d83306477ecc\", qop=auth, nc=00000001, cnonce=\"a,b\\\"c\"\nProxy-Authorization: Digest username=\"alice\", realm=\"p\"\nWWW-Authenticate: Digest realm=\"atlanta.com\", domain=\"sip:boxesbybob.com\", qop=\"auth,auth-int\", nonce=\"f84f1cec41e6cbe5aea9c8e88d359\", stale=FALSE, algorithm=MD5\nl: 0\n\n",
    ))
    .unwrap();
    let a: Credentials = m.authorization().unwrap().unwrap();
    assert_eq!(a.scheme, "Digest");
    assert_eq!(a.param("username"), Some("bob"));
    assert_eq!(a.param("opaque"), Some(""));
    assert_eq!(a.param("cnonce"), Some("a,b\"c"));
    assert_eq!(a.param("nc"), Some("00000001"));
    assert_eq!(
        m.proxy_authorization().unwrap().unwrap().param("username"),
        Some("alice")
    );
    let c = Challenge::parse(&m.header("www-authenticate").unwrap().value).unwrap();
    assert_eq!(c.param("qop"), Some("auth,auth-int"));
    assert_eq!(c.param("stale"), Some("FALSE"));
}
