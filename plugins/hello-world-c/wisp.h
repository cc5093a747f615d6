/*
 * wisp.h -- the Wisp router's functions for plugins in C, named as in a
 * ser.cfg / kamailio.cfg, over wit-bindgen's bindings (bindings/plugin.h).
 *
 * What it hides:
 *  - the borrowed message: a route gets `msg` borrowed, and the component
 *    model traps the call if the borrow is still held when the route
 *    returns. The bindings are generated with `--autodrop-borrows yes`, so
 *    the generated export drops it after your route returns: never call
 *    wisp_router_message_msg_drop_borrow yourself, and never keep `msg`;
 *  - strings: functions take C strings (copied into the call, nothing to free);
 *  - errors: each call returns a plain int and frees the error's text.
 *
 * Conventions, as in the cfg scripts:
 *  - actions (save, t_relay, sl_send_reply, append_hf...) return WISP_OK (0)
 *    or a WISP_ERR_* code;
 *  - tests (mf_process_maxfwd_header, loose_route) return 1 (true),
 *    0 (false) or a negative WISP_ERR_* code.
 *
 * A plugin defines the four exports: WISP_ROUTE(msg) { ... } and
 * WISP_INIT(params) { ... }, plus WISP_NO_FAILURE_ROUTE / WISP_NO_ONREPLY_ROUTE
 * when it has none. Routes return WISP_OK, or anything else for an error
 * (the router then answers with sl_reply_error semantics).
 */
#ifndef WISP_H
#define WISP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

typedef wisp_router_message_borrow_msg_t wisp_msg;
typedef plugin_list_tuple2_string_string_t wisp_params;

#define WISP_OK 0
#define WISP_ERR_INVALID_ARGUMENT (1 + WISP_ROUTER_TYPES_ERROR_INVALID_ARGUMENT)
#define WISP_ERR_BAD_MESSAGE (1 + WISP_ROUTER_TYPES_ERROR_BAD_MESSAGE)
#define WISP_ERR_NOT_ALLOWED_HERE (1 + WISP_ROUTER_TYPES_ERROR_NOT_ALLOWED_HERE)
#define WISP_ERR_ALREADY_HANDLED (1 + WISP_ROUTER_TYPES_ERROR_ALREADY_HANDLED)
#define WISP_ERR_NOT_FOUND (1 + WISP_ROUTER_TYPES_ERROR_NOT_FOUND)
#define WISP_ERR_SEND_FAILED (1 + WISP_ROUTER_TYPES_ERROR_SEND_FAILED)
#define WISP_ERR_LIMIT_REACHED (1 + WISP_ROUTER_TYPES_ERROR_LIMIT_REACHED)
#define WISP_ERR_INTERNAL (1 + WISP_ROUTER_TYPES_ERROR_INTERNAL)
#define WISP_ERR_NOT_PERMITTED (1 + WISP_ROUTER_TYPES_ERROR_NOT_PERMITTED)

/* The exports. */
#define WISP_ROUTE(msg) \
    static int wisp_route_(wisp_msg msg); \
    bool exports_plugin_route(wisp_msg m) { return wisp_route_(m) == WISP_OK; } \
    static int wisp_route_(wisp_msg msg)
#define WISP_INIT(params) \
    static const char *wisp_init_(const wisp_params *params); \
    bool exports_plugin_init(wisp_params *p, plugin_string_t *err) { \
        const char *why = wisp_init_(p); \
        plugin_list_tuple2_string_string_free(p); \
        if (why) plugin_string_dup(err, why); \
        return why == NULL; \
    } \
    static const char *wisp_init_(const wisp_params *params)
#define WISP_NO_FAILURE_ROUTE \
    bool exports_plugin_failure_route(plugin_string_t *name, wisp_msg m) { \
        (void)m; plugin_string_free(name); return true; }
#define WISP_NO_ONREPLY_ROUTE \
    bool exports_plugin_onreply_route(plugin_string_t *name, wisp_msg m) { \
        (void)m; plugin_string_free(name); return true; }

/* A WIT string viewing a C string, for the duration of a call. */
static inline plugin_string_t wisp_str_(const char *s) {
    plugin_string_t r = {(uint8_t *)s, strlen(s)};
    return r;
}

