//! The checks a request passes before routing (Kamailio `sanity_check`):
//! the headers every transaction needs must be there and parse (RFC 3261
//! §8.1.1, every Via included), CSeq must name the request's method, and
//! Max-Forwards must be a number if present. What they parse is kept in a
//! [`RequestSummary`], so replies and routes do not parse it again.

use compact_str::CompactString;

use crate::{Message, Uri, Via};

/// What the sanity check parsed once, so that replies, `to_tag` and host
/// functions do not parse the same headers again for every call.
#[derive(Debug, Clone)]
pub struct RequestSummary {
    pub ruri: Uri,
    pub top_via: Via,
    pub from_tag: Option<CompactString>,
    pub cseq: u32,
}

/// `Err(reason)` for the 400's reason phrase; `Ok` carries what was parsed.
pub fn check_request(msg: &Message) -> Result<RequestSummary, String> {
    let method = msg.method().ok_or_else(|| "not a request".to_owned())?;
    let ruri = msg
        .request_uri()
        .map_err(|e| format!("Bad Request-URI ({})", e.reason()))?;
    // Every Via is validated, only the top one is built.
    let top_via = msg
        .checked_top_via()
        .map_err(|e| format!("Bad Via ({})", e.reason()))?
        .ok_or_else(|| "Missing Via".to_owned())?;
    let from_tag = msg
        .checked_from_tag()
        .map_err(|e| format!("Bad From ({})", e.reason()))?;
    msg.check_to()
        .map_err(|e| format!("Bad To ({})", e.reason()))?;
    msg.call_id().map_err(|_| "Missing Call-ID".to_owned())?;
    let cseq = msg
        .cseq()
        .map_err(|e| format!("Bad CSeq ({})", e.reason()))?;
    if cseq.method != *method {
        return Err("CSeq method does not match".into());
    }
    msg.max_forwards()
        .map_err(|e| format!("Bad Max-Forwards ({})", e.reason()))?;
    Ok(RequestSummary {
        ruri,
        top_via,
        from_tag,
        cseq: cseq.seq,
    })
}
