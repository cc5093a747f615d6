//! The registrar (Kamailio `registrar` module): `save` processes a REGISTER
//! per RFC 3261 §10.3 and answers it; `lookup` turns a Request-URI into the
//! destination set of the AOR's current bindings.

use std::time::Instant;

use wisp_sip::{Contacts, Method, Uri};

use crate::config::BriefExpires;
use crate::msg_context::{ActionError, MAX_BRANCHES, MsgContext};
use crate::router::RouterCore;
use crate::services::usrloc::ContactBinding;
use crate::stateless::reply::send_reply_with;

/// The usrloc key of a URI: the user part, plus `@host` with `use_domain`.
pub fn aor_key(uri: &Uri, use_domain: bool) -> Option<String> {
    let user = uri.user_unescaped()?;
    if user.is_empty() {
        return None;
    }
    Some(if use_domain {
        format!("{user}@{}", uri.host.to_string().to_ascii_lowercase())
    } else {
        user
    })
}

/// `save(table)`: store/refresh/remove the REGISTER's bindings and answer it.
pub fn save(core: &RouterCore, ctx: &mut MsgContext, table: &str) -> Result<(), ActionError> {
    ctx.ensure_unhandled()?;
    if ctx.msg.method() != Some(&Method::Register) {
        return Err(ActionError::NotAllowedHere(
            "save() needs a REGISTER".into(),
        ));
    }
    let usrloc = core.usrloc();
    let outcome = prepare(core, ctx, table);
    let (code, reason, extra): (u16, &str, Vec<(String, String)>) = match outcome {
        Ok(Update {
            aor,
            changes,
            call_id,
            cseq,
        }) => {
            let now = Instant::now();
            let applied = usrloc
                .with_table(table, |t| apply(t, &aor, changes, &call_id, cseq, now))
                .map_err(|e| ActionError::InvalidArgument(e.to_string()))?;
            match applied {
                Ok(()) => {
                    let bindings = usrloc
                        .current(table, &aor, now)
                        .map_err(|e| ActionError::Internal(e.to_string()))?;
                    let contacts = bindings
                        .iter()
                        .map(|b| {
                            (
                                "Contact".to_owned(),
                                format!("<{}>;expires={}", b.contact, b.remaining(now)),
                            )
                        })
                        .collect();
                    (200, "OK", contacts)
                }
                Err(reason) => (400, reason, Vec::new()),
            }
        }
        Err(Refusal {
            code,
            reason,
            headers,
            error,
        }) => {
            let extra: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            send_reply_with(core, ctx, code, reason, &extra)?;
            return Err(error);
        }
    };
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    send_reply_with(core, ctx, code, reason, &extra)
}

struct Update {
    aor: String,
    /// (contact URI, expires seconds (0 = remove), q); `None` = remove all (`*`).
    changes: Option<Vec<(String, u32, f32)>>,
    call_id: String,
    cseq: u32,
}

