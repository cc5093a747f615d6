//! Kamailio-named functions as methods on [`Msg`], so that a route reads like
//! a `ser.cfg` block: `msg.sl_send_reply(404, "Not Found")`, `msg.lookup("location")`.

use crate::bindings::wisp::router::{exec, proxy, registrar, rr, sl, tm};
use crate::{Msg, Result, Transport};

/// Kamailio / SER functions that act on the current message. Each method is a
/// thin call of the WIT function named in its doc; the WIT file documents
/// errors and the routes each may be called from.
pub trait MsgExt {
    /// `is_method("INVITE")`; several methods may be given as `"INVITE|ACK"`.
    /// One host call each time: a route that tests the method more than
    /// once keeps `msg.method()` and asks [`RequestMethod::is`](crate::RequestMethod::is).
    fn is_method(&self, methods: &str) -> bool;
    /// `uri==myself`: the Request-URI names this router.
    fn ruri_is_myself(&self) -> bool;
    /// `sl_send_reply(code, reason)` (WIT `sl.send-reply`).
    fn sl_send_reply(&self, code: u16, reason: &str) -> Result;
    /// `sl_reply_error()` (WIT `sl.reply-error`).
    fn sl_reply_error(&self) -> Result;
    /// `forward()`: stateless forward to the current Request-URI (WIT `proxy.forward`).
    fn forward(&self) -> Result;
    /// `forward(host, port)` (WIT `proxy.forward`).
    fn forward_to_host(&self, host: &str, port: Option<u16>) -> Result;
    /// `forward_udp` / `forward_tcp` (WIT `proxy.forward-to`).
    fn forward_via(&self, proto: Transport, host: &str, port: Option<u16>) -> Result;
    /// `mf_process_maxfwd_header(limit)`: false when Max-Forwards reached 0.
    fn mf_process_maxfwd_header(&self, limit: u32) -> Result<bool>;
    /// `append_branch()` / `append_branch(uri)`.
    fn append_branch(&self, uri: Option<&str>) -> Result;
    /// The destination set beyond the Request-URI.
    fn branches(&self) -> Vec<String>;
    /// Kamailio `drop`: end the request without an answer; later plugins of
    /// the chain do not see it (WIT `proxy.drop-request`).
    fn drop_request(&self) -> Result;
    /// `save(table)` (WIT `registrar.save`): store the bindings and answer the REGISTER.
    fn save(&self, table: &str) -> Result;
    /// `lookup(table)` (WIT `registrar.lookup`); `Err(Error::NotFound)` when unknown.
    fn lookup(&self, table: &str) -> Result;
    /// nathelper `fix_nated_register()` (WIT `registrar.fix-nated-register`):
    /// the next `save` stores the REGISTER's source for contacts behind NAT.
    fn fix_nated_register(&self);
    /// `t_relay()`: stateful relay to the destination set (WIT `tm.t-relay`).
    fn t_relay(&self) -> Result;
    /// `t_relay_to_udp(host, port)` / `t_relay_to_tcp` (WIT `tm.t-relay-to`).
    fn t_relay_to(&self, proto: Transport, host: &str, port: Option<u16>) -> Result;
    /// `t_newtran()`: take the request over statefully (WIT `tm.t-newtran`).
    fn t_newtran(&self) -> Result;
    /// `t_reply(code, reason)`: stateful reply (WIT `tm.t-reply`).
    fn t_reply(&self, code: u16, reason: &str) -> Result;
    /// `t_replicate(uri)`: stateful copy to `uri` (WIT `tm.t-replicate`).
    fn t_replicate(&self, uri: &str) -> Result;
    /// `t_on_failure("name")`: arm `failure_route(name)` for the next `t_relay`.
    fn t_on_failure(&self, name: &str);
    /// `t_on_reply("name")`: arm `onreply_route(name)`.
    fn t_on_reply(&self, name: &str);
    /// `t_set_fr(fr_inv_ms, fr_ms)`: this transaction's final-response timers.
    fn t_set_fr(&self, fr_inv_ms: u32, fr_ms: u32) -> Result;
    /// `t_check_status("4[0-9][0-9]")`: the reply status matches (failure and reply routes).
    fn t_check_status(&self, pattern: &str) -> Result<bool>;
    /// `$T_reply_code`: best final status (failure route) or the reply's (reply route).
    fn t_reply_code(&self) -> Option<u16>;
    /// `t_is_canceled()`: the caller CANCELed.
    fn t_is_canceled(&self) -> bool;
    /// `record_route()` (WIT `rr.record-route`): add our Record-Route, naming
    /// the socket the request arrived on, so the dialog's later requests
    /// come through this router. Once per request.
    fn record_route(&self) -> Result;
    /// `loose_route()` (WIT `rr.loose-route`): follow the Route set. `false`
    /// when the request has no Route header; `true` when it was routed by it
    /// (our entries removed, next hop in the destination URI or, for a strict
    /// router, in the Request-URI) — then `forward()` sends it on.
    fn loose_route(&self) -> Result<bool>;
    /// `exec_dset(command)` (WIT `exec.exec-dset`): run a granted program
    /// with the Request-URI as last argument; its first output line becomes
    /// the Request-URI, the others the branches. `Err(Error::NotPermitted)`
    /// without the manifest's `[plugin.capabilities] exec` grant.
    fn exec_dset(&self, command: &str) -> Result;
    /// `exec_msg(command)` (WIT `exec.exec-msg`): run a granted program
    /// with the message on its standard input and `SRCIP` in its
    /// environment; its output is ignored.
    fn exec_msg(&self, command: &str) -> Result;
}

