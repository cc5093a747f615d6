//! Messages of one call leave the router in the order they came, whatever
//! the number of workers (RFC 3261 §16.7: a provisional response after the
//! final one is never forwarded; a UAS must not see the ACK of a call after
//! its BYE). Two workers share the UDP socket; the callee answers every
//! INVITE with 180 and 200 back to back, and the caller sends ACK and BYE
//! back to back, so the two messages of each pair arrive together and could
//! be handled by two workers at once.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wisp_e2e::{Router, TestUa, response_destination, to_tag};
use wisp_sip::{Method, ReplyOptions, build_reply};

/// Calls placed; enough that two workers handle pairs at the same moment
/// many times over.
const CALLS: usize = 5000;
/// Calls in flight at once.
const WINDOW: usize = 32;
/// No run takes longer (on loopback it takes a second or two).
const LIMIT: Duration = Duration::from_secs(20);

/// What the callee saw of each call, by Call-ID, in arrival order.
type Seen = Arc<Mutex<HashMap<String, Vec<Method>>>>;

/// The callee: 180 and 200 back to back to each new INVITE (one answer per
/// Call-ID, retransmissions ignored), 200 to each BYE, and a record of the
/// requests of each call in the order they came.
fn callee(ua: TestUa, seen: Seen, stop: Arc<AtomicBool>) {
    let mut answered = HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        let Some((req, src)) = ua.recv_msg(Duration::from_millis(50)) else {
            continue;
        };
        let Some(method) = req.method().cloned() else {
            continue;
        };
        let call_id = String::from_utf8_lossy(req.call_id().unwrap_or_default()).into_owned();
        seen.lock()
            .expect("callee record")
            .entry(call_id.clone())
            .or_default()
            .push(method.clone());
        let dest = response_destination(&req).unwrap_or(src);
        let opts = ReplyOptions {
            to_tag: Some("callee"),
            extra_headers: &[("Contact", &format!("<{}>", ua.contact()))],
            ..Default::default()
        };
        let answer = |code, reason| {
            let r = build_reply(&req, code, reason, &opts).expect("reply");
            ua.send_to(dest, &r);
        };
        match method {
            Method::Invite if answered.insert(call_id) => {
                answer(180, "Ringing");
                answer(200, "OK");
            }
            Method::Bye => answer(200, "OK"),
            _ => {}
        }
    }
}

/// One call as the caller saw it.
#[derive(Default)]
struct Call {
    /// Status codes of the INVITE's responses, in arrival order.
    invite: Vec<u16>,
    bye_answered: bool,
}

#[test]
fn two_workers_keep_each_calls_messages_in_order() {
    let bob = TestUa::new("bob");
    let router = Router::start_with(|m| m.set("server", "workers", "2"));
    bob.register(&router);
    let route = format!("<sip:{};lr>", router.udp_addr());
    let bob_contact = bob.contact();

    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let callee_thread = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || callee(bob, seen, stop))
    };

    let alice = TestUa::new("alice");
    let proxy: SocketAddr = router.udp_addr();
    let mut calls: HashMap<String, Call> = HashMap::new();
    let mut placed = 0;
    let mut ended = 0;
    let deadline = Instant::now() + LIMIT;
    while ended < CALLS && Instant::now() < deadline {
        while placed < CALLS && placed - ended < WINDOW {
            let inv = alice.request("INVITE", &router.aor("bob"));
            calls.insert(inv.call_id.clone(), Call::default());
            alice.send_to(proxy, &inv.build());
            placed += 1;
        }
        let Some((msg, _)) = alice.recv_msg(Duration::from_millis(500)) else {
            continue;
        };
        let (Some(code), Ok(cseq)) = (msg.status(), msg.cseq()) else {
            continue;
        };
        let call_id = String::from_utf8_lossy(msg.call_id().unwrap_or_default()).into_owned();
        let Some(call) = calls.get_mut(&call_id) else {
            continue;
        };
        match cseq.method {
            Method::Invite => {
                call.invite.push(code);
                if code == 200 && call.invite.iter().filter(|c| **c == 200).count() == 1 {
                    // ACK and BYE back to back, through the router
                    // (its Record-Route), as a UA ends a short call.
                    for (method, n) in [("ACK", 1), ("BYE", 2)] {
                        let req = alice
                            .request(method, &bob_contact)
                            .call_id(&call_id)
                            .to(&router.aor("bob"))
                            .to_tag(to_tag(&msg).as_deref())
                            .cseq(n)
                            .header("Route", &route);
                        alice.send_to(proxy, &req.build());
                    }
                }
            }
            Method::Bye if code == 200 && !call.bye_answered => {
                call.bye_answered = true;
                ended += 1;
            }
            _ => {}
        }
    }
    // Whatever is still on its way to the callee.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    callee_thread.join().expect("callee thread");

    let mut late_180 = Vec::new();
    let mut unanswered = Vec::new();
    for (id, call) in &calls {
        match call.invite.iter().position(|c| *c == 200) {
            None => unanswered.push(id),
            Some(first_200) if call.invite[first_200..].contains(&180) => {
                late_180.push(format!("{id}: {:?}", call.invite))
            }
            Some(_) => {}
        }
    }
    assert!(
        late_180.is_empty(),
        "{} of {CALLS} calls got a 180 after the 200, e.g. {:?}",
        late_180.len(),
        &late_180[..late_180.len().min(5)]
    );
    if let Some(id) = unanswered.first() {
        let seen = seen.lock().expect("callee record");
        let full = router.log();
        let log: Vec<&str> = full.lines().filter(|l| l.contains(id.as_str())).collect();
        panic!(
            "{} of {CALLS} INVITEs got no 200; the first, {id}: caller saw {:?}, callee saw {:?}, router log:\n{}",
            unanswered.len(),
            calls[*id].invite,
            seen.get(*id),
            log.join("\n")
        );
    }
    assert_eq!(ended, CALLS, "calls whose BYE was answered");

    let seen = seen.lock().expect("callee record");
    let mut bye_before_ack = Vec::new();
    for id in calls.keys() {
        let methods = seen.get(id).map(Vec::as_slice).unwrap_or_default();
        let ack = methods.iter().position(|m| *m == Method::Ack);
        let bye = methods.iter().position(|m| *m == Method::Bye);
        match (ack, bye) {
            (Some(a), Some(b)) if a < b => {}
            _ => bye_before_ack.push(format!("{id}: {methods:?}")),
        }
    }
    assert!(
        bye_before_ack.is_empty(),
        "{} of {CALLS} calls reached the callee without an ACK before the BYE, e.g. {:?}",
        bye_before_ack.len(),
        &bye_before_ack[..bye_before_ack.len().min(5)]
    );
}
