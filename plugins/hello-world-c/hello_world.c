/*
 * Hello World -- the seeds' first ser.cfg / openser.cfg, as a Wisp plugin in C.
 *
 * The "Hello World" script of the SER and OpenSER guides
 * (shared/seeds/002_*.txt, 004_*.txt), line for line like plugins/hello-world
 * (Rust): sanity checks (Max-Forwards, message size), REGISTER ->
 * save("location"), requests for a local user -> lookup("location") or 404,
 * everything else relayed.
 *
 * Build: `make plugins` (clang-19 + wasi-libc, to target/plugins/hello_world_c.wasm).
 * wisp.h wraps the generated bindings (bindings/, see README.md).
 */
#include "wisp.h"

/* The seed's max_len: requests this long or longer get 513. */
static uint32_t max_len = 8192;

WISP_INIT(params) {
    char *value = wisp_param(params, "max_len");
    if (value) {
        char *end;
        unsigned long n = strtoul(value, &end, 10);
        bool bad = *value == 0 || *end != 0 || n > UINT32_MAX;
        free(value);
        if (bad) return "max_len: expected a number";
        max_len = (uint32_t)n;
    }
    return NULL;
}

/* route[1]: if (!t_relay()) { sl_reply_error(); } */
static int relay(wisp_msg msg) {
    if (t_relay(msg) != WISP_OK) return sl_reply_error(msg);
    return WISP_OK;
}

WISP_ROUTE(msg) {
    int r;
    /* if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Too Many Hops"); exit; } */
    if ((r = mf_process_maxfwd_header(msg, 10)) < 0) return -r;
    if (r == 0) return sl_send_reply(msg, 483, "Too Many Hops");
    /* if (msg:len >= max_len) { sl_send_reply("513", "Message too big"); exit; } */
    if (msg_len(msg) >= max_len) return sl_send_reply(msg, 513, "Message too big");
    /* if (!method=="REGISTER") { record_route(); } */
    if (!is_method(msg, "REGISTER") && (r = record_route(msg)) != WISP_OK) return r;
    /* if (loose_route()) { append_hf("P-hint: rr-enforced\r\n"); route(1); } */
    if ((r = loose_route(msg)) < 0) return -r;
    if (r == 1) {
        if ((r = append_hf(msg, "P-hint: rr-enforced")) != WISP_OK) return r;
        return relay(msg);
    }
    /* if (!uri==myself) { append_hf("P-hint: outbound\r\n"); route(1); } */
    if (!uri_is_myself(msg)) {
        if ((r = append_hf(msg, "P-hint: outbound")) != WISP_OK) return r;
        return relay(msg);
    }
    /* if (method=="REGISTER") { save("location"); exit; } */
    if (is_method(msg, "REGISTER")) return save(msg, "location");
    /* if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; } */
    r = lookup(msg, "location");
    if (r == WISP_ERR_NOT_FOUND) return sl_send_reply(msg, 404, "Not Found");
    if (r != WISP_OK) return r;
    /* append_hf("P-hint: usrloc applied\r\n"); */
    if ((r = append_hf(msg, "P-hint: usrloc applied")) != WISP_OK) return r;
    return relay(msg);
}

WISP_NO_FAILURE_ROUTE
WISP_NO_ONREPLY_ROUTE
