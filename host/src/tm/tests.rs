//! The transaction layer without a router or a plugin: a [`Tm`] over a real
//! UDP socket on 127.0.0.1, a caller and a callee socket, and a manual
//! clock, so RFC 3261 behaviour that takes seconds (timer F, wait timers)
//! is checked at once. Tests are named after the RFC sections they check.

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use wisp_sip::Message;

use super::context::RouteOwner;
use super::timer::ManualClock;
use super::{FailureWork, RequestMatch, ResponseMatch, RouteContext, Tm};
use crate::config::{Proto, TmConfig};
use crate::stateless::{ActionError, Handled, RouteKind, Stateless, sanity};
use crate::transport::{Source, Transports};

struct Bench {
    tm: Arc<Tm>,
    clock: Arc<ManualClock>,
    failure_routes: mpsc::UnboundedReceiver<FailureWork>,
    router: SocketAddr,
    caller: StdUdp,
    callee: StdUdp,
}

async fn bench() -> Bench {
    bench_with(TmConfig::default()).await
}

async fn bench_with(cfg: TmConfig) -> Bench {
    bench_on(cfg, false).await
}

/// A bench whose replies carry `server.sip_warning`'s Warning when `warn`.
async fn bench_on(cfg: TmConfig, warn: bool) -> Bench {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let router = sock.local_addr().expect("addr");
    let transports = Arc::new(Transports::new(vec![Arc::new(sock)], vec![], 65535));
    let sl = Arc::new(Stateless::new(transports, &[], Default::default()).with_sip_warning(warn));
    let clock = Arc::new(ManualClock::new());
    let (tm, failure_routes) = Tm::new(&cfg, clock.clone(), sl, None);
    let ua = || {
        let s = StdUdp::bind("127.0.0.1:0").expect("ua");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        s
    };
    Bench {
        tm,
        clock,
        failure_routes,
        router,
        caller: ua(),
        callee: ua(),
    }
}

impl Bench {
    /// A request from the caller, as the router received it.
    fn request(&self, method: &str, ruri: &str, branch: &str) -> RouteContext {
        self.request_with_body(method, ruri, branch, 0)
    }

    /// As [`request`](Self::request), with a body of `body_len` bytes.
    fn request_with_body(
        &self,
        method: &str,
        ruri: &str,
        branch: &str,
        body_len: usize,
    ) -> RouteContext {
        let caller = self.caller.local_addr().expect("addr");
        let body = "x".repeat(body_len);
        let raw = format!(
            "{method} {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {caller};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@example.com>;tag=a1\r\n\
             To: <sip:bob@example.com>\r\n\
             Call-ID: {branch}@test\r\n\
             CSeq: 1 {method}\r\n\
             Content-Length: {body_len}\r\n\r\n{body}"
        );
        let msg = Message::parse(Bytes::from(raw)).expect("request parses");
        let summary = sanity::check_request(&msg).expect("sane");
        let source = Source {
            proto: Proto::Udp,
            remote: caller,
            local: self.router,
        };
        RouteContext::new(msg, source, summary, RouteKind::Request)
    }

    /// The callee's URI: where `t_relay` sends.
    fn callee_uri(&self) -> String {
        format!("sip:bob@{}", self.callee.local_addr().expect("addr"))
    }

    fn recv(sock: &StdUdp) -> Message {
        let mut buf = vec![0u8; 65535];
        let (n, _) = sock.recv_from(&mut buf).expect("a message within 2 s");
        Message::parse(Bytes::copy_from_slice(&buf[..n])).expect("parses")
    }

    /// Nothing arrives within `ms`.
    fn silent(sock: &StdUdp, ms: u64) -> bool {
        sock.set_read_timeout(Some(Duration::from_millis(ms)))
            .expect("timeout");
        let mut buf = vec![0u8; 65535];
        let quiet = sock.recv_from(&mut buf).is_err();
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        quiet
    }

    /// The callee answers `req` with `code`, as the router receives it.
    fn answer(&self, req: &Message, code: u16) {
        let reply = wisp_sip::reply::build_reply(
            req,
            code,
            "Answer",
            &wisp_sip::reply::ReplyOptions {
                to_tag: Some("callee"),
                ..Default::default()
            },
        )
        .expect("reply");
        let msg = Message::parse(reply).expect("reply parses");
        match self.tm.match_response(&msg) {
            ResponseMatch::Branch { txn, branch, .. } => self.tm.on_response(&txn, branch, msg),
            _ => panic!("the response matches no branch of ours"),
        }
    }

    /// Fire every timer due `by` from now.
    fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.tm.fire_due();
    }
}

