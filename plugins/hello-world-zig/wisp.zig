//! The Wisp router's functions for plugins in Zig, over wit-bindgen's C
//! bindings (plugins/hello-world-c/bindings, generated with
//! `--autodrop-borrows yes`: the borrowed message is dropped by the
//! generated export when the route returns, as the component model requires).
//!
//! Host errors are Zig errors (`error.NotFound`, ...), strings are slices.
//! The root file defines `init`, `route` and, if it has them,
//! `failureRoute` and `onreplyRoute`; this file exports them.

const std = @import("std");
// The C bindings as Zig declarations (`zig translate-c` of plugin.h, made by
// scripts/build-languages.sh: Zig 0.16+ has no @cImport).
pub const c = @import("c");
const root = @import("root");

/// Why a host function refused (WIT `wisp:router/types.error`).
pub const Error = error{
    InvalidArgument,
    BadMessage,
    NotAllowedHere,
    AlreadyHandled,
    NotFound,
    SendFailed,
    LimitReached,
    Internal,
    NotPermitted,
};

fn check(ok: bool, err: *c.wisp_router_types_error_t) Error!void {
    if (ok) return;
    defer c.wisp_router_types_error_free(err);
    return switch (err.tag) {
        c.WISP_ROUTER_TYPES_ERROR_INVALID_ARGUMENT => error.InvalidArgument,
        c.WISP_ROUTER_TYPES_ERROR_BAD_MESSAGE => error.BadMessage,
        c.WISP_ROUTER_TYPES_ERROR_NOT_ALLOWED_HERE => error.NotAllowedHere,
        c.WISP_ROUTER_TYPES_ERROR_ALREADY_HANDLED => error.AlreadyHandled,
        c.WISP_ROUTER_TYPES_ERROR_NOT_FOUND => error.NotFound,
        c.WISP_ROUTER_TYPES_ERROR_SEND_FAILED => error.SendFailed,
        c.WISP_ROUTER_TYPES_ERROR_LIMIT_REACHED => error.LimitReached,
        c.WISP_ROUTER_TYPES_ERROR_NOT_PERMITTED => error.NotPermitted,
        else => error.Internal,
    };
}

fn str(s: []const u8) c.plugin_string_t {
    return .{ .ptr = @constCast(s.ptr), .len = s.len };
}

/// A SIP method as the router names it.
pub const Method = enum(u8) { invite, ack, bye, cancel, register, options, info, prack, subscribe, notify, update, message, refer, publish, other };

/// The message a route works on, borrowed for the call: never keep it.
pub const Msg = struct {
    h: c.wisp_router_message_borrow_msg_t,

    /// msg:len
    pub fn len(self: Msg) u32 {
        return c.wisp_router_message_method_msg_len(self.h);
    }

    /// The method (`.other` for any method without a case of its own).
    pub fn method(self: Msg) Method {
        var m: c.wisp_router_message_request_method_t = undefined;
        c.wisp_router_message_method_msg_method(self.h, &m);
        defer c.wisp_router_message_request_method_free(&m);
        return @enumFromInt(m.tag);
    }

    pub fn appendHf(self: Msg, line: []const u8) Error!void {
        var err: c.wisp_router_types_error_t = undefined;
        var l = str(line);
        return check(c.wisp_router_message_method_msg_append_hf(self.h, &l, &err), &err);
    }

    pub fn mfProcessMaxfwdHeader(self: Msg, limit: u32) Error!bool {
        var err: c.wisp_router_types_error_t = undefined;
        var ret: bool = false;
        try check(c.wisp_router_proxy_mf_process_maxfwd_header(self.h, limit, &ret, &err), &err);
        return ret;
    }

    /// uri==myself
    pub fn ruriIsMyself(self: Msg) bool {
        return c.wisp_router_proxy_ruri_is_myself(self.h);
    }

    pub fn slSendReply(self: Msg, code: u16, reason: []const u8) Error!void {
        var err: c.wisp_router_types_error_t = undefined;
        var r = str(reason);
        return check(c.wisp_router_sl_send_reply(self.h, code, &r, &err), &err);
    }

    pub fn slReplyError(self: Msg) Error!void {
        var err: c.wisp_router_types_error_t = undefined;
        return check(c.wisp_router_sl_reply_error(self.h, &err), &err);
    }

    pub fn recordRoute(self: Msg) Error!void {
        var err: c.wisp_router_types_error_t = undefined;
        return check(c.wisp_router_rr_record_route(self.h, &err), &err);
    }

    pub fn looseRoute(self: Msg) Error!bool {
        var err: c.wisp_router_types_error_t = undefined;
        var ret: bool = false;
        try check(c.wisp_router_rr_loose_route(self.h, &ret, &err), &err);
        return ret;
    }

    pub fn save(self: Msg, table: []const u8) Error!void {
        var err: c.wisp_router_types_error_t = undefined;
        var t = str(table);
        return check(c.wisp_router_registrar_save(self.h, &t, &err), &err);
    }

    /// error.NotFound when the AOR has no binding (404 recorded).
    pub fn lookup(self: Msg, table: []const u8) Error!void {
        var err: c.wisp_router_types_error_t = undefined;
        var t = str(table);
        return check(c.wisp_router_registrar_lookup(self.h, &t, &err), &err);
    }

    pub fn tRelay(self: Msg) Error!void {
        var err: c.wisp_router_types_error_t = undefined;
        return check(c.wisp_router_tm_t_relay(self.h, &err), &err);
    }
};

/// `[plugin.params]`, as the manifest gave them.
pub const Params = struct {
    list: *const c.plugin_list_tuple2_string_string_t,

    /// The value of `key`, or null.
    pub fn get(self: Params, key: []const u8) ?[]const u8 {
        for (self.list.ptr[0..self.list.len]) |kv| {
            if (std.mem.eql(u8, kv.f0.ptr[0..kv.f0.len], key)) return kv.f1.ptr[0..kv.f1.len];
        }
        return null;
    }
};

export fn exports_plugin_init(params: *c.plugin_list_tuple2_string_string_t, err: *c.plugin_string_t) bool {
    defer c.plugin_list_tuple2_string_string_free(params);
    root.init(.{ .list = params }) catch |e| {
        c.plugin_string_dup_n(err, @errorName(e).ptr, @errorName(e).len);
        return false;
    };
    return true;
}

export fn exports_plugin_route(m: c.wisp_router_message_borrow_msg_t) bool {
    root.route(.{ .h = m }) catch return false;
    return true;
}

export fn exports_plugin_failure_route(name: *c.plugin_string_t, m: c.wisp_router_message_borrow_msg_t) bool {
    defer c.plugin_string_free(name);
    if (!@hasDecl(root, "failureRoute")) return true;
    root.failureRoute(name.ptr[0..name.len], .{ .h = m }) catch return false;
    return true;
}

export fn exports_plugin_onreply_route(name: *c.plugin_string_t, m: c.wisp_router_message_borrow_msg_t) bool {
    defer c.plugin_string_free(name);
    if (!@hasDecl(root, "onreplyRoute")) return true;
    root.onreplyRoute(name.ptr[0..name.len], .{ .h = m }) catch return false;
    return true;
}
