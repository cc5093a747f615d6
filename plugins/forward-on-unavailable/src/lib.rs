//! # Forward on unavailable — SER's "On-Reply Processing" example
//!
//! The SER admin guide's forward-on-unavailable script
//! (`shared/seeds/001_*.txt`, "On-Reply Processing"), line for line: relay
//! statefully; if every destination fails (a negative final reply, or no
//! final reply within `fr_timer` / `fr_inv_timer`), `failure_route[1]` tries
//! a second destination; if that fails too, `failure_route[2]` tries the
//! last resort.
//!
//! ```text
//! route {
//!     if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Too Many Hops"); break; }
//!     seturi("sip:parallel@iptel.org:9");
//!     t_on_failure("1");
//!     t_relay();
//! }
//! failure_route[1] {
//!     revert_uri();
//!     rewritehostport("iptel.org:5070");   # here: append_branch(second)
//!     append_branch();
//!     t_on_failure("2");
//!     t_relay();
//! }
//! failure_route[2] {
//!     append_branch("sip:foo@iptel.org");  # here: append_branch(last)
//!     t_relay();
//! }
//! ```
//!
//! Params: `first`, `second`, `last` (SIP URIs). Requests to the router
//! itself (REGISTER, OPTIONS keepalives) are not part of the example and are
//! answered 200 statelessly; an ACK is forwarded statelessly.

use wisp_sdk::prelude::*;

/// The `first`, `second` and `last` destinations.
struct ForwardOnUnavailable {
    targets: [String; 3],
}

impl Configured for ForwardOnUnavailable {
    fn init(params: &Params) -> Result<Self, String> {
        let get = |k: &str| {
            params
                .get(k)
                .map(str::to_owned)
                .ok_or_else(|| format!("param `{k}` (a SIP URI) is required"))
        };
        Ok(ForwardOnUnavailable {
            targets: [get("first")?, get("second")?, get("last")?],
        })
    }

    fn route(&self, msg: &Msg) -> Result {
        // One line per route run: the end-to-end tests count them to prove
        // that retransmissions never reach the plugin.
        log(
            LogLevel::Info,
            &format!(
                "route {} {}",
                msg.method(),
                msg.header("Call-ID").unwrap_or_default()
            ),
        );
        if !msg.mf_process_maxfwd_header(10)? {
            return msg.sl_send_reply(483, "Too Many Hops");
        }
        if msg.is_method("ACK|BYE|CANCEL") || !msg.is_method("INVITE") {
            // Not part of the example: end-to-end ACKs and the rest go to
            // the first destination statelessly.
            if msg.is_method("ACK") {
                return msg.forward();
            }
            return msg.sl_send_reply(200, "OK");
        }
        msg.set_ruri(&self.targets[0])?;
        msg.t_on_failure("1");
        msg.relay()
    }

    fn failure_route(&self, name: &str, msg: &Msg) -> Result {
        match name {
            "1" => {
                log(LogLevel::Info, "first redirection");
                msg.revert_uri();
                msg.append_branch(Some(&self.targets[1]))?;
                msg.t_on_failure("2");
                msg.t_relay()
            }
            "2" => {
                log(LogLevel::Info, "second redirection");
                msg.append_branch(Some(&self.targets[2]))?;
                msg.t_relay()
            }
            _ => Ok(()),
        }
    }
}

wisp_sdk::export!(ForwardOnUnavailable);
