//! # faulty — a test fixture that misbehaves on request
//!
//! The end-to-end tests load it to prove that a broken plugin cannot take the
//! router down. The Request-URI's user part picks the failure:
//!
//! | user    | what the route does                         | router answers |
//! |---------|---------------------------------------------|----------------|
//! | `panic` | panics (a trap)                             | 500            |
//! | `loop`  | loops forever (deadline overrun)            | 500            |
//! | `alloc` | allocates without end (memory cap)          | 500            |
//! | `error` | returns an error without replying           | 500            |
//! | `stale` | keeps nothing; replies twice (second refused) | 200          |
//! | `ungranted` | `exec_dset("/bin/echo sip:x@y")` without an `exec` grant; returns the `not-permitted` error | 500 |
//! | other   | `sl_send_reply(200, "OK")`                  | 200            |
//!
//! Build: `make plugins` (component at `target/plugins/faulty.wasm`).

use wisp_sdk::prelude::*;

struct Faulty;

impl Plugin for Faulty {
    fn route(msg: &Msg) -> Result {
        match msg.ruri_user().as_deref() {
            Some("panic") => panic!("asked to panic"),
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = core::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("alloc") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    core::hint::black_box(&hoard);
                }
            }
            Some("error") => Err(Error::Internal("asked to fail".into())),
            // The manifest grants faulty nothing: the host refuses at once
            // and the error goes back to the router, which answers 500.
            Some("ungranted") => match msg.exec_dset("/bin/echo sip:x@y") {
                Err(e @ Error::NotPermitted(_)) => Err(e),
                Err(other) => Err(Error::Internal(format!(
                    "expected not-permitted, got {other:?}"
                ))),
                Ok(()) => msg.sl_send_reply(200, "Granted?"),
            },
            Some("stale") => {
                msg.sl_send_reply(200, "OK")?;
                match msg.sl_send_reply(200, "Again") {
                    Err(Error::AlreadyHandled) => Ok(()),
                    other => other,
                }
            }
            _ => msg.sl_send_reply(200, "OK"),
        }
    }
}

wisp_sdk::export!(Faulty);
