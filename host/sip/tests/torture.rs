//! RFC 4475 torture-test messages (§3.1.1 valid, §3.1.2 invalid).

mod common;

use common::crlf;
use wisp_sip::{Contacts, Host, Message, Method, Scheme, StartLine};

const WSINV: &[u8] = b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 150
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.3
s=-
c=IN IP4 192.0.2.4
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
";

#[test]
fn wsinv_short_tortuous_invite() {
    let m = Message::parse(crlf(WSINV)).unwrap();
    assert_eq!(m.method(), Some(&Method::Invite));
    let ruri = m.request_uri().unwrap();
    assert_eq!(ruri.user.as_deref(), Some("vivekg"));
    assert_eq!(ruri.param("unknownparam"), Some(None));

    let to = m.to().unwrap();
    assert_eq!(to.display_name, None);
    assert_eq!(to.tag(), Some("1918181833n"));
    assert_eq!(to.uri.host, Host::Domain("chair-dnrc.example.com".into()));
    assert!(to.uri.params.is_empty());

    let from = m.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(from.uri.user.as_deref(), Some("jdrosen"));

    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(m.call_id().unwrap(), b"wsinv.ndaksdj@192.0.2.1");
    assert_eq!(m.content_length().unwrap(), Some(150));
    assert_eq!(m.body().len(), 150);
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));

    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        (vias[0].transport.as_str(), vias[0].branch()),
        ("UDP", Some("390skdjuw"))
    );
    assert_eq!(vias[0].host, Host::parse("192.0.2.2").unwrap());
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].host, Host::Domain("spindle.example.com".into()));
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(vias[2].protocol, "SIP/2.0");
    assert_eq!(m.top_via().unwrap(), vias[0]);

    let subject = m.header("Subject").unwrap();
    assert!(subject.value.is_empty());
    assert!(subject.is("s"));
    assert_eq!(
        &m.header("newfangledheader").unwrap().value[..],
        b"newfangled value\r\n continued newfangled value"
    );
    assert_eq!(
        &m.header("UnknownHeaderWithUnusualValue").unwrap().value[..],
        b";;,,;;,;"
    );
    assert_eq!(m.content_type().unwrap(), b"application/sdp");

    let routes = m.routes().unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].uri.param("lr"), Some(None));
    assert_eq!(routes[0].uri.param("unknownwith"), Some(Some("value")));
    assert_eq!(routes[0].uri.param("unknown-no-value"), Some(None));

    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!("star")
    };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].display_name.as_deref(), Some("Quoted string \"\""));
    assert_eq!(c[0].param("newparam"), Some(Some("newvalue")));
    assert_eq!(c[0].param("secondparam"), Some(None));
    assert_eq!(c[0].q(), Some(0.33));

    let key = m.transaction_key().unwrap();
    assert_eq!(key.branch.as_deref(), Some("390skdjuw"));
    assert_eq!(key.from_tag.as_deref(), Some("98asjd8"));
    assert_eq!(key.to_tag.as_deref(), Some("1918181833n"));
    assert_eq!(key.via_sent_by, "192.0.2.2");
}

const INTMETH: &[u8] = b"!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9\";tag=_token~1'+`*%!-.
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~
Max-Forwards: 255
extensionHeader-!.%*+_`'~:\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb
Content-Length: 0

";

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let m = Message::parse(crlf(INTMETH)).unwrap();
    let method = Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into());
    assert_eq!(m.method(), Some(&method));
    let u = m.request_uri().unwrap();
    assert_eq!(
        u.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        u.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(u.host, Host::Domain("example.com".into()));
    assert!(u.params.is_empty());
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    let to = m.to().unwrap();
    assert_eq!(
        to.display_name.as_deref(),
        Some("BEL:\x07 NUL:\x00 DEL:\x7f")
    );
    assert_eq!(
        to.uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    let from = m.from().unwrap();
    assert_eq!(
        from.display_name.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        from.param("fromParam''~+*_!.-%"),
        Some(Some("\"работающий\""))
    );
    assert_eq!(
        m.call_id().unwrap(),
        b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (139122385, method));
    assert_eq!(m.max_forwards().unwrap(), Some(255));
    assert_eq!(
        &m.header("extensionHeader-!.%*+_`'~").unwrap().value[..],
        "\u{feff}大停電".as_bytes()
    );
}