impl MsgExt for Msg {
    fn is_method(&self, methods: &str) -> bool {
        self.method().is(methods)
    }

    fn ruri_is_myself(&self) -> bool {
        proxy::ruri_is_myself(self)
    }

    fn sl_send_reply(&self, code: u16, reason: &str) -> Result {
        sl::send_reply(self, code, reason)
    }

    fn sl_reply_error(&self) -> Result {
        sl::reply_error(self)
    }

    fn forward(&self) -> Result {
        proxy::forward(self, None, None)
    }

    fn forward_to_host(&self, host: &str, port: Option<u16>) -> Result {
        proxy::forward(self, Some(host), port)
    }

    fn forward_via(&self, proto: Transport, host: &str, port: Option<u16>) -> Result {
        proxy::forward_to(self, proto, host, port)
    }

    fn mf_process_maxfwd_header(&self, limit: u32) -> Result<bool> {
        proxy::mf_process_maxfwd_header(self, limit)
    }

    fn append_branch(&self, uri: Option<&str>) -> Result {
        proxy::append_branch(self, uri)
    }

    fn branches(&self) -> Vec<String> {
        proxy::branches(self)
    }

    fn drop_request(&self) -> Result {
        proxy::drop_request(self)
    }

    fn save(&self, table: &str) -> Result {
        registrar::save(self, table)
    }

    fn lookup(&self, table: &str) -> Result {
        registrar::lookup(self, table)
    }

    fn fix_nated_register(&self) {
        registrar::fix_nated_register(self)
    }

    fn t_relay(&self) -> Result {
        tm::t_relay(self)
    }

    fn t_relay_to(&self, proto: Transport, host: &str, port: Option<u16>) -> Result {
        tm::t_relay_to(self, proto, host, port)
    }

    fn t_newtran(&self) -> Result {
        tm::t_newtran(self)
    }

    fn t_reply(&self, code: u16, reason: &str) -> Result {
        tm::t_reply(self, code, reason)
    }

    fn t_replicate(&self, uri: &str) -> Result {
        tm::t_replicate(self, uri)
    }

    fn t_on_failure(&self, name: &str) {
        tm::t_on_failure(self, name)
    }

    fn t_on_reply(&self, name: &str) {
        tm::t_on_reply(self, name)
    }

    fn t_set_fr(&self, fr_inv_ms: u32, fr_ms: u32) -> Result {
        tm::t_set_fr(self, fr_inv_ms, fr_ms)
    }

    fn t_check_status(&self, pattern: &str) -> Result<bool> {
        tm::t_check_status(self, pattern)
    }

    fn t_reply_code(&self) -> Option<u16> {
        tm::t_reply_code(self)
    }

    fn t_is_canceled(&self) -> bool {
        tm::t_is_canceled(self)
    }

    fn record_route(&self) -> Result {
        rr::record_route(self)
    }

    fn loose_route(&self) -> Result<bool> {
        rr::loose_route(self)
    }

    fn exec_dset(&self, command: &str) -> Result {
        exec::exec_dset(self, command)
    }

    fn exec_msg(&self, command: &str) -> Result {
        exec::exec_msg(self, command)
    }
}