struct Refusal {
    code: u16,
    reason: &'static str,
    headers: Vec<(&'static str, String)>,
    error: ActionError,
}

fn refuse(code: u16, reason: &'static str, error: ActionError) -> Refusal {
    Refusal {
        code,
        reason,
        headers: Vec::new(),
        error,
    }
}

/// Validate the REGISTER and work out the changes (RFC 3261 §10.3 steps 5–7).
fn prepare(core: &RouterCore, ctx: &MsgContext, table: &str) -> Result<Update, Refusal> {
    let cfg = &core.usrloc().config;
    if !cfg.tables.iter().any(|t| t == table) {
        return Err(refuse(
            500,
            "Server Internal Error",
            ActionError::InvalidArgument(format!("no usrloc table {table:?}")),
        ));
    }
    let bad = |what: &str| refuse(400, "Bad Request", ActionError::BadMessage(what.to_owned()));
    let msg = &ctx.msg;
    let to = msg.to().map_err(|_| bad("To does not parse"))?;
    let aor = aor_key(&to.uri, cfg.use_domain).ok_or_else(|| bad("To has no user part"))?;
    let call_id =
        String::from_utf8_lossy(msg.call_id().map_err(|_| bad("no Call-ID"))?).into_owned();
    let cseq = msg.cseq().map_err(|_| bad("CSeq does not parse"))?.seq;
    let header_expires = msg.expires().map_err(|_| bad("Expires does not parse"))?;
    let contacts = msg.contacts().map_err(|_| bad("Contact does not parse"))?;
    let changes = match contacts {
        Contacts::Star => {
            // §10.3 step 6: `*` only with Expires: 0 and alone.
            if header_expires != Some(0) {
                return Err(bad("Contact: * needs Expires: 0"));
            }
            None
        }
        Contacts::List(list) => {
            let mut changes = Vec::with_capacity(list.len());
            for c in list {
                let mut requested = c
                    .expires()
                    .or(header_expires)
                    .unwrap_or(cfg.default_expires);
                if requested != 0
                    && requested < cfg.min_expires
                    && cfg.brief_expires == BriefExpires::Raise
                {
                    requested = cfg.min_expires;
                }
                if requested != 0 && requested < cfg.min_expires {
                    return Err(Refusal {
                        code: 423,
                        reason: "Interval Too Brief",
                        headers: vec![("Min-Expires", cfg.min_expires.to_string())],
                        error: ActionError::BadMessage(format!(
                            "expires {requested} below min_expires"
                        )),
                    });
                }
                let secs = core.usrloc().clamp_expires(requested).as_secs() as u32;
                let q = c.q().unwrap_or(1.0);
                changes.push((c.uri.to_string(), secs, q));
            }
            Some(changes)
        }
    };
    Ok(Update {
        aor,
        changes,
        call_id,
        cseq,
    })
}

/// Apply the changes to one AOR. `Err(reason)` aborts the whole update
/// (§10.3 step 7: same Call-ID with a CSeq not higher than stored).
fn apply(
    table: &mut std::collections::HashMap<String, Vec<ContactBinding>>,
    aor: &str,
    changes: Option<Vec<(String, u32, f32)>>,
    call_id: &str,
    cseq: u32,
    now: Instant,
) -> Result<(), &'static str> {
    let Some(changes) = changes else {
        table.remove(aor);
        return Ok(());
    };
    let bindings = table.entry(aor.to_owned()).or_default();
    for (contact, _, _) in &changes {
        if let Some(b) = bindings.iter().find(|b| &b.contact == contact) {
            if b.call_id == call_id && cseq <= b.cseq {
                return Err("Out of order CSeq");
            }
        }
    }
    for (contact, secs, q) in changes {
        bindings.retain(|b| b.contact != contact);
        if secs > 0 {
            bindings.push(ContactBinding {
                contact,
                q,
                expires_at: now + std::time::Duration::from_secs(secs as u64),
                call_id: call_id.to_owned(),
                cseq,
                received: None,
                updated: now,
            });
        }
    }
    bindings.retain(|b| b.expires_at > now);
    if bindings.is_empty() {
        table.remove(aor);
    }
    Ok(())
}

/// `lookup(table)`: Request-URI -> best binding; the rest become branches.
pub fn lookup(core: &RouterCore, ctx: &mut MsgContext, table: &str) -> Result<(), ActionError> {
    let key = aor_key(ctx.ruri(), core.usrloc().config.use_domain)
        .ok_or_else(|| ActionError::InvalidArgument("the Request-URI has no user part".into()))?;
    let bindings = core
        .usrloc()
        .current(table, &key, Instant::now())
        .map_err(|e| ActionError::InvalidArgument(e.to_string()))?;
    let Some((best, rest)) = bindings.split_first() else {
        // A route that passes this up with `?` answers 404, not 500.
        return Err(ctx.fail(404, "Not Found", ActionError::NotFound));
    };
    let contact = Uri::parse(best.contact.as_bytes()).map_err(|e| {
        ActionError::Internal(format!("stored contact {:?}: {}", best.contact, e.reason()))
    })?;
    ctx.set_ruri(contact);
    ctx.dst_uri = best.received.clone();
    ctx.branches.clear();
    ctx.branches
        .extend(rest.iter().take(MAX_BRANCHES).map(|b| b.contact.clone()));
    Ok(())
}

/// The registrar driven directly from an inline manifest, without Wasm: each
/// test sends REGISTERs through `save` and reads the reply off a real UDP
/// socket, as the UA would.
#[cfg(test)]
mod tests {
    use std::net::UdpSocket as StdUdp;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use wisp_sip::Message;

    use super::*;
    use crate::config::{Manifest, Proto};
    use crate::msg_context::MsgContext;
    use crate::stateless::sanity;
    use crate::transport::{Source, Transports};

    struct Bench {
        core: Arc<RouterCore>,
        ua: StdUdp,
        server: std::net::SocketAddr,
    }

    /// Runs on a multi-thread runtime: the router's UDP send may complete on
    /// a spawned task while the test thread blocks on the UA's socket.
    async fn bench(usrloc: &str) -> Bench {
        let text = format!(
            "[server]\nlisten = [\"udp:127.0.0.1:0\"]\n[usrloc]\n{usrloc}\n[[plugin]]\nname = \"t\"\npath = \"t.wasm\"\n"
        );
        let manifest =
            Manifest::parse(&text, std::path::Path::new("inline.toml")).expect("manifest");
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = sock.local_addr().expect("addr");
        let transports = Arc::new(Transports::new(vec![Arc::new(sock)], vec![], 65535));
        let core = Arc::new(RouterCore::new(manifest, transports));
        let ua = StdUdp::bind("127.0.0.1:0").expect("ua");
        ua.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        Bench { core, ua, server }
    }

