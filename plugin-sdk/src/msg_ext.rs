//! Kamailio-named functions as methods on [`Msg`], so that a route reads like
//! a `ser.cfg` block: `msg.sl_send_reply(404, "Not Found")`, `msg.lookup("location")`.

use crate::bindings::wisp::router::{
    acc, auth, exec, nathelper, pike, proxy, registrar, rr, rtpengine, sl, tm,
};
use crate::{AuthResult, Msg, Result, Transport, UserOf};

/// Kamailio / SER functions that act on the current message. Each method is a
/// thin call of the WIT function named in its doc: the WIT comment
/// (`wit/*.wit`, rendered in `docs/host-functions.md`) is the reference for
/// its behaviour, errors and the routes it may be called from.
pub trait MsgExt {
    /// Kamailio `is_method("INVITE|ACK")`: one of the `|`-separated names,
    /// without regard to case (WIT `message.msg.method`). One host call each
    /// time: a route that tests the method more than once keeps
    /// `msg.method()` and asks [`RequestMethod::is`](crate::RequestMethod::is).
    fn is_method(&self, methods: &str) -> bool;
    /// Kamailio `uri==myself` (WIT `proxy.ruri-is-myself`).
    fn ruri_is_myself(&self) -> bool;
    /// Kamailio `src_ip==myself` (WIT `proxy.src-is-myself`).
    fn src_is_myself(&self) -> bool;
    /// Kamailio `pike_check_req()`: false when the source floods (WIT
    /// `pike.pike-check-req`).
    fn pike_check_req(&self) -> bool;
    /// Kamailio `sl_send_reply(code, reason)` (WIT `sl.send-reply`).
    fn sl_send_reply(&self, code: u16, reason: &str) -> Result;
    /// Kamailio `sl_reply_error()` (WIT `sl.reply-error`).
    fn sl_reply_error(&self) -> Result;
    /// Kamailio `acc_log_request("404 Not Found")` / `acc_db_request`:
    /// account a request the route answers itself (WIT `acc.acc-request`).
    fn acc_request(&self, reason: &str) -> Result;
    /// Kamailio `forward()`, to the current Request-URI (WIT `proxy.forward`, no host).
    fn forward(&self) -> Result;
    /// Kamailio `forward(host, port)` (WIT `proxy.forward` with a host).
    fn forward_to_host(&self, host: &str, port: Option<u16>) -> Result;
    /// Kamailio `forward_udp` / `forward_tcp` (WIT `proxy.forward-to`).
    fn forward_via(&self, proto: Transport, host: &str, port: Option<u16>) -> Result;
    /// Kamailio `mf_process_maxfwd_header(limit)` (WIT `proxy.mf-process-maxfwd-header`).
    fn mf_process_maxfwd_header(&self, limit: u32) -> Result<bool>;
    /// Kamailio `append_branch()` / `append_branch(uri)` (WIT `proxy.append-branch`).
    fn append_branch(&self, uri: Option<&str>) -> Result;
    /// The destination set beyond the Request-URI (WIT `proxy.branches`).
    fn branches(&self) -> Vec<String>;
    /// Kamailio `drop` (WIT `proxy.drop-request`).
    fn drop_request(&self) -> Result;
    /// Kamailio `save(table)` (WIT `registrar.save`).
    fn save(&self, table: &str) -> Result;
    /// Kamailio `lookup(table)` (WIT `registrar.lookup`).
    fn lookup(&self, table: &str) -> Result;
    /// nathelper `fix_nated_register()` (WIT `registrar.fix-nated-register`).
    fn fix_nated_register(&self);
    /// nathelper `nat_uac_test(flags)` (WIT `nathelper.nat-uac-test`).
    fn nat_uac_test(&self, flags: u32) -> Result<bool>;
    /// nathelper `fix_nated_contact()` (WIT `nathelper.fix-nated-contact`).
    fn fix_nated_contact(&self) -> Result;
    /// nathelper `add_contact_alias()`: true when added (WIT
    /// `nathelper.add-contact-alias`).
    fn add_contact_alias(&self) -> Result<bool>;
    /// nathelper `handle_ruri_alias()`: true when the Request-URI had one
    /// (WIT `nathelper.handle-ruri-alias`).
    fn handle_ruri_alias(&self) -> Result<bool>;
    /// nathelper `fix_nated_sdp(flags)` (WIT `nathelper.fix-nated-sdp`).
    fn fix_nated_sdp(&self, flags: u32) -> Result;
    /// rtpengine `rtpengine_offer(flags)`: the next `t_relay` sends the SDP
    /// through the media relay (WIT `rtpengine.rtpengine-offer`).
    fn rtpengine_offer(&self, flags: &str) -> Result;
    /// rtpengine `rtpengine_answer(flags)`: a reply's (or an ACK's) SDP
    /// goes through the media relay when it leaves (WIT
    /// `rtpengine.rtpengine-answer`).
    fn rtpengine_answer(&self, flags: &str) -> Result;
    /// rtpengine `rtpengine_manage(flags)`: offer, answer or delete as the
    /// message needs (WIT `rtpengine.rtpengine-manage`).
    fn rtpengine_manage(&self, flags: &str) -> Result;
    /// rtpengine `rtpengine_delete()` (WIT `rtpengine.rtpengine-delete`).
    fn rtpengine_delete(&self) -> Result;
    /// Kamailio `t_relay()` (WIT `tm.t-relay`).
    fn t_relay(&self) -> Result;
    /// Kamailio's `route[RELAY] { if (!t_relay()) { sl_reply_error(); } exit; }`:
    /// relay statefully, else answer with the error `t_relay` recorded
    /// (WIT `tm.t-relay`, then `sl.reply-error`).
    fn relay(&self) -> Result;
    /// Kamailio `t_relay_to_udp(host, port)` / `t_relay_to_tcp` (WIT `tm.t-relay-to`).
    fn t_relay_to(&self, proto: Transport, host: &str, port: Option<u16>) -> Result;
    /// Kamailio `t_newtran()` (WIT `tm.t-newtran`).
    fn t_newtran(&self) -> Result;
    /// Kamailio `t_reply(code, reason)` (WIT `tm.t-reply`).
    fn t_reply(&self, code: u16, reason: &str) -> Result;
    /// Kamailio `t_replicate(uri)` (WIT `tm.t-replicate`).
    fn t_replicate(&self, uri: &str) -> Result;
    /// Kamailio `t_on_failure("name")` (WIT `tm.t-on-failure`).
    fn t_on_failure(&self, name: &str);
    /// Kamailio `t_on_reply("name")` (WIT `tm.t-on-reply`).
    fn t_on_reply(&self, name: &str);
    /// Kamailio `t_set_fr(fr_inv, fr)` (WIT `tm.t-set-fr`).
    fn t_set_fr(&self, fr_inv_ms: u32, fr_ms: u32) -> Result;
    /// Kamailio `t_check_status("regex")` (WIT `tm.t-check-status`).
    fn t_check_status(&self, pattern: &str) -> Result<bool>;
    /// Kamailio `$T_reply_code` (WIT `tm.t-reply-code`).
    fn t_reply_code(&self) -> Option<u16>;
    /// Kamailio `t_is_canceled()` (WIT `tm.t-is-canceled`).
    fn t_is_canceled(&self) -> bool;
    /// Kamailio `record_route()` (WIT `rr.record-route`).
    fn record_route(&self) -> Result;
    /// Kamailio `loose_route()` (WIT `rr.loose-route`).
    fn loose_route(&self) -> Result<bool>;
    /// Kamailio `exec_dset(command)`, a granted program only (WIT `exec.exec-dset`).
    fn exec_dset(&self, command: &str) -> Result;
    /// Kamailio `exec_msg(command)`, a granted program only (WIT `exec.exec-msg`).
    fn exec_msg(&self, command: &str) -> Result;
    /// Kamailio `www_authorize(realm, table)` (WIT `auth.www-authorize`).
    /// Prefer [`auth::require_www`](crate::auth::require_www), which answers
    /// every failure alike.
    fn www_authorize(&self, realm: &str, table: &str) -> Result<AuthResult>;
    /// Kamailio `proxy_authorize(realm, table)` (WIT `auth.proxy-authorize`).
    /// Prefer [`auth::require_proxy`](crate::auth::require_proxy).
    fn proxy_authorize(&self, realm: &str, table: &str) -> Result<AuthResult>;
    /// Kamailio `www_challenge(realm, flags)` (WIT `auth.www-challenge`);
    /// flags from [`auth`](crate::auth), usually 0.
    fn www_challenge(&self, realm: &str, flags: u32) -> Result;
    /// Kamailio `proxy_challenge(realm, flags)` (WIT `auth.proxy-challenge`).
    fn proxy_challenge(&self, realm: &str, flags: u32) -> Result;
    /// Kamailio `consume_credentials()` (WIT `auth.consume-credentials`).
    fn consume_credentials(&self) -> Result;
    /// Kamailio `check_to()` (WIT `auth.check-to`).
    fn check_to(&self) -> bool;
    /// Kamailio `check_from()` (WIT `auth.check-from`).
    fn check_from(&self) -> bool;
    /// Kamailio `is_user_in("Credentials", "int")` as
    /// `is_user_in(UserOf::Credentials, "int")` (WIT `auth.is-user-in`).
    fn is_user_in(&self, which: UserOf, group: &str) -> bool;
}

