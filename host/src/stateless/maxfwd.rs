//! Max-Forwards (Kamailio `maxfwd` module, RFC 3261 §16.6 step 3).

use crate::stateless::context::{ActionError, MsgContext, RouteKind};

/// Max-Forwards written into a request that has none (RFC 3261 §8.1.1.6).
pub const DEFAULT_MAX_FORWARDS: u32 = 70;

/// `mf_process_maxfwd_header(limit)`: decrement Max-Forwards, or add it with
/// `limit` when absent. `Ok(false)` when the request arrived with 0 (answer 483).
pub fn process_maxfwd(ctx: &mut MsgContext, limit: u32) -> Result<bool, ActionError> {
    let current = ctx
        .msg
        .max_forwards()
        .map_err(|e| ActionError::BadMessage(format!("Max-Forwards: {}", e.reason())))?;
    ctx.maxfwd_processed = true;
    match current {
        None => {
            ctx.msg.set_max_forwards(limit);
            Ok(true)
        }
        Some(0) => Ok(false),
        Some(n) => {
            ctx.msg.set_max_forwards(n - 1);
            Ok(true)
        }
    }
}

/// Before a request route forwards (`forward`, `t_relay`): RFC 3261 §16.6
/// step 3 on behalf of a plugin that did not call
/// `mf_process_maxfwd_header`, so a routing loop always ends. A request
/// that arrived with Max-Forwards 0 is refused with 483 (the route's error
/// reply) instead of going round again. Once per request; failure routes
/// relay the transaction's request, which was counted when it first left.
pub fn before_forwarding(ctx: &mut MsgContext) -> Result<(), ActionError> {
    if ctx.maxfwd_processed || ctx.route != RouteKind::Request {
        return Ok(());
    }
    if process_maxfwd(ctx, DEFAULT_MAX_FORWARDS)? {
        return Ok(());
    }
    Err(ctx.fail(
        483,
        "Too Many Hops",
        ActionError::LimitReached("Max-Forwards is 0: not forwarded (a routing loop?)".into()),
    ))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use wisp_sip::Message;

    use super::*;
    use crate::stateless::sanity;
    use crate::transport::{Proto, Source};

    fn ctx(max_forwards: Option<u32>, route: RouteKind) -> MsgContext {
        let mf = max_forwards.map_or(String::new(), |n| format!("Max-Forwards: {n}\r\n"));
        let raw = format!(
            "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKmf\r\n\
             {mf}From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: mf\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let msg = Message::parse(Bytes::from(raw)).expect("parses");
        let summary = sanity::check_request(&msg).expect("sane");
        let source = Source {
            proto: Proto::Udp,
            remote: "192.0.2.1:5060".parse().expect("addr"),
            local: "127.0.0.1:5060".parse().expect("addr"),
        };
        let mut ctx = MsgContext::new(msg, source, summary);
        ctx.route = route;
        ctx
    }

    /// Max-Forwards as the request leaves (edits applied).
    fn max_forwards(ctx: &MsgContext) -> Option<u32> {
        let out = Message::parse(ctx.msg.serialize()).expect("serialized request parses");
        out.max_forwards().expect("parses")
    }

    /// RFC 3261 §16.6 step 3 once per hop, whoever does it.
    #[test]
    fn forwarding_decrements_once_and_refuses_zero_with_483() {
        let mut c = ctx(Some(5), RouteKind::Request);
        before_forwarding(&mut c).expect("forwarded");
        before_forwarding(&mut c).expect("a second forward of the same request");
        assert_eq!(max_forwards(&c), Some(4));

        // The plugin did it already: not again.
        let mut c = ctx(Some(5), RouteKind::Request);
        assert!(process_maxfwd(&mut c, 10).expect("ok"));
        before_forwarding(&mut c).expect("forwarded");
        assert_eq!(max_forwards(&c), Some(4));

        // None: 70 is written, as a UAC would have.
        let mut c = ctx(None, RouteKind::Request);
        before_forwarding(&mut c).expect("forwarded");
        assert_eq!(max_forwards(&c), Some(DEFAULT_MAX_FORWARDS));

        // Zero: refused, and the route's error reply is 483.
        let mut c = ctx(Some(0), RouteKind::Request);
        assert!(before_forwarding(&mut c).is_err());
        assert_eq!(c.last_error, Some((483, "Too Many Hops")));

        // A failure route relays the request that left already counted.
        let mut c = ctx(Some(5), RouteKind::Failure);
        before_forwarding(&mut c).expect("relayed");
        assert_eq!(max_forwards(&c), Some(5));
    }
}