    impl Bench {
        fn ctx(&self, raw: String) -> MsgContext {
            let msg = Message::parse(Bytes::from(raw)).expect("request parses");
            let summary = sanity::check_request(&msg).expect("sane request");
            let source = Source {
                proto: Proto::Udp,
                remote: self.ua.local_addr().expect("ua"),
                local: self.server,
            };
            MsgContext::new(msg, source, summary)
        }

        fn register(
            &self,
            user: &str,
            call_id: &str,
            cseq: u32,
            contacts: &[&str],
            expires: Option<u32>,
        ) -> String {
            let ua = self.ua.local_addr().expect("ua");
            let mut r = format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {ua};branch=z9hG4bK{call_id}{cseq};rport\r\n\
                 From: <sip:{user}@127.0.0.1>;tag=f1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
                 CSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\n"
            );
            for c in contacts {
                r.push_str(&format!("Contact: {c}\r\n"));
            }
            if let Some(e) = expires {
                r.push_str(&format!("Expires: {e}\r\n"));
            }
            r.push_str("Content-Length: 0\r\n\r\n");
            r
        }

        /// `save` one REGISTER; returns the reply the UA received.
        fn save(&self, raw: String) -> (Result<(), ActionError>, Message) {
            let mut ctx = self.ctx(raw);
            let result = save(&self.core, &mut ctx, "location");
            let mut buf = vec![0u8; 65535];
            let n = self.ua.recv(&mut buf).expect("a reply to every REGISTER");
            buf.truncate(n);
            (
                result,
                Message::parse(Bytes::from(buf)).expect("reply parses"),
            )
        }

        fn contacts_of(reply: &Message) -> Vec<(String, u32)> {
            match reply.contacts().expect("contacts") {
                wisp_sip::Contacts::List(l) => l
                    .iter()
                    .map(|c| (c.uri.to_string(), c.expires().unwrap_or(0)))
                    .collect(),
                wisp_sip::Contacts::Star => vec![],
            }
        }

