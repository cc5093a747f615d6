//! Stateless replies (Kamailio `sl`): build the response, derive a To-tag that
//! a retransmission of the same request gets again, and send it where RFC
//! 3261 §18.2.2 and RFC 3581 say responses go.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use wisp_sip::reply::{ReplyOptions, build_reply};
use wisp_sip::{Host, Message, Method};

use crate::stateless::Stateless;
use crate::stateless::context::{ActionError, Handled, MsgContext, RequestSummary, RouteKind};
use crate::transport::{Proto, Source, Transports};

/// The default `Server:` (and `User-Agent:`) value; the manifest's
/// `server.server_header` replaces it.
pub const SERVER: &str = concat!("Wisp/", env!("CARGO_PKG_VERSION"));

/// The Contact a reply with `code` carries: the destination set for a 3xx,
/// nothing otherwise. That is how a redirect server names where to go, as
/// SER's and Kamailio's `sl` and `tm` do.
pub fn redirect_contact(ctx: &MsgContext, code: u16) -> Option<String> {
    if (300..400).contains(&code) {
        dset_contact(ctx)
    } else {
        None
    }
}

/// The destination set as one Contact value: the Request-URI when a route
/// rewrote it (Kamailio's `ruri_is_new`; the unchanged one would redirect
/// the caller back here), then every branch. `None` when that is empty.
fn dset_contact(ctx: &MsgContext) -> Option<String> {
    let mut uris: Vec<String> = Vec::with_capacity(ctx.branches.len() + 1);
    if let wisp_sip::StartLine::Request { uri, .. } = ctx.msg.start_line() {
        let current = ctx.ruri().to_string();
        if current.as_bytes() != &uri[..] {
            uris.push(current);
        }
    }
    uris.extend(ctx.branches.iter().map(|b| b.uri.clone()));
    if uris.is_empty() {
        return None;
    }
    Some(
        uris.iter()
            .map(|u| format!("<{u}>"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Answer the request in `ctx` without a transaction. The caller has
/// decided that no transaction holds it (`tm::answer` is the one place
/// that decides how a request is answered).
pub fn send_stateless(
    sl: &Stateless,
    ctx: &mut MsgContext,
    code: u16,
    reason: &str,
    extra_headers: &[(&str, &str)],
) -> Result<(), ActionError> {
    check_status_line(code, reason)?;
    check_answerable(ctx)?;
    ctx.ensure_unhandled()?;
    send_stateless_reply(
        sl,
        &ctx.msg,
        &ctx.summary,
        ctx.source,
        code,
        reason,
        extra_headers,
    )
    .map_err(|e| ActionError::SendFailed(e.to_string()))?;
    if code >= 200 {
        ctx.handled = Some(Handled::Replied(code));
    }
    Ok(())
}

/// A stateless reply whose sending waits for something (the registrar's
/// write-through commit). It owns what building the reply needs, so it can
/// be sent from another thread after the route has finished.
pub struct DeferredReply {
    transports: Arc<Transports>,
    server_header: Option<Arc<str>>,
    sip_warning: bool,
    msg: Message,
    summary: RequestSummary,
    source: Source,
}

impl DeferredReply {
    /// Take the right to answer the request in `ctx` later, without a
    /// transaction. The caller marks `ctx.handled` once it knows the status.
    pub fn take(sl: &Stateless, ctx: &MsgContext) -> Result<DeferredReply, ActionError> {
        check_answerable(ctx)?;
        ctx.ensure_unhandled()?;
        Ok(DeferredReply {
            transports: sl.transports().clone(),
            server_header: sl.server_header().cloned(),
            sip_warning: sl.reply_headers().sip_warning,
            msg: ctx.msg.clone(),
            summary: ctx.summary.clone(),
            source: ctx.source,
        })
    }

    /// Build and send the reply now.
    pub fn send(
        self,
        code: u16,
        reason: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<(), ReplyError> {
        let headers = ReplyHeaders {
            server: self.server_header.as_deref(),
            sip_warning: self.sip_warning,
        };
        let (bytes, dest) = build_response(
            headers,
            &self.msg,
            &self.summary,
            self.source,
            code,
            reason,
            extra_headers,
        )?;
        self.transports
            .send_response(self.source.proto, dest, Some(self.source.local), bytes)?;
        crate::stats::reply_sent(code, crate::stats::ReplyOrigin::Local);
        Ok(())
    }
}

/// A status code and reason phrase a reply may carry.
pub fn check_status_line(code: u16, reason: &str) -> Result<(), ActionError> {
    if !(100..=699).contains(&code) {
        return Err(ActionError::InvalidArgument(format!(
            "status code {code} is not in 100..=699"
        )));
    }
    if reason.contains(['\r', '\n']) {
        return Err(ActionError::InvalidArgument(
            "reason phrase contains CR or LF".into(),
        ));
    }
    Ok(())
}

/// A message the route may answer: a request other than ACK, outside a
/// reply route.
pub fn check_answerable(ctx: &MsgContext) -> Result<(), ActionError> {
    if ctx.route == RouteKind::Reply || !ctx.msg.is_request() {
        return Err(ActionError::NotAllowedHere(
            "a reply route cannot answer".into(),
        ));
    }
    if ctx.msg.method() == Some(&Method::Ack) {
        return Err(ActionError::NotAllowedHere(
            "an ACK is never answered".into(),
        ));
    }
    Ok(())
}

/// Build and send a reply to `req` that arrived from `source`; `summary` is
/// what the sanity check parsed of it.
pub fn send_stateless_reply(
    sl: &Stateless,
    req: &Message,
    summary: &RequestSummary,
    source: Source,
    code: u16,
    reason: &str,
    extra_headers: &[(&str, &str)],
) -> Result<(), ReplyError> {
    let (bytes, dest) = build_response(
        sl.reply_headers(),
        req,
        summary,
        source,
        code,
        reason,
        extra_headers,
    )?;
    sl.transports()
        .send_response(source.proto, dest, Some(source.local), bytes)?;
    crate::stats::reply_sent(code, crate::stats::ReplyOrigin::Local);
    Ok(())
}

/// What every reply the router builds carries besides the request's
/// headers: the manifest's `Server:` and `sip_warning`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyHeaders<'a> {
    /// `Server: <server>` unless `None`.
    pub server: Option<&'a str>,
    /// A `Warning: 392` from [`sip_warning`].
    pub sip_warning: bool,
}

/// The bytes of a reply to `req` and where it goes (§18.2.2): the To-tag of
/// [`to_tag`] for codes above 100, `received`/`rport` on the top Via, and
/// what `headers` asks for.
pub fn build_response(
    headers: ReplyHeaders<'_>,
    req: &Message,
    summary: &RequestSummary,
    source: Source,
    code: u16,
    reason: &str,
    extra_headers: &[(&str, &str)],
) -> Result<(Bytes, SocketAddr), ReplyError> {
    let top = &summary.top_via;
    // RFC 3261 §18.2.1: `received` when sent-by differs from the packet's
    // source; RFC 3581 §4: `rport` filled, and then `received` always.
    let rport_requested = top.rport().is_some();
    let mut ip_buf = IpText::new();
    let received = (rport_requested || !host_is_ip(&top.host, source.remote.ip()))
        .then(|| ip_buf.format(source.remote.ip()));
    let mut tag_buf = [0u8; TO_TAG_LEN];
    let tag = (code > 100).then(|| to_tag_into(req, summary, &mut tag_buf));
    // Off (the default), this costs a branch: no allocation.
    let warning;
    let with_warning: Vec<(&str, &str)>;
    let extra_headers = if headers.sip_warning {
        warning = sip_warning(req, source);
        with_warning = extra_headers
            .iter()
            .copied()
            .chain([("Warning", warning.as_str())])
            .collect();
        &with_warning[..]
    } else {
        extra_headers
    };
    let opts = ReplyOptions {
        to_tag: tag,
        top_via_received: received,
        top_via_rport: rport_requested.then_some(source.remote.port()),
        extra_headers,
        body: None,
        server: headers.server,
    };
    let bytes =
        build_reply(req, code, reason, &opts).map_err(|e| ReplyError::Unanswerable(e.reason()))?;
    let destination = response_destination(source, top.port, rport_requested);
    Ok((bytes, destination))
}

/// The value of the `Warning` header `server.sip_warning` adds to a reply
/// to `req` from `source` (Kamailio's `warning_builder`, seed 003 "Tracing
/// Errors in Server Chains"): code 392, the socket the request came in on,
/// and the router's pid, the request's source, its Request-URI as received
/// (`in_uri`) and as the route left it (`out_uri`) and its Via count.
/// Kamailio writes `via_cnt==N` (the second `=` says every header was
/// parsed); Wisp parses every header, and writes `via_cnt=N`.
pub fn sip_warning(req: &Message, source: Source) -> String {
    let in_uri = match req.start_line() {
        wisp_sip::StartLine::Request { uri, .. } => uri.clone(),
        wisp_sip::StartLine::Response { .. } => Bytes::new(),
    };
    let out_uri = req.request_uri_raw();
    let via_cnt = req.vias().map_or(0, |v| v.len());
    format!(
        "392 {} \"Noisy feedback tells: pid={} req_src_ip={} req_src_port={} in_uri={} out_uri={} via_cnt={}\"",
        source.local,
        std::process::id(),
        source.remote.ip(),
        source.remote.port(),
        quotable(&in_uri),
        quotable(&out_uri),
        via_cnt,
    )
}

/// `text` as it may stand inside a quoted string: a URI the sender chose
/// could end the quote (`"`, `\`) or the header (control characters).
fn quotable(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Where responses to the request of `summary` from `source` go.
pub fn reply_destination(source: Source, summary: &RequestSummary) -> SocketAddr {
    let top = &summary.top_via;
    response_destination(source, top.port, top.rport().is_some())
}

/// Reply to a request the sanity check refused (or that did not parse):
/// parse just what a reply needs, as far as it goes.
pub fn send_reply_unchecked(
    sl: &Stateless,
    req: &Message,
    source: Source,
    code: u16,
    reason: &str,
) -> Result<(), ReplyError> {
    let top_via = req
        .top_via()
        .map_err(|e| ReplyError::Unanswerable(e.reason()))?;
    let summary = RequestSummary {
        ruri: wisp_sip::Uri::parse(b"sip:invalid")
            .map_err(|e| ReplyError::Unanswerable(e.reason()))?,
        top_via,
        from_tag: req.from().ok().and_then(|f| f.tag().map(Into::into)),
        cseq: req.cseq().map(|c| c.seq).unwrap_or(0),
    };
    send_stateless_reply(sl, req, &summary, source, code, reason, &[])
}

/// Why a reply could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("cannot answer: {0}")]
    Unanswerable(String),
    #[error(transparent)]
    Send(#[from] crate::transport::SendError),
}

/// Where a response to a request from `source` goes (RFC 3261 §18.2.2, RFC
/// 3581 §4). Over TCP or TLS: the connection it came on. Over UDP: the source IP
/// (which `received` records), and the source port when `rport` was asked
/// for, else the Via's sent-by port (5060 by default).
pub fn response_destination(
    source: Source,
    via_port: Option<u16>,
    rport_requested: bool,
) -> SocketAddr {
    match source.proto {
        Proto::Tcp | Proto::Tls | Proto::Ws | Proto::Wss => source.remote,
        Proto::Udp if rport_requested => source.remote,
        Proto::Udp => SocketAddr::new(source.remote.ip(), via_port.unwrap_or(5060)),
    }
}

pub(crate) fn host_is_ip(host: &Host, ip: IpAddr) -> bool {
    match host {
        Host::Ipv4(v4) => IpAddr::V4(*v4) == ip,
        Host::Ipv6(v6) => IpAddr::V6(*v6) == ip,
        Host::Domain(_) => false,
    }
}

/// A To-tag that depends only on what a retransmission repeats (Call-ID,
/// From-tag, top Via branch, CSeq), so the same request gets the same reply.
pub fn to_tag(req: &Message, summary: &RequestSummary) -> String {
    let mut buf = [0u8; TO_TAG_LEN];
    to_tag_into(req, summary, &mut buf).to_owned()
}

/// Length of a [`to_tag`]: `wsp` and 16 hex digits.
const TO_TAG_LEN: usize = 3 + 16;

/// [`to_tag`] written into `buf`, without an allocation.
fn to_tag_into<'a>(
    req: &Message,
    summary: &RequestSummary,
    buf: &'a mut [u8; TO_TAG_LEN],
) -> &'a str {
    // A fixed seed: the tag must come out the same for a retransmission,
    // also one that reaches a restarted router.
    let mut h = foldhash::fast::FixedState::with_seed(0x7769_7370_2d74_6167).build_hasher();
    if let Ok(id) = req.call_id() {
        id.hash(&mut h);
    }
    summary.from_tag.hash(&mut h);
    summary.top_via.branch().hash(&mut h);
    summary.cseq.hash(&mut h);
    let v = h.finish();
    buf[..3].copy_from_slice(b"wsp");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in buf[3..].iter_mut().enumerate() {
        *b = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    // Only ASCII was written.
    std::str::from_utf8(buf).unwrap_or_default()
}

/// Text of an IP address on the stack (the longest IPv6 form is 45 bytes).
struct IpText {
    buf: [u8; 48],
}

impl IpText {
    fn new() -> Self {
        IpText { buf: [0; 48] }
    }

    fn format(&mut self, ip: IpAddr) -> &str {
        use std::io::Write;
        if let IpAddr::V4(v4) = ip {
            // Dotted quad by hand: the common case, without fmt machinery.
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    self.buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    self.buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    self.buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                self.buf[n] = b'0' + octet % 10;
                n += 1;
            }
            return std::str::from_utf8(&self.buf[..n]).unwrap_or_default();
        }
        let mut cur = std::io::Cursor::new(&mut self.buf[..]);
        // 48 bytes hold any IpAddr's Display.
        let _ = write!(cur, "{ip}");
        let n = cur.position() as usize;
        std::str::from_utf8(&self.buf[..n]).unwrap_or_default()
    }
}

/// A request that does not parse but has enough to answer gets 400 with the
/// parser's reason; anything else is dropped with a log line. Scans raw lines
/// because the message model could not be built.
pub fn answer_unparsable(sl: &Stateless, data: &Bytes, source: Source, reason: &str) {
    match minimal_request(data) {
        Some(msg) => {
            let phrase = format!("Bad Request - {}", sanitize(reason));
            if let Err(e) = send_reply_unchecked(sl, &msg, source, 400, &phrase) {
                crate::log_limited!(info, remote = %source.remote, "unparsable request, no reply possible ({e}): {reason}");
            } else {
                crate::log_limited!(info, remote = %source.remote, "400 for unparsable request: {reason}");
            }
        }
        None => {
            crate::log_limited!(info, remote = %source.remote, len = data.len(), "dropped unparsable message: {reason}")
        }
    }
}

fn sanitize(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect()
}

/// Rebuild a parseable request from just the lines a reply needs, so a
/// request broken elsewhere (a bad header, a bad body length) can still be
/// answered 400. ACKs and responses are never answered.
fn minimal_request(data: &Bytes) -> Option<Message> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let first = lines.find(|l| !l.trim().is_empty())?;
    let mut parts = first.split(' ');
    let method = parts.next()?;
    let _uri = parts.next()?;
    if parts.next()? != "SIP/2.0" || method == "ACK" || method.is_empty() {
        return None;
    }
    let mut out = format!("{method} sip:invalid SIP/2.0\r\n");
    let wanted = ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"];
    let mut found = [false; 5];
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, _)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if let Some(pos) = wanted.iter().position(|w| *w == name) {
            found[[0, 0, 1, 1, 2, 2, 3, 3, 4][pos]] = true;
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    if !found.iter().all(|f| *f) {
        return None;
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    let msg = Message::parse(Bytes::from(out)).ok()?;
    msg.top_via().ok()?;
    Some(msg)
}

#[cfg(test)]
mod ip_text_tests {
    use super::IpText;
    use std::net::IpAddr;

    #[test]
    fn formats_like_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.9.255",
            "1.22.103.4",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new().format(ip), ip.to_string());
        }
    }
}
