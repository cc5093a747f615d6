//! # Logging script — seed 003, "Recommended Operational Practices": "Logging"
//!
//! SER's advice for debugging a routing script is to run it in the
//! foreground with the log on standard error and to `log()` what the script
//! decides. The seed (`shared/seeds/003_*.txt`) includes
//! `examples/logging.cfg` by reference only and prints what it logs for a
//! REGISTER sent to the server's own IP address:
//!
//! ```text
//! 0(17379) REGISTER received
//! 0(17379) request for other domain received
//! ```
//!
//! This plugin is that script: one line for a REGISTER, one saying whether
//! the Request-URI names the served domain (by name, so the server's own
//! IP address is "other domain", as in the seed's output). Wisp's router
//! log (standard error, or `server.log_format = "json"`) carries each line
//! with `plugin=`, `version=` and the request's `call_id=`, so lines of
//! concurrent requests can be told apart. The script then does what it
//! must so that every request gets its answer: a REGISTER is saved, the
//! rest is relayed.
//!
//! ```text
//! route {
//!     if (method=="REGISTER") { log(1, "REGISTER received\n"); };
//!     if (uri=~"^sip:(.+@)?iptel\.org([:;?].*)?$") { log(1, "request for my domain received\n"); }
//!     else { log(1, "request for other domain received\n"); };
//!     if (method=="REGISTER") { save("location"); break; };
//!     t_relay();
//! }
//! ```
//!
//! Param: `domain` (the served domain; `iptel.org` by default).
//!
//! Build: `make plugins` (component at `target/plugins/logging.wasm`).

use wisp_sdk::prelude::*;

struct Logging {
    domain: String,
}

impl Configured for Logging {
    fn init(params: &Params) -> Result<Self, String> {
        Ok(Logging {
            domain: params.get_or("domain", "iptel.org".to_owned())?,
        })
    }

    fn route(&self, msg: &Msg) -> Result {
        let register = msg.is_method("REGISTER");
        if register {
            log(LogLevel::Info, "REGISTER received");
        }
        if msg.ruri_host().eq_ignore_ascii_case(&self.domain) {
            log(LogLevel::Info, "request for my domain received");
        } else {
            log(LogLevel::Info, "request for other domain received");
        }
        if register {
            return msg.save("location");
        }
        msg.relay()
    }
}

wisp_sdk::export!(Logging);