#[test]
fn esc01_percent_escapes() {
    let msg = b"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
";
    let m = Message::parse(crlf(msg)).unwrap();
    let u = m.request_uri().unwrap();
    assert_eq!(u.user.as_deref(), Some("sips%3Auser%40example.com"));
    assert_eq!(u.user_unescaped().as_deref(), Some("sips:user@example.com"));
    assert_eq!(u.host, Host::Domain("example.net".into()));
    let to = m.to().unwrap();
    assert_eq!(to.uri.user_unescaped().as_deref(), Some("user"));
    assert_eq!(
        m.from().unwrap().uri.user_unescaped().as_deref(),
        Some("I have spaces")
    );
    assert_eq!(m.call_id().unwrap(), b"esc01.239409asdfakjkn23onasd0-3234");
    assert_eq!(m.content_type().unwrap(), b"application/sdp");
    let c = m.contacts().unwrap();
    let c = &c.list()[0];
    assert_eq!(c.uri.user_unescaped().as_deref(), Some("caller"));
    assert_eq!(c.uri.param("%6C%72"), Some(None));
    // Not unescaped recursively: value%41 is not valueA.
    assert_eq!(c.uri.param("n%61me"), Some(Some("v%61lue%25%34%31")));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn escnull_escaped_nulls() {
    let msg = b"REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0

";
    let m = Message::parse(crlf(msg)).unwrap();
    assert_eq!(m.method(), Some(&Method::Register));
    let to = m.to().unwrap();
    assert_eq!(to.uri.user.as_deref(), Some("null-%00-null"));
    assert_eq!(to.uri.user_unescaped().as_deref(), Some("null-\0-null"));
    assert_eq!(to.uri.aor(), "sip:null-%00-null@example.com");
    assert_eq!(m.from().unwrap().tag(), Some("839923423"));
    let c = m.contacts().unwrap();
    assert_eq!(c.list().len(), 2);
    assert_eq!(c.list()[0].uri.user_unescaped().as_deref(), Some("\0"));
    assert_eq!(c.list()[1].uri.user_unescaped().as_deref(), Some("\0\0"));
    assert_ne!(c.list()[0].uri.aor(), c.list()[1].uri.aor());
    assert_eq!(m.content_length().unwrap(), Some(0));
}

#[test]
fn esc02_percent_is_not_an_escape() {
    let msg = b"RE%47IST%45R sip:registrar.example.com SIP/2.0
To: \"%Z%45\" <sip:resource@example.com>
From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

";
    let m = Message::parse(crlf(msg)).unwrap();
    assert_eq!(m.method(), Some(&Method::Other("RE%47IST%45R".into())));
    assert_eq!(m.to().unwrap().display_name.as_deref(), Some("%Z%45"));
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK209%fzsnel234"));
    let c = m.contacts().unwrap();
    assert_eq!(c.list().len(), 2);
    assert_eq!(c.list()[1].uri.user.as_deref(), Some("alias3"));
    assert_eq!(
        &m.header("C%6Fntact").unwrap().value[..],
        b"<sip:alias2@host2.example.com>"
    );
}

#[test]
fn lwsdisp_no_lws_before_angle() {
    let msg = b"OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

";
    let m = Message::parse(crlf(msg)).unwrap();
    let from = m.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("caller"));
    assert_eq!(from.tag(), Some("323"));
    assert_eq!(m.cseq().unwrap().method, Method::Options);
}

