//! # Connecting to PBX Voicemail Using a Cisco Gateway — seed 003
//!
//! SER's `examples/ccdiversion.cfg` (`shared/seeds/003_*.txt`): a call to a
//! registered user that fails (busy, no answer, offline) goes to the PBX
//! voicemail behind a PSTN gateway, with the originally called URI in a
//! `CC-Diversion` header, which Cisco gateways turn into the PSTN's
//! redirecting number so that the voicemail knows whose box it is.
//!
//! ```text
//! route {
//!     if (method=="REGISTER") { save("location"); break; };
//!     if (!lookup("location")) { sl_send_reply("404", "Not Found"); break; };
//!     t_on_failure("1");
//!     t_relay();
//! }
//! failure_route[1] {
//!     append_urihf("CC-Diversion: ", "\r\n");   # the original Request-URI
//!     rewriteuri("sip:7781@192.168.2.16;user=phone");
//!     append_branch();
//!     t_relay();
//! }
//! ```
//!
//! Param: `voicemail` (the voicemail number at the gateway; the seed's
//! `sip:7781@192.168.2.16;user=phone` by default).
//!
//! Build: `make plugins` (component at `target/plugins/voicemail_diversion.wasm`).

use std::sync::OnceLock;
use wisp_sdk::prelude::*;

static VOICEMAIL: OnceLock<String> = OnceLock::new();

struct VoicemailDiversion;

impl Plugin for VoicemailDiversion {
    fn init(params: &Params) -> Result<(), String> {
        let vm = params.get_or("voicemail", "sip:7781@192.168.2.16;user=phone".to_owned())?;
        let _ = VOICEMAIL.set(vm);
        Ok(())
    }

    fn route(msg: &Msg) -> Result {
        // if (method=="REGISTER") { save("location"); break; };
        if msg.is_method("REGISTER") {
            return msg.save("location");
        }
        // In-dialog ACKs and BYEs are not part of the example.
        if msg.is_method("ACK") {
            return msg.forward();
        }
        // if (!lookup("location")) { sl_send_reply("404", "Not Found"); break; };
        match msg.lookup("location") {
            Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
            other => other?,
        }
        // t_on_failure("1"); t_relay();
        msg.t_on_failure("1");
        if msg.t_relay().is_err() {
            return msg.sl_reply_error();
        }
        Ok(())
    }

    fn failure_route(_name: &str, msg: &Msg) -> Result {
        // The caller hung up: nothing more to try.
        if msg.t_is_canceled() {
            return Ok(());
        }
        // append_urihf("CC-Diversion: ", "\r\n");  -- the URI as the caller sent it
        msg.revert_uri();
        msg.append_hf(&format!("CC-Diversion: {}", msg.ruri()))?;
        // rewriteuri("sip:7781@192.168.2.16;user=phone");
        msg.set_ruri(VOICEMAIL.get().map_or("", String::as_str))?;
        // append_branch(); t_relay();
        msg.append_branch(None)?;
        msg.t_relay()
    }
}

wisp_sdk::export!(VoicemailDiversion);
