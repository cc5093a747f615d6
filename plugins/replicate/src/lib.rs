//! # Replication of user contacts — SER's `replicate.cfg`
//!
//! `shared/seeds/003_*.txt`, "Script for Replication of User Contacts":
//! every REGISTER is saved locally and replicated statefully to a peer
//! registrar, unless it came from that peer (a replica itself).
//!
//! ```text
//! route {
//!     if (uri==myself) {
//!         if (method=="REGISTER") {
//!             save("location");
//!             if (!src_ip==backup.foo.bar) { t_replicate("sip:backup.foo.bar:5060"); }
//!             break;
//!         }
//!         if (!lookup("location")) { sl_send_reply("404", "Not Found"); break; }
//!     }
//!     if (!t_relay()) { sl_reply_error(); }
//! }
//! ```
//!
//! Params: `backup` — the peer's SIP URI (`sip:IP:PORT`); `backup_ip` — its
//! source address, whose REGISTERs are not replicated back.

use std::sync::OnceLock;
use wisp_sdk::prelude::*;

static BACKUP: OnceLock<(String, String)> = OnceLock::new();

struct Replicate;

impl Plugin for Replicate {
    fn init(params: &Params) -> Result<(), String> {
        let uri = params
            .get("backup")
            .ok_or("param `backup` (a SIP URI) is required")?;
        let ip = params.get("backup_ip").unwrap_or("");
        let _ = BACKUP.set((uri.to_owned(), ip.to_owned()));
        Ok(())
    }

    fn route(msg: &Msg) -> Result {
        let (backup, backup_ip) = BACKUP
            .get()
            .map(|(u, i)| (u.as_str(), i.as_str()))
            .unwrap_or(("", ""));
        if msg.ruri_is_myself() {
            if msg.is_method("REGISTER") {
                msg.save("location")?;
                if msg.src_ip() != backup_ip {
                    msg.t_replicate(backup)?;
                }
                return Ok(());
            }
            match msg.lookup("location") {
                Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
                other => other?,
            }
        }
        if msg.t_relay().is_err() {
            return msg.sl_reply_error();
        }
        Ok(())
    }
}

wisp_sdk::export!(Replicate);
