//! # acc — seed 003's "Accounting" and "Reporting Missed Calls" scripts
//!
//! The default plugin's route (`plugins/default`) with SER's accounting
//! flags on the calls it relays to registered users: flag 1 (`log_flag`)
//! accounts every INVITE and BYE, flag 3 (`log_missed_flag`) reports the
//! INVITEs that end with a status of 300 or more; a call to a user who is
//! not registered, answered 404 here, is recorded with `acc_request`
//! (a missed call too, for an INVITE). The manifest names the
//! flags (`[acc] log_flag = 1`, `log_missed_flag = 3`); the records go to
//! the log and `wisp ctl acc show`.
//!
//! ```text
//! modparam("acc", "log_flag", 1)
//! modparam("acc", "log_missed_flag", 3)
//! route {
//!     ... (default's route up to lookup)
//!     if (method=="INVITE" || method=="BYE") { setflag(1); }
//!     if (method=="INVITE") { setflag(3); }
//!     if (!lookup("location")) {
//!         acc_request("404 Not Found");
//!         sl_send_reply("404", "Not Found");
//!         exit;
//!     }
//!     route(1);
//! }
//! route[1] { if (!t_relay()) { sl_reply_error(); } exit; }
//! ```
//!
//! Build: `make plugins` (component at `target/plugins/acc.wasm`).

use wisp_sdk::prelude::*;

/// `log_flag` of the manifest: every accounted transaction.
const ACC_FLAG: u8 = 1;
/// `log_missed_flag`: a call that ends with 300 or more.
const MISSED_FLAG: u8 = 3;

struct Acc;

impl Plugin for Acc {
    fn route(msg: &Msg) -> Result {
        if !msg.mf_process_maxfwd_header(10)? {
            return msg.sl_send_reply(483, "Too Many Hops");
        }
        let for_me = msg.ruri_is_myself();
        let method = msg.method();
        if for_me && method.is("OPTIONS") && msg.ruri_user().is_none() {
            return msg.sl_send_reply(200, "Keepalive");
        }
        if method.is("INVITE") || method.is("BYE") {
            msg.setflag(ACC_FLAG);
        }
        if method.is("INVITE") {
            msg.setflag(MISSED_FLAG);
        }
        if !method.is("REGISTER") {
            msg.record_route()?;
        }
        if msg.loose_route()? || !for_me {
            return msg.relay();
        }
        if method.is("REGISTER") {
            return msg.save("location");
        }
        match msg.lookup("location") {
            Err(Error::NotFound) => {
                // The flags account transactions; this 404 is answered
                // here, statelessly: recorded by hand, as seed 003 does.
                msg.acc_request("404 Not Found")?;
                return msg.sl_send_reply(404, "Not Found");
            }
            other => other?,
        }
        msg.relay()
    }
}

wisp_sdk::export!(Acc);
