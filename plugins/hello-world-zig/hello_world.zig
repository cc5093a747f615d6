//! Hello World -- the seeds' first ser.cfg / openser.cfg, as a Wisp plugin in Zig.
//!
//! The "Hello World" script of the SER and OpenSER guides
//! (shared/seeds/002_*.txt, 004_*.txt), line for line like plugins/hello-world
//! (Rust): sanity checks (Max-Forwards, message size), REGISTER ->
//! save("location"), requests for a local user -> lookup("location") or 404,
//! everything else relayed.
//!
//! Build: `make plugins` (ziglang from PyPI, over wit-bindgen's C bindings,
//! to target/plugins/hello_world_zig.wasm). wisp.zig wraps the bindings.

const std = @import("std");
const wisp = @import("wisp.zig");
const Msg = wisp.Msg;

comptime {
    _ = wisp; // its exports
}

/// The seed's max_len: requests this long or longer get 513.
var max_len: u32 = 8192;

pub fn init(params: wisp.Params) !void {
    if (params.get("max_len")) |value| max_len = try std.fmt.parseInt(u32, value, 10);
}

pub fn route(msg: Msg) !void {
    // if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Too Many Hops"); exit; }
    if (!try msg.mfProcessMaxfwdHeader(10)) return msg.slSendReply(483, "Too Many Hops");
    // if (msg:len >= max_len) { sl_send_reply("513", "Message too big"); exit; }
    if (msg.len() >= max_len) return msg.slSendReply(513, "Message too big");
    const register = msg.method() == .register;
    // if (!method=="REGISTER") { record_route(); }
    if (!register) try msg.recordRoute();
    // if (loose_route()) { append_hf("P-hint: rr-enforced\r\n"); route(1); }
    if (try msg.looseRoute()) {
        try msg.appendHf("P-hint: rr-enforced");
        return relay(msg);
    }
    // if (!uri==myself) { append_hf("P-hint: outbound\r\n"); route(1); }
    if (!msg.ruriIsMyself()) {
        try msg.appendHf("P-hint: outbound");
        return relay(msg);
    }
    // if (method=="REGISTER") { save("location"); exit; }
    if (register) return msg.save("location");
    // if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
    msg.lookup("location") catch |e| switch (e) {
        error.NotFound => return msg.slSendReply(404, "Not Found"),
        else => return e,
    };
    // append_hf("P-hint: usrloc applied\r\n");
    try msg.appendHf("P-hint: usrloc applied");
    return relay(msg);
}

/// route[1]: if (!t_relay()) { sl_reply_error(); }
fn relay(msg: Msg) !void {
    msg.tRelay() catch return msg.slReplyError();
}
