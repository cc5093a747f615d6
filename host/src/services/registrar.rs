//! The registrar (Kamailio `registrar` module): `save` processes a REGISTER
//! per RFC 3261 §10.3 and answers it; `lookup` turns a Request-URI into the
//! destination set of the AOR's current bindings.

use std::time::Instant;

use wisp_sip::{Contacts, Method, Uri};

use crate::config::BriefExpires;
use crate::services::Services;
use crate::services::usrloc::{ContactBinding, Usrloc};
use crate::stateless::context::{ActionError, DestBranch, Handled, MAX_BRANCHES};
use crate::stateless::reply::DeferredReply;
use crate::stats::{self, Counter};
use crate::store::writer::Done;
use crate::store::{Change, unix_now};
use crate::tm::RouteContext;
use crate::util::CallId;

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
///
/// With write-through (`db_mode = 1`) the 200 OK waits for the commit of the
/// bindings: the reply is built later, on the database writer, and sent
/// after the transaction holding them commits (503 with `Retry-After` if it
/// fails: the database is away, and the UA should try again). The route
/// sees the request as answered at once either way.
pub fn save(svc: &Services, ctx: &mut RouteContext, table: &str) -> Result<(), ActionError> {
    ctx.ensure_unhandled()?;
    if ctx.msg.method() != Some(&Method::Register) {
        return Err(ActionError::NotAllowedHere(
            "save() needs a REGISTER".into(),
        ));
    }
    let usrloc = svc.usrloc();
    let Update {
        aor,
        changes,
        path,
        call_id,
        cseq,
    } = match prepare(svc, ctx, table) {
        Ok(update) => update,
        Err(Refusal {
            code,
            reason,
            headers,
            error,
        }) => {
            stats::inc(Counter::RegistersRefused);
            tracing::debug!(
                call_id = %CallId(&ctx.msg),
                method = %"REGISTER",
                code,
                "save: REGISTER refused: {error}"
            );
            let extra: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            svc.tm().reply(ctx, code, reason, &extra)?;
            return Err(error);
        }
    };
    if !usrloc.ready() {
        // Started while the database was away: nothing is saved before the
        // bindings it holds are loaded (the writer retries each second).
        stats::inc(Counter::RegistersRefused);
        return svc.tm().reply(
            ctx,
            503,
            "Service Unavailable",
            &[("Retry-After", RETRY_DATABASE_S)],
        );
    }
    // Write-through answers after the commit; a REGISTER inside a
    // transaction is answered through it, at once (the transaction layer
    // has no deferred reply yet).
    let mut deferred = if usrloc.write_through() {
        svc.tm().defer_reply(ctx)?
    } else {
        None
    };
    let persistent = usrloc.persistent();
    let now = Instant::now();
    let outcome = usrloc.with_table(table, |t| {
        let limits = Limits {
            max_contacts: usrloc.config.max_contacts,
            max_aors: usrloc.config.max_aors(),
            record: persistent,
        };
        let socket = socket_name(ctx.source);
        let request = RegisterRequest {
            path: path.as_deref(),
            call_id: &call_id,
            cseq,
            server_id: usrloc.config.server_id,
            socket: &socket,
        };
        let touched = apply(t, &aor, changes, &request, now, limits)?;
        let mut contacts = reply_contacts(t.get(&aor), now);
        if let Some(path) = &path {
            // RFC 3327 §5.3: the registrar returns the Path it stored.
            contacts.push(("Path".to_owned(), path.clone()));
        }
        if persistent {
            let now_unix = unix_now();
            let stored = touched
                .into_iter()
                .map(|(contact, binding)| match binding {
                    Some(b) => Change::Put(Usrloc::stored(table, &aor, &b, now, now_unix)),
                    // Removed by this REGISTER: another node's newer
                    // binding of the contact is not (§10.3 step 7).
                    None => Change::Delete {
                        table: table.to_owned(),
                        aor: aor.clone(),
                        contact,
                        call_id: call_id.clone(),
                        cseq,
                        at: now_unix,
                    },
                })
                .collect();
            let done = deferred.take().map(|reply| {
                reply_after_commit(
                    reply,
                    contacts.clone(),
                    usrloc.on_failed_commit(),
                    call_id.to_string(),
                )
            });
            // Queued while the table is held: the database sees the
            // changes to one AOR in the order memory did.
            usrloc.persist(stored, done);
        }
        Ok(contacts)
    });
    let (code, reason, contacts) = match outcome {
        Ok(Ok(contacts)) => (200, "OK", contacts),
        Ok(Err((code, REGISTRAR_FULL))) => (
            code,
            REGISTRAR_FULL,
            vec![("Retry-After".to_owned(), RETRY_FULL_S.to_owned())],
        ),
        Ok(Err((code, reason))) => (code, reason, Vec::new()),
        // `prepare` checked the table; kept for a table removed meanwhile.
        Err(e) => (500, "Server Internal Error", {
            tracing::warn!(call_id = %CallId(&ctx.msg), method = %"REGISTER", "save: {e}");
            Vec::new()
        }),
    };
    stats::inc(if code == 200 {
        Counter::RegistersAccepted
    } else {
        Counter::RegistersRefused
    });
    if usrloc.write_through() && ctx.txn.is_none() {
        // Either the writer answers after the commit, or the update was
        // refused before anything was queued and is answered now.
        if let Some(reply) = deferred {
            let extra: Vec<(&str, &str)> = if code == 200 {
                Vec::new()
            } else {
                contacts
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect()
            };
            reply
                .send(code, reason, &extra)
                .map_err(|e| ActionError::SendFailed(e.to_string()))?;
        }
        ctx.handled = Some(Handled::Replied(code));
        return Ok(());
    }
    let extra: Vec<(&str, &str)> = contacts
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    svc.tm().reply(ctx, code, reason, &extra)
}

