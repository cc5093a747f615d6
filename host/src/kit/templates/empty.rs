//! # {name} — a Wisp routing plugin
//!
//! Relays every request statefully (Kamailio's `route[RELAY]`): write your
//! routing logic in `route`.
//!
//! Build: `wisp build` (prints where the component is).
//! Test:  `cargo test`, or `wisp test --plugin target/plugins/{lib}.wasm cases`.

use wisp_sdk::prelude::*;

struct Router;

impl Plugin for Router {
    fn route(msg: &Msg) -> Result {
        msg.relay()
    }
}

wisp_sdk::export!(Router);