        fn lookup(&self, user: &str) -> (Result<(), ActionError>, MsgContext) {
            let ua = self.ua.local_addr().expect("ua");
            let raw = format!(
                "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {ua};branch=z9hG4bKinv\r\n\
                 From: <sip:caller@127.0.0.1>;tag=c\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: inv\r\n\
                 CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            );
            let mut ctx = self.ctx(raw);
            let r = lookup(&self.core, &mut ctx, "location");
            (r, ctx)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rfc3261_10_3_step7_expiry_from_contact_param_then_expires_header_then_default() {
        let b = bench("default_expires = 1800").await;
        let (r, reply) =
            b.save(b.register("a", "c1", 1, &["<sip:a@10.0.0.1>;expires=300"], Some(600)));
        assert!(r.is_ok());
        assert_eq!(reply.status(), Some(200));
        assert_eq!(
            Bench::contacts_of(&reply),
            vec![("sip:a@10.0.0.1".into(), 300)]
        );
        let (_, reply) = b.save(b.register("b", "c2", 1, &["<sip:b@10.0.0.2>"], Some(600)));
        assert_eq!(
            Bench::contacts_of(&reply),
            vec![("sip:b@10.0.0.2".into(), 600)]
        );
        let (_, reply) = b.save(b.register("c", "c3", 1, &["<sip:c@10.0.0.3>"], None));
        assert_eq!(
            Bench::contacts_of(&reply),
            vec![("sip:c@10.0.0.3".into(), 1800)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rfc3261_10_3_step8_reply_lists_every_current_binding() {
        let b = bench("").await;
        let _ = b.save(b.register("a", "c1", 1, &["<sip:a@10.0.0.1>"], Some(600)));
        let (_, reply) = b.save(b.register("a", "c2", 1, &["<sip:a@10.0.0.2>;expires=120"], None));
        let mut contacts = Bench::contacts_of(&reply);
        contacts.sort();
        assert_eq!(contacts.len(), 2, "{contacts:?}");
        assert_eq!(contacts[0].0, "sip:a@10.0.0.1");
        assert!(
            (599..=600).contains(&contacts[0].1),
            "remaining expiry, not the original: {contacts:?}"
        );
        assert_eq!(contacts[1], ("sip:a@10.0.0.2".into(), 120));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rfc3261_10_3_step6_star_with_expires_zero_removes_all_bindings() {
        let b = bench("").await;
        let _ = b.save(b.register(
            "a",
            "c1",
            1,
            &["<sip:a@10.0.0.1>", "<sip:a@10.0.0.2>"],
            Some(600),
        ));
        let (r, reply) = b.save(b.register("a", "c1", 2, &["*"], Some(0)));
        assert!(r.is_ok());
        assert_eq!(reply.status(), Some(200));
        assert!(Bench::contacts_of(&reply).is_empty());
        assert_eq!(b.lookup("a").0, Err(ActionError::NotFound));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rfc3261_10_3_step6_star_without_expires_zero_is_400() {
        let b = bench("").await;
        let (r, reply) = b.save(b.register("a", "c1", 1, &["*"], Some(60)));
        assert!(matches!(r, Err(ActionError::BadMessage(_))), "{r:?}");
        assert_eq!(reply.status(), Some(400));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rfc3261_10_3_step7_same_call_id_without_higher_cseq_is_refused() {
        let b = bench("").await;
        let _ = b.save(b.register("a", "c1", 5, &["<sip:a@10.0.0.1>"], Some(600)));
        let (_, reply) = b.save(b.register(
            "a",
            "c1",
            5,
            &["<sip:a@10.0.0.9>", "<sip:a@10.0.0.1>"],
            Some(0),
        ));
        assert_eq!(
            reply.status(),
            Some(400),
            "a replayed CSeq must not change bindings"
        );
        let (r, ctx) = b.lookup("a");
        assert!(r.is_ok());
        assert_eq!(
            ctx.ruri().to_string(),
            "sip:a@10.0.0.1",
            "the binding survived the refused update"
        );
        let (_, reply) = b.save(b.register("a", "c1", 6, &["<sip:a@10.0.0.1>"], Some(0)));
        assert_eq!(reply.status(), Some(200));
        assert_eq!(b.lookup("a").0, Err(ActionError::NotFound));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rfc3261_10_3_step7_brief_expiry_is_raised_or_rejected_with_423() {
        let raise = bench("min_expires = 60").await;
        let (_, reply) = raise.save(raise.register("a", "c1", 1, &["<sip:a@10.0.0.1>"], Some(15)));
        assert_eq!(reply.status(), Some(200));
        assert_eq!(
            Bench::contacts_of(&reply),
            vec![("sip:a@10.0.0.1".into(), 60)]
        );

        let reject = bench("min_expires = 60\nbrief_expires = \"reject\"").await;
        let (r, reply) =
            reject.save(reject.register("a", "c1", 1, &["<sip:a@10.0.0.1>"], Some(15)));
        assert!(r.is_err());
        assert_eq!(reply.status(), Some(423));
        assert_eq!(
            reply.header("Min-Expires").map(|h| h.value.clone()),
            Some(Bytes::from_static(b"60"))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_expires_caps_the_binding() {
        let b = bench("max_expires = 3600").await;
        let (_, reply) = b.save(b.register("a", "c1", 1, &["<sip:a@10.0.0.1>"], Some(999_999)));
        assert_eq!(
            Bench::contacts_of(&reply),
            vec![("sip:a@10.0.0.1".into(), 3600)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookup_orders_by_q_and_puts_the_rest_in_branches() {
        let b = bench("").await;
        let _ = b.save(b.register(
            "a",
            "c1",
            1,
            &[
                "<sip:a@10.0.0.1>;q=0.5",
                "<sip:a@10.0.0.2>;q=0.9",
                "<sip:a@10.0.0.3>",
            ],
            Some(600),
        ));
        let (r, ctx) = b.lookup("a");
        assert!(r.is_ok());
        assert_eq!(
            ctx.ruri().to_string(),
            "sip:a@10.0.0.3",
            "no q means 1.0, the best"
        );
        assert_eq!(
            ctx.branches,
            vec!["sip:a@10.0.0.2".to_owned(), "sip:a@10.0.0.1".to_owned()]
        );
        assert_eq!(
            String::from_utf8_lossy(&ctx.msg.request_uri_raw()),
            "sip:a@10.0.0.3"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookup_of_unknown_user_is_not_found_and_arms_404() {
        let b = bench("").await;
        let (r, ctx) = b.lookup("nobody");
        assert_eq!(r, Err(ActionError::NotFound));
        assert_eq!(ctx.last_error, Some((404, "Not Found")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn save_into_an_undeclared_table_is_refused_with_500() {
        let b = bench("tables = [\"location\"]").await;
        let mut ctx = b.ctx(b.register("a", "c1", 1, &["<sip:a@10.0.0.1>"], Some(60)));
        let r = save(&b.core, &mut ctx, "elsewhere");
        assert!(matches!(r, Err(ActionError::InvalidArgument(_))), "{r:?}");
        let mut buf = [0u8; 4096];
        let n = b.ua.recv(&mut buf).expect("reply");
        assert!(buf[..n].starts_with(b"SIP/2.0 500 "));
    }
}
