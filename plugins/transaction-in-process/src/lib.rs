//! # "Transaction already in process" — seed 003, "Troubleshooting"
//!
//! The FAQ entry "I receive `ERROR: t_newtran: transaction already in
//! process` in my logs" (`shared/seeds/003_*.txt`) explains it as a script
//! mistake: tm handles one transaction per request, and every `t_newtran`,
//! `t_relay` or `t_relay_to_udp` tries to make one, so calling a second of
//! them fails. This plugin makes the mistake on purpose, so the tests can
//! show what Wisp does about it: the second call returns `already-handled`
//! to the plugin (nothing is sent twice), the route returns that error, the
//! router's log names it with the request's Call-ID, and the request still
//! gets exactly one final answer (the callee's, through the transaction the
//! first call made).
//!
//! The Request-URI's user part picks the mistake; its host and port are
//! where the request is relayed:
//!
//! ```text
//! route {   # sip:newtran-after-relay@host:port
//!     t_relay();
//!     t_newtran();    # ERROR: t_newtran: transaction already in process
//! }
//! route {   # sip:relay-twice@host:port
//!     t_relay();
//!     t_relay();      # refused the same way
//! }
//! ```
//!
//! Any other user is relayed once, as it should be.
//!
//! Build: `make plugins` (component at `target/plugins/transaction_in_process.wasm`).

use wisp_sdk::prelude::*;

struct TransactionInProcess;

impl Plugin for TransactionInProcess {
    fn route(msg: &Msg) -> Result {
        if msg.is_method("ACK|CANCEL") {
            return msg.relay();
        }
        match msg.ruri_user().as_deref() {
            Some("newtran-after-relay") => {
                msg.t_relay()?;
                msg.t_newtran()
            }
            Some("relay-twice") => {
                msg.t_relay()?;
                msg.t_relay()
            }
            _ => msg.relay(),
        }
    }
}

wisp_sdk::export!(TransactionInProcess);