/// The Contact headers of a 200 OK to REGISTER: every current binding with
/// its remaining expiry (RFC 3261 §10.3 step 8). A permanent contact is
/// listed without `expires`: it has none.
fn reply_contacts(bindings: Option<&Vec<ContactBinding>>, now: Instant) -> Vec<(String, String)> {
    let mut live: Vec<&ContactBinding> = bindings
        .map(|b| b.iter().filter(|b| b.is_live(now)).collect())
        .unwrap_or_default();
    live.sort_by(|a, b| b.q.total_cmp(&a.q).then(b.updated.cmp(&a.updated)));
    live.iter()
        .map(|b| {
            // RFC 5626 §6: the Contact parameters it was registered with
            // (`+sip.instance`, `reg-id`) come back with it.
            let params = b.params.as_deref().unwrap_or("");
            let value = match b.remaining(now) {
                Some(secs) => format!("<{}>{params};expires={secs}", b.contact),
                None => format!("<{}>{params}", b.contact),
            };
            ("Contact".to_owned(), value)
        })
        .collect()
}

/// The writer's completion for a write-through REGISTER: 200 with the
/// bindings once committed, 503 with `Retry-After` if the commit failed
/// (never a 200 without its commit; the writer logs the database's state).
fn reply_after_commit(
    reply: DeferredReply,
    contacts: Vec<(String, String)>,
    on_failure: Option<impl Fn() + Send + 'static>,
    call_id: String,
) -> Done {
    Box::new(move |committed| {
        let sent = match committed {
            Ok(()) => {
                let extra: Vec<(&str, &str)> = contacts
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                reply.send(200, "OK", &extra)
            }
            Err(e) => {
                tracing::debug!(
                    %call_id,
                    method = %"REGISTER",
                    "REGISTER answered 503: bindings not stored: {e}"
                );
                if let Some(f) = &on_failure {
                    f();
                }
                reply.send(
                    503,
                    "Service Unavailable",
                    &[("Retry-After", RETRY_DATABASE_S)],
                )
            }
        };
        if let Err(e) = sent {
            tracing::info!(%call_id, method = %"REGISTER", "reply to REGISTER not sent: {e}");
        }
    })
}

struct Update {
    aor: String,
    /// The Contacts of the REGISTER; `None` = remove all (`*`).
    changes: Option<Vec<ContactChange>>,
    /// Path header values of the REGISTER (RFC 3327), joined.
    path: Option<String>,
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
fn prepare(svc: &Services, ctx: &RouteContext, table: &str) -> Result<Update, Refusal> {
    let cfg = &svc.usrloc().config;
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
                let secs = svc.usrloc().clamp_expires(requested).as_secs() as u32;
                let q = c.q().unwrap_or(1.0);
                // A WebSocket client is reached only over its connection
                // (RFC 7118 §5.2: its Contact host is often `*.invalid`):
                // its source is kept without `fix_nated_register`.
                let received = (ctx.nated_register || ctx.source.proto.is_websocket())
                    .then(|| nat_source(&c.uri, ctx.source))
                    .flatten();
                changes.push(ContactChange {
                    contact: c.uri.to_string(),
                    secs,
                    q,
                    received,
                    params: kept_params(&c.params),
                    nat: ctx.nated_register,
                });
            }
            Some(changes)
        }
    };
    let path = {
        let values: Vec<String> = msg
            .header_values("Path")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    Ok(Update {
        aor,
        changes,
        path,
        call_id,
        cseq,
    })
}

