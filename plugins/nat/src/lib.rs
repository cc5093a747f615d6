//! # nat — phones behind NAT, as the stock `kamailio.cfg` handles them
//!
//! The NAT parts of Kamailio's default configuration (`WITH_NAT`) around the
//! usual registrar and proxy: a request whose sender is behind a NAT
//! (`route[NATDETECT]`) has its REGISTER saved at the address it came from,
//! and any other request's Contact gets an `alias` of that address, so that
//! requests sent to that Contact later (in-dialog, through `loose_route`)
//! come back through the NAT (`route[DLGURI]`). Replies of a NATed callee get
//! the same alias (`onreply_route[MANAGE]`).
//!
//! With the param `rtpengine = true` (and `[rtpengine] sockets` in the
//! manifest) media goes through rtpengine, as `route[NATMANAGE]` does it
//! with `rtpengine_manage`: an INVITE's SDP is offered when the INVITE is
//! relayed, the SDP of a 183 or 200 is the answer (or the offer, when the
//! INVITE had none; the ACK then answers), and a BYE or CANCEL ends the
//! session, as does the failed INVITE's final reply. Unlike the script,
//! which manages media only for calls with a NATed party, this does it for
//! every call: a relay in the middle also hides the callee's address.
//! `SIP-source-address` (the script's `nat_uac_test("8")` case) tells
//! rtpengine to send media where the SIP message came from, not to the
//! private address in the SDP.
//!
//! ```text
//! route {
//!     route(NATDETECT);
//!     if (!is_method("REGISTER")) { record_route(); }
//!     if (loose_route()) { route(DLGURI); route(RELAY); }
//!     if (is_method("REGISTER")) { save("location"); exit; }
//!     if (!uri==myself) { route(RELAY); }
//!     if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
//!     route(RELAY);
//! }
//! route[NATDETECT] {
//!     force_rport();                                 # the host always honours rport
//!     if (nat_uac_test("19")) {
//!         if (is_method("REGISTER")) { fix_nated_register(); }
//!         else { add_contact_alias(); }
//!     }
//! }
//! route[DLGURI] { if (!isdsturiset()) { handle_ruri_alias(); } }
//! route[RELAY] {
//!     route(NATMANAGE);                                            # rtpengine = true
//!     t_on_reply("MANAGE"); if (!t_relay()) { sl_reply_error(); } exit;
//! }
//! route[NATMANAGE] {
//!     if (nat_uac_test("8")) {
//!         rtpengine_manage("SIP-source-address replace-origin replace-session-connection");
//!     } else {
//!         rtpengine_manage("replace-origin replace-session-connection");
//!     }
//! }
//! onreply_route[MANAGE] {
//!     if (status=~"[12][0-9][0-9]") { route(NATMANAGE); }          # rtpengine = true
//!     if (nat_uac_test("1")) { add_contact_alias(); }
//! }
//! ```
//!
//! Build: `make plugins` (component at `target/plugins/nat.wasm`).

use std::sync::OnceLock;

use wisp_sdk::prelude::*;

/// Param `rtpengine`: media through the manifest's `[rtpengine]`.
static RTPENGINE: OnceLock<bool> = OnceLock::new();

/// `nat_uac_test("19")`: private Contact (1), Via is not the source (2),
/// Via port is not the source port (16).
const NAT_TESTS: u32 = 1 | 2 | 16;

struct Nat;

impl Plugin for Nat {
    fn init(params: &Params) -> Result<(), String> {
        let _ = RTPENGINE.set(params.get_or("rtpengine", false)?);
        Ok(())
    }

    fn route(msg: &Msg) -> Result {
        let method = msg.method();
        // route(NATDETECT);
        if msg.nat_uac_test(NAT_TESTS)? {
            if method.is("REGISTER") {
                msg.fix_nated_register();
            } else if msg.header("Contact").is_some() {
                msg.add_contact_alias()?;
            }
        }
        // if (!is_method("REGISTER")) { record_route(); }
        if !method.is("REGISTER") {
            msg.record_route()?;
        }
        // if (loose_route()) { route(DLGURI); route(RELAY); }
        if msg.loose_route()? {
            // route[DLGURI]: the Contact's alias, if the far end is NATed.
            msg.handle_ruri_alias()?;
            return relay(msg);
        }
        // if (is_method("REGISTER")) { save("location"); exit; }
        if method.is("REGISTER") {
            return msg.save("location");
        }
        // if (!uri==myself) { route(RELAY); }
        if !msg.ruri_is_myself() {
            return relay(msg);
        }
        // if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
        match msg.lookup("location") {
            Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
            other => other?,
        }
        relay(msg)
    }

    // onreply_route[MANAGE]
    fn onreply_route(_name: &str, msg: &Msg) -> Result {
        // if (status=~"[12][0-9][0-9]") { route(NATMANAGE); }
        if *RTPENGINE.get().unwrap_or(&false) && msg.status().is_some_and(|s| s < 300) {
            nat_manage(msg)?;
        }
        // if (nat_uac_test("1")) { add_contact_alias(); }
        if msg.header("Contact").is_some() && msg.nat_uac_test(1)? {
            msg.add_contact_alias()?;
        }
        Ok(())
    }
}

/// `nat_uac_test("8")`: the SDP carries a private address.
const NAT_SDP: u32 = 8;

/// `route[NATMANAGE]`: offer, answer or delete, as the message needs.
fn nat_manage(msg: &Msg) -> Result {
    if msg.nat_uac_test(NAT_SDP)? {
        msg.rtpengine_manage("SIP-source-address replace-origin replace-session-connection")
    } else {
        msg.rtpengine_manage("replace-origin replace-session-connection")
    }
}

/// `route[RELAY]`: media through rtpengine when asked (`route(NATMANAGE)`),
/// then `t_on_reply("MANAGE"); if (!t_relay()) { sl_reply_error(); }`
fn relay(msg: &Msg) -> Result {
    if *RTPENGINE.get().unwrap_or(&false) {
        nat_manage(msg)?;
    }
    msg.t_on_reply("MANAGE");
    if msg.t_relay().is_err() {
        return msg.sl_reply_error();
    }
    Ok(())
}

wisp_sdk::export!(Nat);
