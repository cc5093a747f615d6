//! Max-Forwards (Kamailio `maxfwd` module, RFC 3261 §16.6 step 3).

use crate::stateless::context::{ActionError, MsgContext};

/// `mf_process_maxfwd_header(limit)`: decrement Max-Forwards, or add it with
/// `limit` when absent. `Ok(false)` when the request arrived with 0 (answer 483).
pub fn process_maxfwd(ctx: &mut MsgContext, limit: u32) -> Result<bool, ActionError> {
    let current = ctx
        .msg
        .max_forwards()
        .map_err(|e| ActionError::BadMessage(format!("Max-Forwards: {}", e.reason())))?;
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