/// One Contact of a REGISTER.
struct ContactChange {
    /// The Contact URI.
    contact: String,
    /// Granted seconds; 0 removes the binding.
    secs: u32,
    q: f32,
    /// Where the REGISTER really came from when that is not the Contact (NAT).
    received: Option<String>,
    /// The Contact's header parameters other than `q` and `expires`, as
    /// written (`;+sip.instance="<urn:uuid:..>";reg-id=1`).
    params: Option<String>,
    /// Saved after `fix-nated-register`: flagged NATed, kept alive.
    nat: bool,
}

/// The Contact header parameters a binding keeps and the 200 returns
/// (RFC 5626 §6: `+sip.instance`, `reg-id`; RFC 3840 feature tags; any
/// other): every one but `q` and `expires`, which the registrar owns.
fn kept_params(params: &[wisp_sip::Param]) -> Option<String> {
    let mut out = String::new();
    for (name, value) in params {
        if name.eq_ignore_ascii_case("q") || name.eq_ignore_ascii_case("expires") {
            continue;
        }
        out.push(';');
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(v);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The REGISTER's source as a URI when the Contact names another address:
/// a contact behind NAT is reached at the source (Kamailio's
/// `fix_nated_register` + `received`), a TCP, TLS or WebSocket one on the
/// connection it opened (a WebSocket Contact's host is often `*.invalid`,
/// RFC 7118 §5.2: only this source reaches it).
fn nat_source(contact: &Uri, source: crate::transport::Source) -> Option<String> {
    let same_ip = match &contact.host {
        wisp_sip::Host::Ipv4(ip) => std::net::IpAddr::V4(*ip) == source.remote.ip(),
        wisp_sip::Host::Ipv6(ip) => std::net::IpAddr::V6(*ip) == source.remote.ip(),
        wisp_sip::Host::Domain(_) => false,
    };
    let same_port = contact.port.unwrap_or(5060) == source.remote.port();
    if same_ip && same_port && source.proto == crate::config::Proto::Udp {
        return None;
    }
    Some(source_uri(source))
}

/// The URI `received` stores for a binding reached at `source` (its NAT
/// address, or the connection it registered over).
pub fn source_uri(source: crate::transport::Source) -> String {
    let host = match source.remote {
        std::net::SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    match source.proto {
        crate::config::Proto::Udp => format!("sip:{host}"),
        crate::config::Proto::Tcp => format!("sip:{host};transport=tcp"),
        crate::config::Proto::Tls => format!("sip:{host};transport=tls"),
        crate::config::Proto::Ws => format!("sip:{host};transport=ws"),
        crate::config::Proto::Wss => format!("sip:{host};transport=wss"),
    }
}

/// The reason of the 503 to a REGISTER that would add an AOR past
/// `usrloc.memory_mb`, and its `Retry-After`.
const REGISTRAR_FULL: &str = "Registrar Full";
const RETRY_FULL_S: &str = "60";
/// The `Retry-After` of a 503 to a REGISTER whose commit failed.
const RETRY_DATABASE_S: &str = "5";

/// What [`apply`] changed: each contact with its new binding, `None` when removed.
type Touched = Vec<(String, Option<ContactBinding>)>;

/// How [`apply`] is bounded and what it reports.
#[derive(Clone, Copy)]
struct Limits {
    /// Most live bindings an AOR may have after the update; 0 = no limit.
    max_contacts: usize,
    /// Most AORs the table may hold (`usrloc.memory_mb`): a new one past it
    /// is refused with [`REGISTRAR_FULL`].
    max_aors: usize,
    /// Report what changed (only a persistent usrloc needs it).
    record: bool,
}

/// What every binding a REGISTER writes records of it.
struct RegisterRequest<'a> {
    /// Its Path header values (RFC 3327), stored with each binding.
    path: Option<&'a str>,
    call_id: &'a str,
    cseq: u32,
    /// This router (`server.server_id`), the owner of what it saves.
    server_id: u32,
    /// The socket the REGISTER came in on (`tcp:192.0.2.1:5060`).
    socket: &'a str,
}

/// Apply the changes to one AOR, leaving its permanent contacts as they
/// are. `Err((code, reason))` aborts the whole update: §10.3 step 7 (same Call-ID with a CSeq not higher than stored),
/// or more bindings than `max_contacts` (Kamailio's 503).
fn apply(
    table: &mut std::collections::HashMap<String, Vec<ContactBinding>>,
    aor: &str,
    changes: Option<Vec<ContactChange>>,
    request: &RegisterRequest<'_>,
    now: Instant,
    limits: Limits,
) -> Result<Touched, (u16, &'static str)> {
    let RegisterRequest {
        path,
        call_id,
        cseq,
        server_id,
        socket,
    } = *request;
    let record = limits.record;
    let Some(changes) = changes else {
        // `*` removes what REGISTERs made; a permanent contact is the
        // operator's (`wisp ctl ul add`) and stays.
        let mut removed = Vec::new();
        if let Some(bindings) = table.get_mut(aor) {
            bindings.retain(|b| {
                let permanent = b.expires_at.is_none();
                if !permanent && record {
                    removed.push((b.contact.clone(), None));
                }
                permanent
            });
            if bindings.is_empty() {
                table.remove(aor);
            }
        }
        return Ok(removed);
    };
    if !table.contains_key(aor)
        && table.len() >= limits.max_aors
        && changes.iter().any(|c| c.secs > 0)
    {
        return Err((503, REGISTRAR_FULL));
    }
    let bindings = table.entry(aor.to_owned()).or_default();
    // Nor does a REGISTER replace or remove a permanent contact it names.
    let changes: Vec<ContactChange> = changes
        .into_iter()
        .filter(|c| {
            !bindings
                .iter()
                .any(|b| b.expires_at.is_none() && b.contact == c.contact)
        })
        .collect();
    for c in &changes {
        if let Some(b) = bindings.iter().find(|b| b.contact == c.contact)
            && b.call_id == call_id
            && cseq <= b.cseq
        {
            return Err((400, "Out of order CSeq"));
        }
    }
    if limits.max_contacts > 0 {
        let kept = bindings
            .iter()
            .filter(|b| b.is_live(now) && !changes.iter().any(|c| c.contact == b.contact))
            .count();
        let added = changes.iter().filter(|c| c.secs > 0).count();
        if kept + added > limits.max_contacts {
            return Err((503, "Too Many Registered Contacts"));
        }
    }
    // Only a persistent usrloc needs to know what changed (memory-only
    // stays as cheap as it was).
    let mut touched = Vec::new();
    for ContactChange {
        contact,
        secs,
        q,
        received,
        params,
        nat,
    } in changes
    {
        bindings.retain(|b| b.contact != contact);
        if secs > 0 {
            let binding = ContactBinding {
                contact: contact.clone(),
                q,
                expires_at: Some(now + std::time::Duration::from_secs(secs as u64)),
                call_id: call_id.to_owned(),
                cseq,
                received,
                path: path.map(str::to_owned),
                params,
                updated: now,
                server_id,
                socket: Some(socket.to_owned()),
                nat,
            };
            if record {
                touched.push((contact, Some(binding.clone())));
            }
            bindings.push(binding);
        } else if record {
            touched.push((contact, None));
        }
    }
    bindings.retain(|b| b.is_live(now));
    if bindings.is_empty() {
        table.remove(aor);
    }
    Ok(touched)
}

/// The socket a message came in on, as Kamailio writes it (`tcp:192.0.2.1:5060`).
fn socket_name(source: crate::transport::Source) -> String {
    let proto = match source.proto {
        crate::config::Proto::Udp => "udp",
        crate::config::Proto::Tcp => "tcp",
        crate::config::Proto::Tls => "tls",
        crate::config::Proto::Ws => "ws",
        crate::config::Proto::Wss => "wss",
    };
    format!("{proto}:{}", source.local)
}

/// The loose route to the router that owns a binding bound to one of its
/// connections (its REGISTER came in over TCP): `sip:ip:port;transport=tcp;lr`
/// from `tcp:ip:port`. `None` for a UDP socket, which any router reaches.
fn owner_route(socket: &str) -> Option<String> {
    let (proto, addr) = socket.split_once(':')?;
    if proto.eq_ignore_ascii_case("udp") || addr.parse::<std::net::SocketAddr>().is_err() {
        return None;
    }
    Some(format!("sip:{addr};transport={proto};lr"))
}

/// How a binding is reached: through its Path (RFC 3327: Route headers, the
/// first Path entry as next hop); else, when another router (`server_id`
/// other than `mine`) holds its connection, through that router (a Route
/// to the socket the REGISTER came in on: it relays the request over the
/// connection); else at its NAT source, else at the Contact itself.
fn next_hop(b: &ContactBinding, mine: u32) -> (Option<String>, Option<String>) {
    if let Some(path) = &b.path {
        let first = wisp_sip::NameAddr::parse_list(path.as_bytes())
            .ok()
            .and_then(|l| l.into_iter().next())
            .map(|n| n.uri.to_string());
        if first.is_some() {
            return (first, Some(path.clone()));
        }
    }
    if b.server_id != mine
        && let Some(owner) = b.socket.as_deref().and_then(owner_route)
    {
        let route = format!("<{owner}>");
        return (Some(owner), Some(route));
    }
    (b.received.clone(), None)
}

/// `lookup(table)`: Request-URI -> best binding; the rest become branches.
pub fn lookup(svc: &Services, ctx: &mut RouteContext, table: &str) -> Result<(), ActionError> {
    let key = aor_key(ctx.ruri(), svc.usrloc().config.use_domain)
        .ok_or_else(|| ActionError::InvalidArgument("the Request-URI has no user part".into()))?;
    let bindings = svc
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
    let mine = svc.usrloc().config.server_id;
    let (dst_uri, path) = next_hop(best, mine);
    ctx.dst_uri = dst_uri;
    ctx.path = path;
    ctx.branches.clear();
    let rest = if svc.usrloc().config.append_branches {
        rest
    } else {
        &[]
    };
    ctx.branches.extend(rest.iter().take(MAX_BRANCHES).map(|b| {
        let (dst_uri, path) = next_hop(b, mine);
        DestBranch {
            uri: b.contact.clone(),
            dst_uri,
            path,
        }
    }));
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
    use crate::stateless::RouteKind;
    use crate::stateless::sanity;
    use crate::transport::{Source, Transports};

    struct Bench {
        svc: Services,
        ua: StdUdp,
        server: std::net::SocketAddr,
    }

    /// Runs on a multi-thread runtime: the router's UDP send may complete on
    /// a spawned task while the test thread blocks on the UA's socket.
    async fn bench(usrloc: &str) -> Bench {
        bench_in(usrloc, None).await
    }

    /// With `db`, user location is opened on that database as `run` opens it.
    async fn bench_in(usrloc: &str, db: Option<&std::path::Path>) -> Bench {
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
        let usrloc = match db {
            None => crate::services::usrloc::Usrloc::new(manifest.usrloc.clone()),
            Some(path) => crate::services::usrloc::Usrloc::open(
                manifest.usrloc.clone(),
                path,
                Some(tokio::runtime::Handle::current()),
            )
            .expect("open database"),
        };
        let sl = Arc::new(crate::stateless::Stateless::new(
            transports,
            &manifest.server.aliases,
            manifest.rr.clone(),
        ));
        let clock = Arc::new(crate::tm::timer::SystemClock);
        let (tm, _failure_routes) = crate::tm::Tm::new(&manifest.tm, clock, sl, None);
        let ua = StdUdp::bind("127.0.0.1:0").expect("ua");
        ua.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let svc = Services::new(usrloc, tm);
        Bench { svc, ua, server }
    }

    impl Bench {
        fn ctx(&self, raw: String) -> RouteContext {
            let msg = Message::parse(Bytes::from(raw)).expect("request parses");
            let summary = sanity::check_request(&msg).expect("sane request");
            let source = Source {
                proto: Proto::Udp,
                remote: self.ua.local_addr().expect("ua"),
                local: self.server,
            };
            RouteContext::new(msg, source, summary, RouteKind::Request)
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
            let result = save(&self.svc, &mut ctx, "location");
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

        fn lookup(&self, user: &str) -> (Result<(), ActionError>, RouteContext) {
            let ua = self.ua.local_addr().expect("ua");
            let raw = format!(
                "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {ua};branch=z9hG4bKinv\r\n\
                 From: <sip:caller@127.0.0.1>;tag=c\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: inv\r\n\
                 CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            );
            let mut ctx = self.ctx(raw);
            let r = lookup(&self.svc, &mut ctx, "location");
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
    async fn rfc3581_contact_behind_nat_is_reached_at_the_registers_source() {
        let b = bench("").await;
        let ua = b.ua.local_addr().expect("ua");
        let save_nated = |raw: String| {
            let mut ctx = b.ctx(raw);
            ctx.nated_register = true;
            let r = save(&b.svc, &mut ctx, "location");
            let mut buf = vec![0u8; 65535];
            let _ = b.ua.recv(&mut buf).expect("a reply");
            r
        };
        // The Contact names a private address; the REGISTER came from `ua`.
        let r = save_nated(b.register("n", "c1", 1, &["<sip:n@10.0.0.9:5060>"], Some(600)));
        assert!(r.is_ok());
        // One that registers its real source needs no detour.
        let own = format!("<sip:o@{ua}>");
        let _ = save_nated(b.register("o", "c2", 1, &[own.as_str()], Some(600)));
        // Without fix_nated_register a (third-party) Contact is taken as written.
        let _ = b.save(b.register("t", "c3", 1, &["<sip:t@10.0.0.9:5060>"], Some(600)));
        let (_, ctx) = b.lookup("t");
        assert_eq!(ctx.dst_uri, None);
        let (r, ctx) = b.lookup("n");
        assert!(r.is_ok());
        assert_eq!(ctx.ruri().to_string(), "sip:n@10.0.0.9:5060");
        assert_eq!(ctx.dst_uri.as_deref(), Some(format!("sip:{ua}").as_str()));
        let (_, ctx) = b.lookup("o");
        assert_eq!(ctx.dst_uri, None);
        // fix_nated_register flags the binding NATed (the keepalives ping
        // it), whether or not its Contact needed the detour; a third-party
        // registration is not flagged.
        let nat = |aor: &str| {
            b.svc
                .usrloc()
                .current("location", aor, Instant::now())
                .expect("table")
                .iter()
                .map(|c| c.nat)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            (nat("n"), nat("o"), nat("t")),
            (vec![true], vec![true], vec![false])
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_latest_contact_with_append_branches_off_and_desc_time_order() {
        // Seed 003, "Using Only Latest User's Contact".
        let b = bench("append_branches = false\ndesc_time_order = true").await;
        let _ = b.save(b.register("l", "c1", 1, &["<sip:l@10.0.0.1>;q=1.0"], Some(600)));
        std::thread::sleep(std::time::Duration::from_millis(5));
        let _ = b.save(b.register("l", "c2", 1, &["<sip:l@10.0.0.2>;q=0.1"], Some(600)));
        let (r, ctx) = b.lookup("l");
        assert!(r.is_ok());
        assert_eq!(
            ctx.ruri().to_string(),
            "sip:l@10.0.0.2",
            "newest, despite its q"
        );
        assert!(ctx.branches.is_empty(), "{:?}", ctx.branches);
        // The default orders by q and keeps the others as branches.
        let b = bench("").await;
        let _ = b.save(b.register("l", "c1", 1, &["<sip:l@10.0.0.1>;q=1.0"], Some(600)));
        let _ = b.save(b.register("l", "c2", 1, &["<sip:l@10.0.0.2>;q=0.1"], Some(600)));
        let (_, ctx) = b.lookup("l");
        assert_eq!(ctx.ruri().to_string(), "sip:l@10.0.0.1");
        assert_eq!(ctx.branches.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rfc3327_path_is_stored_and_lookup_routes_through_it() {
        let b = bench("").await;
        let mut raw = b.register(
            "p",
            "c1",
            1,
            &["<sip:p@10.0.0.7>", "<sip:p@10.0.0.8>;q=0.5"],
            Some(600),
        );
        raw = raw.replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nPath: <sip:edge.example:5099;lr>\r\n",
        );
        let (r, reply) = b.save(raw);
        assert!(r.is_ok());
        assert_eq!(
            reply.header("Path").map(|h| h.value.clone()),
            Some(bytes::Bytes::from_static(b"<sip:edge.example:5099;lr>")),
            "RFC 3327 §5.3: the 200 carries the stored Path"
        );
        let (r, ctx) = b.lookup("p");
        assert!(r.is_ok());
        assert_eq!(ctx.dst_uri.as_deref(), Some("sip:edge.example:5099;lr"));
        assert_eq!(ctx.path.as_deref(), Some("<sip:edge.example:5099;lr>"));
        assert_eq!(ctx.branches.len(), 1);
        assert_eq!(ctx.branches[0].uri, "sip:p@10.0.0.8");
        assert_eq!(
            ctx.branches[0].path.as_deref(),
            Some("<sip:edge.example:5099;lr>")
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
    async fn rfc5626_6_contact_params_are_kept_and_returned_in_the_200_and_after_a_reopen() {
        const INSTANCE: &str = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";
        let tmp = tempfile::tempdir().expect("temp dir");
        let db = tmp.path().join("wisp.db");
        let contact =
            format!("<sip:o@10.0.0.1;transport=tcp>;{INSTANCE};reg-id=1;q=0.5;expires=300");
        let b = bench_in("db_mode = 1", Some(&db)).await;
        let (r, reply) = b.save(b.register("o", "c1", 1, &[contact.as_str()], Some(600)));
        assert!(r.is_ok(), "{r:?}");
        let expected = format!("<sip:o@10.0.0.1;transport=tcp>;{INSTANCE};reg-id=1;expires=300");
        assert_eq!(
            reply.header("Contact").map(|h| h.value.clone()),
            Some(Bytes::from(expected.clone())),
            "every parameter but q and expires comes back as registered"
        );
        drop(b);
        // The next process loads them from the database.
        let b = bench_in("db_mode = 1", Some(&db)).await;
        let (_, reply) = b.save(b.register("o", "c2", 1, &[], None));
        let got = reply
            .header("Contact")
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
            .unwrap_or_default();
        assert!(
            got.starts_with(&format!(
                "<sip:o@10.0.0.1;transport=tcp>;{INSTANCE};reg-id=1;expires="
            )),
            "{got}"
        );
        // A refresh without them drops them: the binding is what was last registered.
        let (_, reply) =
            b.save(b.register("o", "c2", 2, &["<sip:o@10.0.0.1;transport=tcp>"], Some(600)));
        assert_eq!(
            reply.header("Contact").map(|h| h.value.clone()),
            Some(Bytes::from_static(
                b"<sip:o@10.0.0.1;transport=tcp>;expires=600"
            ))
        );
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
            ctx.branches
                .iter()
                .map(|b| b.uri.as_str())
                .collect::<Vec<_>>(),
            vec!["sip:a@10.0.0.2", "sip:a@10.0.0.1"]
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
        let r = save(&b.svc, &mut ctx, "elsewhere");
        assert!(matches!(r, Err(ActionError::InvalidArgument(_))), "{r:?}");
        let mut buf = [0u8; 4096];
        let n = b.ua.recv(&mut buf).expect("reply");
        assert!(buf[..n].starts_with(b"SIP/2.0 500 "));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_through_answers_after_the_commit_and_refusals_at_once() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        let db = dir.join("wisp.db");
        let b = bench_in("db_mode = 1", Some(&db)).await;
        let (r, reply) = b.save(b.register("a", "c1", 1, &["<sip:a@10.0.0.1>"], Some(600)));
        assert!(r.is_ok());
        assert_eq!(reply.status(), Some(200));
        assert_eq!(
            Bench::contacts_of(&reply),
            vec![("sip:a@10.0.0.1".into(), 600)]
        );
        // The 200 was sent after the commit: another connection sees the row.
        let conn = rusqlite::Connection::open(&db).expect("open");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM bindings WHERE aor = 'a'", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(n, 1);
        let (r, reply) = b.save(b.register("a", "c1", 1, &["<sip:a@10.0.0.1>"], Some(600)));
        assert!(r.is_ok(), "the refusal is the reply, as without a database");
        assert_eq!(reply.status(), Some(400));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_table_full_of_aors_refuses_a_new_one_with_503_and_retry_after_but_updates_the_old() {
        // 1 MiB at 1 KB an AOR: 1,024 AORs.
        let b = bench("memory_mb = 1").await;
        for i in 0..1024 {
            let (_, reply) = b.save(b.register(
                &format!("u{i}"),
                &format!("c{i}"),
                1,
                &[&format!("<sip:u{i}@10.0.0.1>")],
                Some(600),
            ));
            assert_eq!(reply.status(), Some(200), "AOR {i} fits");
        }
        let (_, reply) = b.save(b.register("late", "cl", 1, &["<sip:late@10.0.0.1>"], Some(600)));
        assert_eq!(reply.status(), Some(503));
        assert_eq!(
            reply.header("Retry-After").map(|h| h.value.clone()),
            Some(bytes::Bytes::from_static(b"60"))
        );
        // An AOR already held is updated, and one leaving makes room.
        let (_, reply) = b.save(b.register("u7", "c7", 2, &["<sip:u7@10.0.0.2>"], Some(600)));
        assert_eq!(reply.status(), Some(200));
        let (_, reply) = b.save(b.register("u8", "c8", 2, &["<sip:u8@10.0.0.1>"], Some(0)));
        assert_eq!(reply.status(), Some(200));
        let (_, reply) = b.save(b.register("late", "cl", 2, &["<sip:late@10.0.0.1>"], Some(600)));
        assert_eq!(reply.status(), Some(200), "room after u8 unregistered");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_contacts_refuses_an_update_past_the_limit_with_503_and_changes_nothing() {
        let b = bench("max_contacts = 2").await;
        let (_, reply) = b.save(b.register(
            "a",
            "c1",
            1,
            &["<sip:a@10.0.0.1>", "<sip:a@10.0.0.2>"],
            Some(600),
        ));
        assert_eq!(reply.status(), Some(200));
        let (_, reply) = b.save(b.register("a", "c2", 1, &["<sip:a@10.0.0.3>"], Some(600)));
        assert_eq!(reply.status(), Some(503));
        // Refreshing, or replacing one binding by another, stays within it.
        let (_, reply) = b.save(b.register(
            "a",
            "c1",
            2,
            &["<sip:a@10.0.0.1>;expires=0", "<sip:a@10.0.0.3>"],
            Some(600),
        ));
        assert_eq!(reply.status(), Some(200));
        let mut contacts: Vec<String> = Bench::contacts_of(&reply)
            .into_iter()
            .map(|c| c.0)
            .collect();
        contacts.sort();
        assert_eq!(contacts, ["sip:a@10.0.0.2", "sip:a@10.0.0.3"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_permanent_contact_survives_star_and_a_register_naming_it() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let db = tmp.path().join("wisp.db");
        let b = bench_in("db_mode = 1", Some(&db)).await;
        let usrloc = b.svc.usrloc();
        usrloc
            .add("location", "a", "sip:a@10.0.0.9", None, None)
            .expect("table");
        let _ = b.save(b.register("a", "c1", 1, &["<sip:a@10.0.0.1>"], Some(600)));
        // Neither an expiry nor a removal of it by a REGISTER changes it.
        let (_, reply) = b.save(b.register("a", "c1", 2, &["<sip:a@10.0.0.9>"], Some(60)));
        assert_eq!(reply.status(), Some(200));
        let (_, reply) = b.save(b.register("a", "c1", 3, &["<sip:a@10.0.0.9>"], Some(0)));
        assert_eq!(reply.status(), Some(200));
        let (r, reply) = b.save(b.register("a", "c1", 4, &["*"], Some(0)));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(reply.status(), Some(200));
        assert_eq!(
            Bench::contacts_of(&reply),
            vec![("sip:a@10.0.0.9".into(), 0)],
            "the 200 lists the permanent contact, without expires"
        );
        let now = Instant::now();
        let left = usrloc.current("location", "a", now).expect("table");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].contact, "sip:a@10.0.0.9");
        assert_eq!(left[0].expires_at, None, "still permanent");
        let (r, ctx) = b.lookup("a");
        assert!(r.is_ok());
        assert_eq!(ctx.ruri().to_string(), "sip:a@10.0.0.9");
        // The database kept it too (the 200 was sent after the commit).
        let conn = rusqlite::Connection::open(&db).expect("open");
        let rows: Vec<(String, Option<i64>)> = conn
            .prepare("SELECT contact, expires FROM bindings WHERE aor = 'a'")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(rows, vec![("sip:a@10.0.0.9".to_owned(), None)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_contacts_counts_a_permanent_contact() {
        let b = bench("max_contacts = 2").await;
        b.svc
            .usrloc()
            .add("location", "a", "sip:a@10.0.0.9", None, None)
            .expect("table");
        let (_, reply) = b.save(b.register("a", "c1", 1, &["<sip:a@10.0.0.1>"], Some(600)));
        assert_eq!(reply.status(), Some(200));
        let (_, reply) = b.save(b.register("a", "c2", 1, &["<sip:a@10.0.0.2>"], Some(600)));
        assert_eq!(reply.status(), Some(503));
        // Naming the permanent one adds nothing: still within the limit.
        let (_, reply) = b.save(b.register("a", "c1", 2, &["<sip:a@10.0.0.9>"], Some(600)));
        assert_eq!(reply.status(), Some(200));
    }

    #[test]
    fn a_tcp_contact_another_router_owns_is_reached_through_that_router() {
        let now = Instant::now();
        let binding = |server_id: u32, socket: Option<&str>, path: Option<&str>| ContactBinding {
            contact: "sip:alice@192.0.2.7:40000;transport=tcp".into(),
            q: 1.0,
            expires_at: Some(now + std::time::Duration::from_secs(60)),
            call_id: "c".into(),
            cseq: 1,
            received: None,
            path: path.map(str::to_owned),
            params: None,
            updated: now,
            server_id,
            socket: socket.map(str::to_owned),
            nat: false,
        };
        let owned_by_1 = binding(1, Some("tcp:192.0.2.1:5060"), None);
        // Router 2 routes through router 1's socket, as a loose route.
        assert_eq!(
            next_hop(&owned_by_1, 2),
            (
                Some("sip:192.0.2.1:5060;transport=tcp;lr".to_owned()),
                Some("<sip:192.0.2.1:5060;transport=tcp;lr>".to_owned())
            )
        );
        // Router 1 itself sends on its connection.
        assert_eq!(next_hop(&owned_by_1, 1), (None, None));
        // A UDP contact any router reaches; a Path goes first; an unknown socket is no route.
        assert_eq!(
            next_hop(&binding(1, Some("udp:192.0.2.1:5060"), None), 2),
            (None, None)
        );
        assert_eq!(
            next_hop(
                &binding(1, Some("tcp:192.0.2.1:5060"), Some("<sip:edge;lr>")),
                2
            ),
            (
                Some("sip:edge;lr".to_owned()),
                Some("<sip:edge;lr>".to_owned())
            )
        );
        assert_eq!(next_hop(&binding(1, None, None), 2), (None, None));
        assert_eq!(
            owner_route("tcp:[::1]:5070").as_deref(),
            Some("sip:[::1]:5070;transport=tcp;lr")
        );
    }
}
