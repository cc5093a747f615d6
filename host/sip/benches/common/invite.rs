//! The INVITE the parser benchmark and the profiling example both use.

use bytes::Bytes;

/// A realistic 1,050-byte INVITE: two Vias, Route, Record-Route, Contact, SDP.
pub fn invite() -> Bytes {
    let body = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";
    let msg = format!(
        "INVITE sip:bob@biloxi.example.com;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/TCP 192.0.2.1:5061;branch=z9hG4bK-524287-1---7ebd6fcd2a1a9b51;received=192.0.2.200\r\n\
Max-Forwards: 69\r\n\
Route: <sip:proxy1.example.com;lr>, <sip:proxy2.example.com;lr>\r\n\
Record-Route: <sip:rr.atlanta.example.com;lr;ftag=1928301774>\r\n\
To: \"Bob\" <sip:bob@biloxi.example.com>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.101:5060;transport=udp>;expires=3600\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO\r\n\
Supported: replaces, timer\r\n\
User-Agent: Wisp-Bench/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{}",
        body.len(),
        body
    );
    Bytes::from(msg)
}
