//! What the property test (`tests/fuzz_parse.rs`) and the coverage-guided
//! fuzz targets (`fuzz/`, `make fuzz`) run on arbitrary bytes: everything
//! the router does with a datagram before a plugin sees it, and with the
//! message after. Nothing here may panic on any input; the one assertion is
//! that the fast transaction-key path agrees with the typed accessors.

use bytes::Bytes;

use crate::{
    CSeq, Credentials, Host, Message, NameAddr, ParseError, ReplyOptions, StreamFramer,
    TransactionKey, Uri, Via, build_reply,
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

/// A received datagram: parse it, read every typed header, edit it as a
/// proxy does, serialize it (which must parse again), build a reply, and
/// feed the same bytes through the stream framer in `chunk`-byte pieces.
pub fn message(raw: Bytes, chunk: usize) {
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
        let _ = crate::peek::call_id(&raw);
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
            header_value(&h.value);
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
    framed(&raw, chunk);
}

/// A received datagram down the router's receive path as far as the
/// message model goes: parse, and for a request the sanity check
/// ([`crate::sanity`]) and then what a stub route does with a sane one, as
/// the default plugin would: Max-Forwards checked and lowered, a stateless
/// reply built from the sanity summary, or the request relayed (Record-Route
/// added, its own Route removed, a Via on top) and what is relayed parsed
/// and checked again; for a response, its top Via removed to forward it.
/// A request the check refuses gets its 400 built, as the router answers.
pub fn datagram(raw: Bytes) {
    let Ok(mut m) = Message::parse(raw.clone()) else {
        return;
    };
    let _ = crate::peek::call_id(&raw);
    if !m.is_request() {
        if m.remove_top_via().is_ok() {
            let _ = Message::parse(m.serialize());
        }
        return;
    }
    let summary = match crate::sanity::check_request(&m) {
        Ok(summary) => summary,
        Err(reason) => {
            let _ = build_reply(&m, 400, &reason, &ReplyOptions::default());
            return;
        }
    };
    let received = summary.top_via.host.to_string();
    let reply_opts = ReplyOptions {
        to_tag: Some("stub"),
        top_via_received: Some(&received),
        top_via_rport: summary.top_via.port,
        ..Default::default()
    };
    match m.max_forwards() {
        Ok(Some(0)) => {
            let _ = build_reply(&m, 483, "Too Many Hops", &reply_opts);
            return;
        }
        Ok(Some(n)) => m.set_max_forwards(n - 1),
        _ => m.set_max_forwards(69),
    }
    if summary.cseq % 2 == 0 {
        // The stub route answers even CSeqs itself...
        let _ = build_reply(&m, 200, "OK", &reply_opts);
        return;
    }
    // ...and relays odd ones.
    m.insert_record_route(Bytes::from_static(b"<sip:192.0.2.1;lr>"));
    let _ = m.remove_top_route();
    m.insert_via(Bytes::from_static(
        b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKstub",
    ));
    let relayed = m.serialize();
    let again = Message::parse(relayed)
        .expect("what the router relays parses again when the request was sane");
    assert!(
        crate::sanity::check_request(&again).is_ok(),
        "a relayed sane request must stay sane"
    );
}

/// A TCP byte stream arriving in `chunk`-byte pieces: every message the
/// framer cuts out is parsed.
pub fn framed(raw: &[u8], chunk: usize) {
    let mut f = StreamFramer::new(2048);
    for piece in raw.chunks(chunk.max(1)) {
        f.buffer_mut().extend_from_slice(piece);
        while let Ok(Some(m)) = f.next_message() {
            let _ = Message::parse(m);
        }
    }
}

/// One header value through every typed parser.
pub fn header_value(v: &[u8]) {
    let _ = Uri::parse(v);
    let _ = Via::parse(v);
    let _ = NameAddr::parse_list(v);
    let _ = Credentials::parse(v);
    let _ = CSeq::parse(v);
    if let Ok(s) = std::str::from_utf8(v) {
        let _ = Host::parse(s);
    }
}
