//! # Stateful UA server — SER's "Stateful User Agent Server" example
//!
//! `shared/seeds/001_*.txt`: `t_newtran` shields the rest of the route from
//! retransmissions, `t_reply` answers statefully (the reply is kept and sent
//! again for each retransmission). Here every request is logged once and
//! answered `200 ok`, as in the seed:
//!
//! ```text
//! route {
//!     if (method=="ACK") { break; }
//!     if (!t_newtran()) { sl_reply_error(); break; }
//!     log(1, "New Transaction Arrived\n");
//!     if (!t_reply("200", "ok")) { sl_reply_error(); }
//! }
//! ```

use wisp_sdk::prelude::*;

struct StatefulUas;

impl Plugin for StatefulUas {
    fn route(msg: &Msg) -> Result {
        if msg.is_method("ACK") {
            return Ok(());
        }
        if msg.t_newtran().is_err() {
            return msg.sl_reply_error();
        }
        log(
            LogLevel::Info,
            &format!(
                "New Transaction Arrived: {} {}",
                msg.method(),
                msg.header("Call-ID").unwrap_or_default()
            ),
        );
        if msg.t_reply(200, "ok").is_err() {
            return msg.sl_reply_error();
        }
        Ok(())
    }
}

wisp_sdk::export!(StatefulUas);
