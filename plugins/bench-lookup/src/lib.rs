//! # Bench-lookup — the fixture of the several-routers benchmark
//!
//! The same script as `bench/kamailio-usrloc-pg.cfg`, so both routers do
//! the same work per request: a REGISTER is saved, any other request is
//! answered from user location without being relayed, so the benchmark
//! measures `save` and `lookup` on the shared database and nothing else.
//!
//! Build: `make plugins` (component at `target/plugins/bench_lookup.wasm`);
//! run by `scripts/bench-pg.sh`.

use wisp_sdk::prelude::*;

struct BenchLookup;

impl Plugin for BenchLookup {
    fn route(msg: &Msg) -> Result {
        // if (is_method("REGISTER")) { save("location"); exit; }
        if msg.is_method("REGISTER") {
            return msg.save("location");
        }
        // if (lookup("location")) sl_send_reply("200", "Found");
        // else sl_send_reply("404", "Not Found");
        match msg.lookup("location") {
            Ok(()) => msg.sl_send_reply(200, "Found"),
            Err(Error::NotFound) => msg.sl_send_reply(404, "Not Found"),
            Err(e) => Err(e),
        }
    }
}

wisp_sdk::export!(BenchLookup);