static inline int wisp_result_(bool ok, wisp_router_types_error_t *err) {
    if (ok) return WISP_OK;
    int code = 1 + err->tag;
    wisp_router_types_error_free(err);
    return code;
}

static inline int wisp_test_(bool ok, bool value, wisp_router_types_error_t *err) {
    return ok ? (value ? 1 : 0) : -wisp_result_(false, err);
}

/* The value of `[plugin.params]` key `name`, copied (free it), or NULL. */
static inline char *wisp_param(const wisp_params *params, const char *name) {
    for (size_t i = 0; i < params->len; i++) {
        const plugin_string_t *k = &params->ptr[i].f0, *v = &params->ptr[i].f1;
        if (k->len == strlen(name) && memcmp(k->ptr, name, k->len) == 0) {
            char *value = malloc(v->len + 1);
            if (!value) return NULL;
            memcpy(value, v->ptr, v->len);
            value[v->len] = 0;
            return value;
        }
    }
    return NULL;
}

/* msg:len */
static inline uint32_t msg_len(wisp_msg msg) {
    return wisp_router_message_method_msg_len(msg);
}

/* is_method("REGISTER"): one method name, compared case-insensitively. */
static inline bool is_method(wisp_msg msg, const char *name) {
    static const char *const known[] = {
        "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO",
        "PRACK", "SUBSCRIBE", "NOTIFY", "UPDATE", "MESSAGE", "REFER", "PUBLISH"};
    wisp_router_message_request_method_t m;
    wisp_router_message_method_msg_method(msg, &m);
    bool same;
    if (m.tag == WISP_ROUTER_MESSAGE_REQUEST_METHOD_OTHER) {
        same = m.val.other.len == strlen(name) &&
               strncasecmp((const char *)m.val.other.ptr, name, m.val.other.len) == 0;
    } else {
        same = strcasecmp(known[m.tag], name) == 0;
    }
    wisp_router_message_request_method_free(&m);
    return same;
}

/* uri==myself */
static inline bool uri_is_myself(wisp_msg msg) {
    return wisp_router_proxy_ruri_is_myself(msg);
}

static inline int mf_process_maxfwd_header(wisp_msg msg, uint32_t limit) {
    bool value = false;
    wisp_router_types_error_t err;
    bool ok = wisp_router_proxy_mf_process_maxfwd_header(msg, limit, &value, &err);
    return wisp_test_(ok, value, &err);
}

static inline int sl_send_reply(wisp_msg msg, uint16_t code, const char *reason) {
    plugin_string_t r = wisp_str_(reason);
    wisp_router_types_error_t err;
    return wisp_result_(wisp_router_sl_send_reply(msg, code, &r, &err), &err);
}

static inline int sl_reply_error(wisp_msg msg) {
    wisp_router_types_error_t err;
    return wisp_result_(wisp_router_sl_reply_error(msg, &err), &err);
}

/* append_hf("P-hint: outbound\r\n"): the final CRLF may be left out. */
static inline int append_hf(wisp_msg msg, const char *line) {
    plugin_string_t l = wisp_str_(line);
    wisp_router_types_error_t err;
    return wisp_result_(wisp_router_message_method_msg_append_hf(msg, &l, &err), &err);
}

static inline int record_route(wisp_msg msg) {
    wisp_router_types_error_t err;
    return wisp_result_(wisp_router_rr_record_route(msg, &err), &err);
}

static inline int loose_route(wisp_msg msg) {
    bool value = false;
    wisp_router_types_error_t err;
    bool ok = wisp_router_rr_loose_route(msg, &value, &err);
    return wisp_test_(ok, value, &err);
}

static inline int save(wisp_msg msg, const char *table) {
    plugin_string_t t = wisp_str_(table);
    wisp_router_types_error_t err;
    return wisp_result_(wisp_router_registrar_save(msg, &t, &err), &err);
}

/* WISP_OK, WISP_ERR_NOT_FOUND (no binding; 404 recorded), or another error. */
static inline int lookup(wisp_msg msg, const char *table) {
    plugin_string_t t = wisp_str_(table);
    wisp_router_types_error_t err;
    return wisp_result_(wisp_router_registrar_lookup(msg, &t, &err), &err);
}

static inline int t_relay(wisp_msg msg) {
    wisp_router_types_error_t err;
    return wisp_result_(wisp_router_tm_t_relay(msg, &err), &err);
}

#endif
