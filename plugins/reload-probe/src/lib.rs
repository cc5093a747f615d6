//! # reload-probe — a test fixture whose builds answer differently
//!
//! The hot-reload tests swap its two builds under load and watch the
//! answers change. Built twice by `make plugins`: `reload_probe.wasm`
//! ("v1") and, with the `v2` feature, `reload_probe_v2.wasm`.
//!
//! | request   | what the route does                                          |
//! |-----------|--------------------------------------------------------------|
//! | OPTIONS   | `sl_send_reply(200, "OK v1")` (v2: `"OK v2"`)                 |
//! | OPTIONS to user `pass` | returns: the next plugin of a chain routes it    |
//! | OPTIONS to user `drop` | `drop_request()`: no plugin routes it            |
//! | REGISTER  | `save("location")`                                           |
//! | INVITE    | `t_on_failure("busy")`, `t_relay()` to the Request-URI       |
//! | other     | `t_relay()`                                                  |
//!
//! `failure_route("busy")` answers `480 "Failed in v1"` (v2: `"Failed in
//! v2"`): which build ran the failure route shows in the reason phrase.

use wisp_sdk::prelude::*;

#[cfg(not(feature = "v2"))]
const VERSION: &str = "v1";
#[cfg(feature = "v2")]
const VERSION: &str = "v2";

struct ReloadProbe;

impl Plugin for ReloadProbe {
    fn route(msg: &Msg) -> Result {
        match msg.method().as_str() {
            "OPTIONS" => match msg.ruri_user().as_deref() {
                Some("pass") => Ok(()),
                Some("drop") => msg.drop_request(),
                _ => msg.sl_send_reply(200, &format!("OK {VERSION}")),
            },
            "REGISTER" => msg.save("location"),
            "INVITE" => {
                msg.t_on_failure("busy");
                msg.t_relay()
            }
            _ => msg.t_relay(),
        }
    }

    fn failure_route(name: &str, msg: &Msg) -> Result {
        match name {
            "busy" => msg.t_reply(480, &format!("Failed in {VERSION}")),
            _ => Ok(()),
        }
    }
}

wisp_sdk::export!(ReloadProbe);