#[test]
fn longreq_long_values() {
    let long = "longreq.one".repeat(30);
    let params = (0..30)
        .map(|i| format!(";unknownparam{i}=value{i}"))
        .collect::<String>();
    let vias = (0..40)
        .map(|i| {
            format!(
                "Via: SIP/2.0/TCP sip{i}.example.com;branch=z9hG4bK{}{i}\n",
                "x".repeat(100)
            )
        })
        .collect::<String>();
    let msg = format!(
        "INVITE sip:user@example.com SIP/2.0
To: \"I have a user name of {long} {long}\" <sip:user@example.com>
From: sip:caller@example.net;tag={long}{params}
Call-ID: {long}
CSeq: 18 INVITE
Max-Forwards: 70
{vias}Contact: <sip:amazinglylongcallernameamazinglylongcallernameamazinglylongcallername@host5.example.net>
Content-Length: 0

"
    );
    let m = Message::parse(crlf(msg.as_bytes())).unwrap();
    assert_eq!(m.vias().unwrap().len(), 40);
    let from = m.from().unwrap();
    assert_eq!(from.tag(), Some(long.as_str()));
    assert_eq!(from.params.len(), 31);
    assert!(m.to().unwrap().display_name.unwrap().len() > 600);
    assert_eq!(m.call_id().unwrap().len(), long.len());
}

#[test]
fn dblreq_extra_octets_after_body_ignored() {
    let msg = b"REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0


INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 0

";
    let raw = crlf(msg);
    let m = Message::parse(raw.clone()).unwrap();
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body().is_empty());
    assert_eq!(m.len(), raw.len());
    let c = m.contacts().unwrap();
    assert_eq!(
        c.list()[0].uri.host,
        Host::Domain("host.example.com".into())
    );
    // Serialization without edits stops at the framed message.
    let out = m.serialize();
    assert!(out.ends_with(b"Content-Length: 0\r\n\r\n"));
    assert!(!out.windows(6).any(|w| w == b"INVITE"));
}

