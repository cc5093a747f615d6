//! # default — the plugin `make run` loads
//!
//! The seeds' Hello World script (see `plugins/hello-world`) plus what
//! Kamailio's default `kamailio.cfg` does in `route[REQINIT]`: flood
//! detection with a ban list (`WITH_ANTIFLOOD`), a silent drop for known
//! scanners, and `200 Keepalive` for an OPTIONS to the router itself
//! without a user part.
//!
//! ```text
//! route[REQINIT] {
//!     if (src_ip != myself) {             # antiflood = true
//!         if ($sht(ipban=>$si) != $null) { exit; }
//!         if (!pike_check_req()) {
//!             xlog("L_ALERT", "ALERT: pike blocking $rm from $fu (IP:$si:$sp)\n");
//!             $sht(ipban=>$si) = 1; exit;
//!         }
//!     }
//!     if ($ua =~ "friendly|scanner|sipcli|sipvicious|VaxSIPUserAgent") { exit; }  # drop_scanners = true
//! }
//! route {
//!     route(REQINIT);
//!     if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Too Many Hops"); exit; }
//!     if (msg:len >= max_len) { sl_send_reply("513", "Message too big"); exit; }
//!     if (is_method("OPTIONS") && uri==myself && $rU==$null) { sl_send_reply("200","Keepalive"); exit; }
//!     if (!method=="REGISTER") { record_route(); }
//!     if (loose_route()) { route(1); }
//!     if (!uri==myself) { route(1); }
//!     if (method=="REGISTER") { save("location"); exit; }
//!     lookup("aliases");                  # seed 003, "User Aliases"
//!     if (!uri==myself) { route(1); }
//!     if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
//!     route(1);
//! }
//! route[1] { if (!t_relay()) { sl_reply_error(); } exit; }
//! ```
//!
//! Params: `max_len` (default 8192); `antiflood` (default true) and
//! `ban_table` (default `"ipban"`, a `[[htable]]` the manifest must declare
//! when `antiflood` is on; `config/wisp.toml` does, with `autoexpire = 300`).
//! How fast a source may send is the manifest's `[pike]`. `drop_scanners`
//! (default true) drops requests whose User-Agent names a scanner.
//! Build: `make plugins` (component at `target/plugins/default.wasm`).
//! Run:   `make run` (manifest `config/wisp.toml`).

use wisp_sdk::htable::{self, ShtValue};
use wisp_sdk::prelude::*;

/// User-Agents of SIP scanners, as in Kamailio's default `kamailio.cfg`
/// (`$ua =~` there; compared without regard to case here).
const SCANNERS: &str = "(?i)friendly|scanner|sipcli|sipvicious|VaxSIPUserAgent";

struct Default {
    max_len: u32,
    /// The ban list's table, when antiflood is on.
    ban_table: Option<String>,
    drop_scanners: bool,
}

impl Configured for Default {
    fn init(params: &Params) -> Result<Self, String> {
        let max_len = params.get_or("max_len", 8192u32)?;
        let ban_table = if params.get_or("antiflood", true)? {
            let table: String = params.get_or("ban_table", "ipban".to_string())?;
            // The table must exist: find out now rather than on the first flood.
            if htable::sht_get(&table, "").is_err() {
                return Err(format!(
                    "antiflood needs [[htable]] name = {table:?} in the manifest \
                     (or params antiflood = false)"
                ));
            }
            Some(table)
        } else {
            None
        };
        Ok(Default {
            max_len,
            ban_table,
            drop_scanners: params.get_or("drop_scanners", true)?,
        })
    }

    fn route(&self, msg: &Msg) -> Result {
        if self.reqinit(msg)? {
            return Ok(());
        }
        if !msg.mf_process_maxfwd_header(10)? {
            return msg.sl_send_reply(483, "Too Many Hops");
        }
        if msg.len() >= self.max_len {
            return msg.sl_send_reply(513, "Message too big");
        }
        let for_me = msg.ruri_is_myself();
        // The method once: every `is_method` is a host call.
        let method = msg.method();
        if for_me && method.is("OPTIONS") && msg.ruri_user().is_none() {
            return msg.sl_send_reply(200, "Keepalive");
        }
        if !method.is("REGISTER") {
            msg.record_route()?;
        }
        if msg.loose_route()? {
            return msg.relay();
        }
        if !for_me {
            return msg.relay();
        }
        if method.is("REGISTER") {
            return msg.save("location");
        }
        // An alias (`wisp ctl alias add`) rewrites the R-URI to its canonical
        // AOR, which may be elsewhere. As in the seed the result is not
        // checked: no alias, no user part or no `aliases` table all leave
        // the request to `lookup("location")`.
        if msg.lookup("aliases").is_ok() && !msg.ruri_is_myself() {
            return msg.relay();
        }
        match msg.lookup("location") {
            Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
            other => other?,
        }
        msg.relay()
    }
}

impl Default {
    /// `route[REQINIT]`: true when the request was dropped.
    fn reqinit(&self, msg: &Msg) -> Result<bool> {
        if let Some(table) = &self.ban_table {
            if !msg.src_is_myself() {
                let src = msg.src_ip();
                if htable::sht_get(table, &src)?.is_some() {
                    msg.drop_request()?;
                    return Ok(true);
                }
                if !msg.pike_check_req() {
                    log(
                        LogLevel::Warn,
                        &format!(
                            "ALERT: pike blocking {} from IP {src}; banned",
                            msg.method()
                        ),
                    );
                    htable::sht_set(table, &src, &ShtValue::Int(1))?;
                    msg.drop_request()?;
                    return Ok(true);
                }
            }
        }
        if !self.drop_scanners {
            return Ok(false);
        }
        if msg.search_hf("User-Agent", SCANNERS)? {
            msg.drop_request()?;
            return Ok(true);
        }
        Ok(false)
    }
}

wisp_sdk::export!(Default);
