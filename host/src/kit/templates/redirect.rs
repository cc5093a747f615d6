//! # {name} — a Wisp redirect server
//!
//! Every INVITE is answered `302 Moved Temporarily` with the param `target`
//! as Contact; other requests (but ACK) get `405 Method Not Allowed`.
//!
//! Build: `wisp build` (prints where the component is).
//! Test:  `cargo test`, or `wisp test --plugin target/plugins/{lib}.wasm cases`.

use wisp_sdk::prelude::*;

struct Redirect {
    /// Where callers are sent (param `target`, a SIP URI).
    target: String,
}

impl Configured for Redirect {
    fn init(params: &Params) -> Result<Self, String> {
        let target = params
            .get("target")
            .ok_or("param `target` (a SIP URI) is required")?;
        Ok(Redirect {
            target: target.to_owned(),
        })
    }

    fn route(&self, msg: &Msg) -> Result {
        let method = msg.method();
        if method.is("ACK") {
            return Ok(());
        }
        if !method.is("INVITE") {
            return msg.sl_send_reply(405, "Method Not Allowed");
        }
        msg.append_branch(Some(&self.target))?;
        msg.sl_send_reply(302, "Moved Temporarily")
    }
}

wisp_sdk::export!(Redirect);