#[test]
fn semiuri_and_transports_and_reasons() {
    let msg = b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

";
    let m = Message::parse(crlf(msg)).unwrap();
    let u = m.request_uri().unwrap();
    assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
    assert!(u.params.is_empty());
    let t: Vec<_> = m.vias().unwrap().into_iter().map(|v| v.transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    let accept = &m.header("accept").unwrap().value;
    assert!(
        accept.starts_with(b"application/sdp, ")
            && accept.ends_with(b"message/sip, message/sipfrag")
    );
    assert!(accept.windows(10).any(|w| w == b",\r\n       "));

    let m = Message::parse(crlf(
        b"SIP/2.0 200 = 2**3 * 5**2 \xd0\xbd\xd0\xbe\n\
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n\
Call-ID: unreason.1234ksdfak3j2erwedfsASdf\nCSeq: 35 INVITE\n\
From: sip:user@example.com;tag=11141343\nTo: sip:user@example.edu;tag=2229\nContent-Length: 0\n\n",
    ))
    .unwrap();
    assert_eq!(m.status(), Some(200));
    let StartLine::Response { reason, .. } = m.start_line() else {
        panic!()
    };
    assert_eq!(&reason[..], "= 2**3 * 5**2 но".as_bytes());

    // noreason: empty reason phrase after the mandatory space.
    let m = Message::parse(crlf(
        b"SIP/2.0 100 \nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\nl: 0\n\n",
    ))
    .unwrap();
    assert_eq!(m.status(), Some(100));
    let StartLine::Response { reason, .. } = m.start_line() else {
        panic!()
    };
    assert!(reason.is_empty());
}

#[test]
fn badinv01_empty_params_rejected_by_typed_views() {
    let msg = b"INVITE sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: 7
Call-ID: badinv01.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;;,;,,
Contact: \"Joe\" <sip:joe@example.org>;;;;
Content-Length: 0
Content-Type: application/sdp

";
    let m = Message::parse(crlf(msg)).unwrap();
    assert!(m.vias().is_err());
    assert!(m.top_via().is_err());
    assert!(m.contacts().is_err());
    assert!(m.transaction_key().is_err());
}

const CLERR: &[u8] = b"INVITE sip:user@example.com SIP/2.0
Max-Forwards: 80
To: sip:j.user@example.com
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: clerr.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523
Content-Type: application/sdp
Content-Length: 9999

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.155
s=-
c=IN IP4 192.0.2.155
t=0 0
m=audio 49217 RTP/AVP 0
";

#[test]
fn clerr_content_length_larger_than_datagram() {
    let e = Message::parse(crlf(CLERR)).unwrap_err();
    assert!(e.reason().contains("Content-Length"), "{e}");
}

#[test]
fn ncl_negative_content_length() {
    let msg = b"INVITE sip:user@example.com SIP/2.0
Max-Forwards: 254
To: sip:j.user@example.com
From: sip:caller@example.net;tag=32394234
Call-ID: ncl.0ha0isndaksdj2193423r542w35
CSeq: 0 INVITE
Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw
Contact: <sip:caller@example53.example.net>
Content-Type: application/sdp
Content-Length: -999

v=0
";
    assert!(Message::parse(crlf(msg)).is_err());
}

#[test]
fn scalar_overflows() {
    // scalar02: CSeq beyond 2^32, Expires beyond 2^32 saturates.
    let msg = b"REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36612389236 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: 1000000000000000000000000000000000000000000000000
Contact: <sip:user@host129.example.com>;expires=280297596632815
Content-Length: 0

";
    let m = Message::parse(crlf(msg)).unwrap();
    assert!(m.cseq().is_err());
    assert_eq!(m.max_forwards().unwrap(), Some(300));
    assert_eq!(m.expires().unwrap(), Some(u32::MAX));
    assert_eq!(m.contacts().unwrap().list()[0].expires(), Some(u32::MAX));

    // scalarlg: status code way out of range.
    let r = b"SIP/2.0 4294967301 better not break the receiver\nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\nl: 0\n\n";
    assert!(Message::parse(crlf(r)).is_err());
}

#[test]
fn malformed_request_lines() {
    let tail = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\nl: 0\n\n";
    for line in [
        "INVITE  sip:user@example.com  SIP/2.0",   // lwsstart
        "INVITE sip:user@example.com; lr SIP/2.0", // lwsruri
        "INVITE sip:user@example.com SIP/2.0 ",    // trws
        "INVITE sip:user@example.com",
        "INVITE sip:user@example.com HTTP/1.1",
        "SIP/2.0 20 OK",
        "SIP/2.0 099 Too low",
    ] {
        assert!(
            Message::parse(crlf(format!("{line}\n{tail}").as_bytes())).is_err(),
            "{line}"
        );
    }
    // badvers: parses (the core answers 505), version is visible.
    let m = Message::parse(crlf(
        format!("OPTIONS sip:t.watson@example.org SIP/7.0\n{tail}").as_bytes(),
    ))
    .unwrap();
    let StartLine::Request { version, .. } = m.start_line() else {
        panic!()
    };
    assert_eq!(&version[..], b"SIP/7.0");
    // ltgtruri: the line splits, but the Request-URI is not a URI.
    let m = Message::parse(crlf(
        format!("INVITE <sip:user@example.com> SIP/2.0\n{tail}").as_bytes(),
    ))
    .unwrap();
    assert!(m.request_uri().is_err());
}

#[test]
fn quotbal_and_baddn() {
    let msg = b"INVITE sip:user@example.com SIP/2.0
To: \"Mr. J. User <sip:j.user@example.com>
From: Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43
Call-ID: quotbal.aksdj
CSeq: 1 INVITE
Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234
Content-Length: 0

";
    let m = Message::parse(crlf(msg)).unwrap();
    assert!(m.to().is_err());
    assert!(m.from().is_err());
    let v = m.top_via().unwrap();
    assert_eq!(v.port, Some(5050));
    assert_eq!(Scheme::Sip, m.request_uri().unwrap().scheme);
}
