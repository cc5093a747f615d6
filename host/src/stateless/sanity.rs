//! Checks a request passes before routing: the headers every transaction
//! needs must be there and parse (RFC 3261 §8.1.1), and CSeq must name the
//! request's method. A failure is answered 400 with the reason.

use wisp_sip::Message;

use crate::stateless::context::RequestSummary;

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