impl MsgExt for Msg {
    fn is_method(&self, methods: &str) -> bool {
        self.method().is(methods)
    }

    fn ruri_is_myself(&self) -> bool {
        proxy::ruri_is_myself(self)
    }

    fn src_is_myself(&self) -> bool {
        proxy::src_is_myself(self)
    }

    fn pike_check_req(&self) -> bool {
        pike::pike_check_req(self)
    }

    fn sl_send_reply(&self, code: u16, reason: &str) -> Result {
        sl::send_reply(self, code, reason)
    }

    fn sl_reply_error(&self) -> Result {
        sl::reply_error(self)
    }

    fn relay(&self) -> Result {
        if self.t_relay().is_err() {
            return self.sl_reply_error();
        }
        Ok(())
    }

    fn acc_request(&self, reason: &str) -> Result {
        acc::acc_request(self, reason)
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

    fn nat_uac_test(&self, flags: u32) -> Result<bool> {
        nathelper::nat_uac_test(self, flags)
    }

    fn fix_nated_contact(&self) -> Result {
        nathelper::fix_nated_contact(self)
    }

    fn add_contact_alias(&self) -> Result<bool> {
        nathelper::add_contact_alias(self)
    }

    fn handle_ruri_alias(&self) -> Result<bool> {
        nathelper::handle_ruri_alias(self)
    }

    fn fix_nated_sdp(&self, flags: u32) -> Result {
        nathelper::fix_nated_sdp(self, flags)
    }

    fn rtpengine_offer(&self, flags: &str) -> Result {
        rtpengine::rtpengine_offer(self, flags)
    }

    fn rtpengine_answer(&self, flags: &str) -> Result {
        rtpengine::rtpengine_answer(self, flags)
    }

    fn rtpengine_manage(&self, flags: &str) -> Result {
        rtpengine::rtpengine_manage(self, flags)
    }

    fn rtpengine_delete(&self) -> Result {
        rtpengine::rtpengine_delete(self)
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

    fn www_authorize(&self, realm: &str, table: &str) -> Result<AuthResult> {
        auth::www_authorize(self, realm, table)
    }

    fn proxy_authorize(&self, realm: &str, table: &str) -> Result<AuthResult> {
        auth::proxy_authorize(self, realm, table)
    }

    fn www_challenge(&self, realm: &str, flags: u32) -> Result {
        auth::www_challenge(self, realm, flags)
    }

    fn proxy_challenge(&self, realm: &str, flags: u32) -> Result {
        auth::proxy_challenge(self, realm, flags)
    }

    fn consume_credentials(&self) -> Result {
        auth::consume_credentials(self)
    }

    fn check_to(&self) -> bool {
        auth::check_to(self)
    }

    fn check_from(&self) -> bool {
        auth::check_from(self)
    }

    fn is_user_in(&self, which: UserOf, group: &str) -> bool {
        auth::is_user_in(self, which, group)
    }
}