fn status(m: &Message) -> u16 {
    m.status().expect("a response")
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_16_6_a_relayed_request_carries_our_via_and_its_2xx_goes_up() {
    let b = bench().await;
    let mut ctx = b.request("OPTIONS", &b.callee_uri(), "z9hG4bKc1");
    b.tm.t_relay(&mut ctx, None).expect("relayed");
    assert_eq!(ctx.handled, Some(Handled::Relayed));
    let out = Bench::recv(&b.callee);
    let vias = out.vias().expect("vias");
    assert_eq!(vias.len(), 2, "our Via on top of the caller's");
    assert!(
        vias[0]
            .branch()
            .is_some_and(|br| br.starts_with(super::transaction::BRANCH_PREFIX))
    );
    b.answer(&out, 200);
    let up = Bench::recv(&b.caller);
    assert_eq!(status(&up), 200);
    assert_eq!(up.vias().expect("vias").len(), 1, "our Via removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_17_2_2_a_retransmission_is_absorbed_and_answered_from_the_transaction() {
    let b = bench().await;
    let mut ctx = b.request("OPTIONS", &b.callee_uri(), "z9hG4bKc2");
    b.tm.t_relay(&mut ctx, None).expect("relayed");
    let out = Bench::recv(&b.callee);
    b.answer(&out, 200);
    assert_eq!(status(&Bench::recv(&b.caller)), 200);
    let again = b.request("OPTIONS", &b.callee_uri(), "z9hG4bKc2");
    assert_eq!(b.tm.on_request(&again), RequestMatch::Absorbed);
    assert_eq!(status(&Bench::recv(&b.caller)), 200, "the 200 again");
    assert!(Bench::silent(&b.callee, 200), "not relayed twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_17_1_2_2_no_answer_by_timer_f_is_a_408_upstream() {
    let b = bench().await;
    let mut ctx = b.request("OPTIONS", &b.callee_uri(), "z9hG4bKc3");
    b.tm.t_relay(&mut ctx, None).expect("relayed");
    b.tm.route_finished(&mut ctx);
    let _ = Bench::recv(&b.callee);
    // Timer F: 64*T1 (32 s), capped by fr_timer; well past both here.
    for _ in 0..70 {
        b.advance(Duration::from_millis(500));
    }
    let up = loop {
        let m = Bench::recv(&b.caller);
        if status(&m) >= 200 {
            break m;
        }
    };
    assert_eq!(status(&up), 408);
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_17_2_2_the_transaction_ends_after_the_wait_timer() {
    let b = bench().await;
    let mut ctx = b.request("OPTIONS", &b.callee_uri(), "z9hG4bKc4");
    b.tm.t_relay(&mut ctx, None).expect("relayed");
    b.tm.route_finished(&mut ctx);
    let out = Bench::recv(&b.callee);
    b.answer(&out, 200);
    let _ = Bench::recv(&b.caller);
    assert_eq!(b.tm.len(), 1);
    // Timer J (wait_timer, 5 s by default) and the branch's timer K.
    b.advance(Duration::from_secs(6));
    assert_eq!(b.tm.len(), 0, "forgotten after the wait timer");
    assert!(
        b.tm.queue.is_empty(),
        "no timer outlives its transaction (timer F was cancelled by the 200)"
    );
    drop(ctx);
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_16_7_an_armed_failure_route_gets_the_negative_answer() {
    struct Owner;
    impl RouteOwner for Owner {
        fn armed(&self) {}
        fn released(&self) {}
    }
    let mut b = bench().await;
    let mut ctx = b.request("INVITE", &b.callee_uri(), "z9hG4bKc5");
    ctx.on_failure = Some("retry".into());
    ctx.owner = Some(Arc::new(Owner));
    b.tm.t_relay(&mut ctx, None).expect("relayed");
    b.tm.route_finished(&mut ctx);
    assert_eq!(status(&Bench::recv(&b.caller)), 100, "100 Trying at once");
    let out = Bench::recv(&b.callee);
    b.answer(&out, 486);
    let work = b
        .failure_routes
        .try_recv()
        .expect("the failure route is due");
    assert_eq!(work.route.name, "retry");
    assert!(work.route.owner.is_some(), "with who armed it");
    assert_eq!(work.ctx.route, RouteKind::Failure);
    assert_eq!(work.ctx.reply_code, Some(486));
    assert!(
        Bench::silent(&b.caller, 200),
        "the 486 waits for the failure route"
    );
    // The route does nothing: the best answer goes up.
    b.tm.failure_route_finished(&work.ctx);
    assert_eq!(status(&Bench::recv(&b.caller)), 486);
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_16_10_a_cancel_is_answered_and_sent_down_the_ringing_branch() {
    let b = bench().await;
    let mut ctx = b.request("INVITE", &b.callee_uri(), "z9hG4bKc6");
    b.tm.t_relay(&mut ctx, None).expect("relayed");
    b.tm.route_finished(&mut ctx);
    assert_eq!(status(&Bench::recv(&b.caller)), 100);
    let invite = Bench::recv(&b.callee);
    b.answer(&invite, 180);
    assert_eq!(status(&Bench::recv(&b.caller)), 180);
    let cancel = b.request("CANCEL", &b.callee_uri(), "z9hG4bKc6");
    assert_eq!(b.tm.on_request(&cancel), RequestMatch::Absorbed);
    assert_eq!(status(&Bench::recv(&b.caller)), 200, "200 to the CANCEL");
    let down = Bench::recv(&b.callee);
    assert_eq!(down.method(), Some(&wisp_sip::Method::Cancel));
    let ua = down.header("User-Agent").map(|h| h.value.clone());
    assert!(
        ua.is_some_and(|v| v.starts_with(b"Wisp/")),
        "our own request says who made it (server.user_agent_header)"
    );
    assert_eq!(
        down.vias().expect("via")[0].branch(),
        invite.vias().expect("via")[0].branch(),
        "the CANCEL of that branch"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_to_a_tel_uri_leaves_the_request_to_answer_once() {
    let b = bench().await;
    let mut ctx = b.request("INVITE", "tel:+1-201-555-0123", "z9hG4bKc7");
    let err = b.tm.t_relay(&mut ctx, None).expect_err("nowhere to relay");
    assert!(matches!(err, ActionError::BadMessage(_)), "{err:?}");
    assert_eq!(ctx.handled, None, "still the route's to answer");
    assert_eq!(status(&Bench::recv(&b.caller)), 100);
    b.tm.sl_reply_error(&mut ctx).expect("answered");
    assert_eq!(status(&Bench::recv(&b.caller)), 416);
    assert_eq!(
        b.tm.sl_reply_error(&mut ctx),
        Err(ActionError::AlreadyHandled),
        "one final answer"
    );
    b.tm.route_finished(&mut ctx);
    assert!(Bench::silent(&b.caller, 200), "and no other");
}

/// Kamailio `sip_warning`: the 408 tm makes itself names the router's
/// socket, the caller and the request; without the switch it has none.
#[tokio::test(flavor = "multi_thread")]
async fn sip_warning_rides_on_the_408_tm_makes_and_only_when_asked() {
    for warn in [true, false] {
        let b = bench_on(TmConfig::default(), warn).await;
        let mut ctx = b.request("OPTIONS", &b.callee_uri(), "z9hG4bKw1");
        b.tm.t_relay(&mut ctx, None).expect("relayed");
        b.tm.route_finished(&mut ctx);
        let _ = Bench::recv(&b.callee);
        for _ in 0..70 {
            b.advance(Duration::from_millis(500));
        }
        let up = loop {
            let m = Bench::recv(&b.caller);
            if status(&m) >= 200 {
                break m;
            }
        };
        assert_eq!(status(&up), 408);
        let warning = up
            .header_value("Warning")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        if !warn {
            assert_eq!(warning, None);
            continue;
        }
        let caller = b.caller.local_addr().expect("addr");
        let uri = b.callee_uri();
        assert_eq!(
            warning.as_deref(),
            Some(
                format!(
                    "392 {} \"Noisy feedback tells: pid={} req_src_ip={} req_src_port={} \
                     in_uri={uri} out_uri={uri} via_cnt=1\"",
                    b.router,
                    std::process::id(),
                    caller.ip(),
                    caller.port()
                )
                .as_str()
            )
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_that_ends_without_answering_its_transaction_gets_500() {
    let b = bench().await;
    let mut ctx = b.request("INVITE", "tel:+1-201-555-0123", "z9hG4bKc8");
    let _ = b.tm.t_relay(&mut ctx, None);
    assert_eq!(status(&Bench::recv(&b.caller)), 100);
    // The route ignores the failure and returns.
    b.tm.route_finished(&mut ctx);
    assert_eq!(
        status(&Bench::recv(&b.caller)),
        416,
        "the failed action's reply"
    );

    let mut ctx = b.request("OPTIONS", "sip:x@127.0.0.1", "z9hG4bKc9");
    b.tm.ensure_transaction(&mut ctx).expect("t_newtran");
    b.tm.route_finished(&mut ctx);
    assert_eq!(status(&Bench::recv(&b.caller)), 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_8_1_1_7_a_response_to_an_earlier_run_is_not_taken_for_ours() {
    let first = bench().await;
    let mut ctx = first.request("OPTIONS", &first.callee_uri(), "z9hG4bKd1");
    first.tm.t_relay(&mut ctx, None).expect("relayed");
    let out = Bench::recv(&first.callee);
    let reply = wisp_sip::reply::build_reply(&out, 200, "OK", &Default::default()).expect("reply");
    let reply = Message::parse(reply).expect("parses");
    // Another run of the router (a restart) with a transaction of the same
    // number sees that response.
    let second = bench().await;
    let mut own = second.request("OPTIONS", &second.callee_uri(), "z9hG4bKd2");
    second.tm.t_relay(&mut own, None).expect("relayed");
    assert!(matches!(
        second.tm.match_response(&reply),
        ResponseMatch::Ended
    ));
}

/// `tm.memory_mb` bounds what live transactions hold, by their size: a
/// budget that carries many small transactions carries few large ones, the
/// caller past it gets 503 with Retry-After, and an ended transaction gives
/// its room back.
#[tokio::test(flavor = "multi_thread")]
async fn the_memory_budget_bounds_transactions_by_their_size() {
    let b = bench_with(TmConfig {
        memory_mb: 1,
        source_share_percent: 100,
        ..TmConfig::default()
    })
    .await;
    let big =
        |i: usize| b.request_with_body("MESSAGE", &b.callee_uri(), &format!("z9hG4bKm{i}"), 30_000);
    let size = big(0).msg.serialize().len();
    let fits = (1 << 20) / super::table::charge_for(size);
    assert!((10..30).contains(&fits), "{fits} of {size} bytes");
    let mut first = None;
    let mut charged = 0;
    for i in 0..fits {
        let mut ctx = big(i);
        charged += super::table::charge_for(ctx.msg.serialize().len());
        b.tm.t_relay(&mut ctx, None).expect("within the budget");
        first.get_or_insert(ctx.txn.clone());
    }
    let mut over = big(fits);
    match b.tm.t_relay(&mut over, None) {
        Err(ActionError::LimitReached(why)) => assert!(why.contains("tm.memory_mb = 1"), "{why}"),
        other => panic!("past the budget: {other:?}"),
    }
    assert_eq!(over.handled, Some(Handled::Replied(503)));
    let refused = Bench::recv(&b.caller);
    assert_eq!(status(&refused), 503);
    assert!(refused.headers().iter().any(|h| h.is("Retry-After")));
    assert_eq!(b.tm.len(), fits);
    let held = b.tm.held_bytes();
    assert_eq!(held as usize, charged);
    // One ends: its charge is given back.
    let txn = first.flatten().expect("a transaction");
    let relayed = loop {
        let m = Bench::recv(&b.callee);
        if m.call_id().ok() == Some(&b"z9hG4bKm0@test"[..]) {
            break m;
        }
    };
    b.answer(&relayed, 200);
    b.advance(Duration::from_secs(6));
    drop(txn);
    assert_eq!(b.tm.len(), fits - 1);
    let mut again = big(fits + 1);
    b.tm.t_relay(&mut again, None)
        .expect("room again once one ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_source_holds_at_most_its_share_of_the_budget_and_others_still_get_transactions() {
    let b = bench_with(TmConfig {
        memory_mb: 1,
        source_share_percent: 50,
        ..TmConfig::default()
    })
    .await;
    let flooder: std::net::IpAddr = "127.0.0.2".parse().expect("ip");
    let from = |ctx: &mut RouteContext, ip| ctx.source.remote.set_ip(ip);
    let big =
        |i: usize| b.request_with_body("MESSAGE", &b.callee_uri(), &format!("z9hG4bKs{i}"), 30_000);
    let charge = super::table::charge_for(big(0).msg.serialize().len());
    let share = (1 << 20) / 2 / charge;
    for i in 0..share {
        let mut ctx = big(i);
        from(&mut ctx, flooder);
        b.tm.t_relay(&mut ctx, None)
            .expect("within the source's share");
    }
    let mut over = big(share);
    from(&mut over, flooder);
    match b.tm.t_relay(&mut over, None) {
        Err(ActionError::LimitReached(why)) => {
            assert!(
                why.contains("127.0.0.2") && why.contains("source_share_percent"),
                "{why}"
            )
        }
        other => panic!("past the source's share: {other:?}"),
    }
    // Another source still gets its transactions, from the other half.
    for i in 0..share {
        let mut ctx = big(1000 + i);
        b.tm.t_relay(&mut ctx, None)
            .expect("another source is not refused");
    }
    assert_eq!(b.tm.len(), 2 * share);
}

/// A relayed request leaves with its receive burst (one `sendmmsg`); when
/// the socket refuses it then, after `t_relay` returned, the branch still
/// fails as a refused send does: the caller gets the 503.
#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_16_7_a_branch_the_socket_refuses_after_the_burst_counts_as_503() {
    let b = bench().await;
    // Broadcast without SO_BROADCAST: the kernel refuses the datagram.
    let mut ctx = b.request("OPTIONS", "sip:bob@255.255.255.255:5060", "z9hG4bKu1");
    crate::transport::udp::in_burst(|| {
        b.tm.t_relay(&mut ctx, None)
            .expect("queued: nothing is known to fail yet");
        b.tm.route_finished(&mut ctx);
    });
    let answer = Bench::recv(&b.caller);
    assert_eq!(status(&answer), 503);
    assert!(Bench::silent(&b.caller, 200), "one final answer only");
}

/// The table reuses the slot of an ended transaction; the ended one's id
/// (in a late response's branch, a stale timer) and its key find nothing.
#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_17_1_3_an_ended_transactions_id_and_key_never_find_its_slots_next_one() {
    let b = bench().await;
    let make = |i: usize| {
        let mut ctx = b.request("OPTIONS", &b.callee_uri(), &format!("z9hG4bKslot{i}"));
        b.tm.ensure_transaction(&mut ctx).expect("transaction")
    };
    let first = make(0);
    let (first_id, first_key) = {
        let mut t = super::lock(&first);
        b.tm.table.forget(&mut t);
        (t.id, t.key.clone())
    };
    // Shards take transactions in turn: the 64th after lands in the first
    // one's shard and takes its freed slot.
    let mut last = None;
    for i in 1..=64 {
        last = Some(make(i));
    }
    let last = last.expect("made");
    let last_id = super::lock(&last).id;
    assert_ne!(last_id, first_id);
    assert_eq!(last_id & 0xffff_ffff, first_id & 0xffff_ffff, "same slot");
    assert!(b.tm.table.by_id(first_id).is_none());
    assert!(b.tm.table.by_key(&first_key).is_none());
    assert!(
        b.tm.table
            .by_id(last_id)
            .is_some_and(|t| Arc::ptr_eq(&t, &last))
    );
    let last_key = super::lock(&last).key.clone();
    assert!(
        b.tm.table
            .by_key(&last_key)
            .is_some_and(|t| Arc::ptr_eq(&t, &last))
    );
    assert_eq!(b.tm.len(), 64);
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_17_2_1_an_unacknowledged_final_answer_still_names_its_call_after_compaction() {
    let b = bench().await;
    let mut ctx = b.request("INVITE", &b.callee_uri(), "z9hG4bKh1");
    b.tm.t_relay(&mut ctx, None).expect("relayed");
    b.tm.route_finished(&mut ctx);
    assert_eq!(status(&Bench::recv(&b.caller)), 100);
    let invite = Bench::recv(&b.callee);
    b.answer(&invite, 486);
    assert_eq!(status(&Bench::recv(&b.caller)), 486);
    // The 486 is final: the transaction dropped its copy of the request,
    // and timer H (no ACK from the caller) still logs the real Call-ID.
    let handle = ctx.txn.clone().expect("a transaction");
    let txn = super::lock(&handle);
    assert_ne!(
        txn.request.call_id().ok(),
        Some(&b"z9hG4bKh1@test"[..]),
        "the request was compacted"
    );
    assert_eq!(txn.call_id(), "z9hG4bKh1@test");
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc3261_17_2_1_an_answered_invite_waiting_for_its_ack_is_charged_only_its_answer() {
    let b = bench().await;
    let mut ctx = b.request_with_body("INVITE", &b.callee_uri(), "z9hG4bKk1", 3_000);
    b.tm.t_relay(&mut ctx, None).expect("relayed");
    b.tm.route_finished(&mut ctx);
    assert_eq!(status(&Bench::recv(&b.caller)), 100);
    let full = b.tm.held_bytes();
    assert!(full > 6_000, "the request is charged twice: {full}");
    let invite = Bench::recv(&b.callee);
    b.answer(&invite, 486);
    let answer = Bench::recv(&b.caller);
    assert_eq!(status(&answer), 486);
    // Timer H keeps the transaction 32 s for the ACK; the budget gets back
    // all but the fixed part and the answer it retransmits.
    let held = b.tm.held_bytes() as usize;
    assert!(
        held < 2_000,
        "{held} bytes still charged after the final answer"
    );
    assert_eq!(b.tm.len(), 1, "the transaction waits for the ACK");
}
