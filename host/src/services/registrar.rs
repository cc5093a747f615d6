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
