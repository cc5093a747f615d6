//! Case files: a plugin's decisions, written down and checked (`wisp test`).
//!
//! A case is one TOML file (`plugins/<name>/cases/*.toml`):
//!
//! ```toml
//! # What this case shows (printed when it fails).
//! description = "INVITE to a registered user goes to its contact"
//!
//! # [plugin.params] of the plugin under test.
//! [params]
//! max_len = 8192
//!
//! # Its [plugin.capabilities] (paths relative to the case file's folder).
//! [capabilities]
//! exec = ["lcr.sh"]
//!
//! # Manifest excerpt over the kit's defaults: listen on udp: and
//! # tcp:192.0.2.1:5060 (virtual), aliases ["example.com"], usrloc tables
//! # "location" and "aliases". Any manifest table may be given.
//! [manifest.server]
//! aliases = ["example.com", "sip.example.com"]
//!
//! # The store before the first message: a usrloc table is AOR -> contacts
//! # (AORs as `wisp ctl ul show` prints them); subscribers with their groups.
//! [store.location]
//! "bob" = ["sip:bob@192.0.2.20:5060"]
//! [[store.subscribers]]
//! user = "alice"
//! domain = "example.com"
//! password = "secret"
//! groups = ["ld"]
//!
//! # The messages, in order: from where (transport:ip:port), the raw SIP
//! # (lines end in CRLF on the wire; Content-Length is added when absent).
//! [[step]]
//! from = "udp:192.0.2.10:5060"
//! sip = """
//! INVITE sip:bob@example.com SIP/2.0
//! Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1
//! ...
//! """
//! # Everything the router sends because of it, in order: to where, and the
//! # reply's status or the request's method and Request-URI; `headers` are
//! # compared whole (the first of that name), `absent` must not be there.
//! expect = [
//!   { to = "udp:192.0.2.10:5060", status = 100 },
//!   { to = "udp:192.0.2.20:5060", method = "INVITE", ruri = "sip:bob@192.0.2.20:5060",
//!     headers = { "Record-Route" = "<sip:192.0.2.1;lr>" } },
//! ]
//!
//! # A step may move the virtual clock instead: timers due fire (and the
//! # failure routes they make due run).
//! [[step]]
//! advance = "32s"
//! expect = [{ to = "udp:192.0.2.10:5060", status = 408 }]
//!
//! # The store after the last step: the tables named, whole.
//! [store_after.location]
//! "bob" = ["sip:bob@192.0.2.20:5060"]
//! ```
//!
//! `expect = []` says nothing is sent (a drop). The check is exact: a
//! message more or less than expected, in another order, to another place,
//! fails the case with a diff that names the step and the field.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use serde::Deserialize;

use super::harness::{Harness, Sent, manifest_for};
use crate::config::ListenAddr;

/// The case format in short, for `wisp test --help`.
pub const CASE_FORMAT: &str = r#"Case file format (TOML, one scenario a file):
  description = "what this case shows"
  [params]                      the plugin's [plugin.params]
  [capabilities]                its [plugin.capabilities] (exec = ["prog.sh"])
  [manifest.server]             manifest tables over the defaults: listen udp: and
  aliases = ["example.com"]     tcp:192.0.2.1:5060 (virtual), aliases example.com
  [store.location]              user location before the first step: AOR = contacts
  "bob" = ["sip:bob@192.0.2.20:5060"]
  [[store.subscribers]]         user, domain, password, groups
  [[step]]                      a message in: from = "udp:IP:PORT", sip = """..."""
  [[step]]                      or the answer of from to the last request it got:
                                reply = { status = 486, reason = "Busy Here" }
  [[step]]                      or time passing: advance = "32s" (timers fire)
  expect = [ { to = "udp:IP:PORT", status = 100 },
             { to = "udp:IP:PORT", method = "INVITE", ruri = "sip:...",
               headers = { "Record-Route" = "<...>" }, absent = ["X-Foo"] } ]
                                everything the router sends, in order ([] = nothing)
  [store_after.location]        the tables named, whole, after the last step
A decision that differs fails the case with a diff naming the step and the field."#;

/// One case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub params: toml::Table,
    /// `[plugin.capabilities]` of the plugin under test (`exec = [...]`,
    /// paths relative to the case file's folder).
    #[serde(default)]
    pub capabilities: toml::Table,
    #[serde(default)]
    pub manifest: toml::Table,
    #[serde(default)]
    pub store: Store,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub store_after: Option<BTreeMap<String, BTreeMap<String, Contacts>>>,
}

/// The store before the first message.
#[derive(Debug, Default, Deserialize)]
pub struct Store {
    #[serde(default)]
    pub subscribers: Vec<Subscriber>,
    /// usrloc table -> AOR -> contacts.
    #[serde(flatten)]
    pub tables: BTreeMap<String, BTreeMap<String, Contacts>>,
}

/// One contact or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Contacts {
    One(String),
    Many(Vec<String>),
}

impl Contacts {
    fn list(&self) -> Vec<String> {
        match self {
            Contacts::One(c) => vec![c.clone()],
            Contacts::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscriber {
    pub user: String,
    pub domain: String,
    pub password: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A message in, or time passing; and what must come out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// `udp:192.0.2.10:5060`: the transport and the sender.
    pub from: Option<String>,
    /// The listener it arrives on (default: the first of the transport).
    pub to: Option<String>,
    pub sip: Option<String>,
    /// `32s`, `500ms`: move the virtual clock instead.
    pub advance: Option<String>,
    /// `{ status = 486, reason = "Busy Here" }`: `from` answers the last
    /// request the router sent it (its Via, From, To with a tag, Call-ID
    /// and CSeq), instead of a `sip` text.
    pub reply: Option<Reply>,
    #[serde(default)]
    pub expect: Vec<Expect>,
}

/// A reply a step's `from` sends to the last request it got.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub status: u16,
    #[serde(default)]
    pub reason: String,
    /// Extra header lines (`Contact: <sip:...>`).
    #[serde(default)]
    pub headers: Vec<String>,
}

/// The reply `r` to `request` (what the router sent), as on the wire.
fn reply_to(request: &Bytes, r: &Reply) -> anyhow::Result<Bytes> {
    let msg = wisp_sip::Message::parse(request.clone())
        .map_err(|e| anyhow::anyhow!("the request to answer does not parse: {}", e.reason()))?;
    let mut out = format!("SIP/2.0 {} {}\r\n", r.status, r.reason);
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        for v in msg.header_values(name) {
            let _ = write!(out, "{name}: {}\r\n", String::from_utf8_lossy(v));
        }
    }
    let to = header(&msg, "To").unwrap_or_default();
    if to.contains(";tag=") || r.status == 100 {
        let _ = write!(out, "To: {to}\r\n");
    } else {
        let _ = write!(out, "To: {to};tag=case-uas\r\n");
    }
    for h in &r.headers {
        let _ = write!(out, "{h}\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Ok(Bytes::from(out))
}

/// One message the router must send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub to: String,
    pub status: Option<u16>,
    pub reason: Option<String>,
    pub method: Option<String>,
    pub ruri: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub absent: Vec<String>,
}

/// What running one case found.
#[derive(Debug)]
pub struct CaseReport {
    pub file: PathBuf,
    pub description: String,
    /// Empty when the case passed; else one readable block per difference.
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Raw SIP text of a case as it goes on the wire: CRLF line ends, a blank
/// line after the headers, Content-Length when the text has none.
pub fn wire(text: &str) -> Bytes {
    let text = text.trim_start_matches(['\r', '\n']);
    let (head, body) = match text.find("\n\n").or_else(|| text.find("\r\n\r\n")) {
        Some(i) => {
            let (h, b) = text.split_at(i);
            (h, b.trim_start_matches(['\r', '\n']))
        }
        None => (text.trim_end(), ""),
    };
    let mut out = String::new();
    let mut has_length = false;
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let name = line.split(':').next().unwrap_or_default().trim();
        has_length |= name.eq_ignore_ascii_case("Content-Length") || name == "l";
        out.push_str(line);
        out.push_str("\r\n");
    }
    let body = if body.is_empty() {
        String::new()
    } else {
        body.lines().collect::<Vec<_>>().join("\r\n") + "\r\n"
    };
    if !has_length {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Bytes::from(out)
}

/// Parse a `udp:ip:port`.
fn address(s: &str, what: &str) -> anyhow::Result<ListenAddr> {
    s.parse::<ListenAddr>()
        .map_err(|e| anyhow::anyhow!("{what} {s:?}: {e}"))
}

/// The first value of header `name` in `msg` (full or compact name).
fn header(msg: &wisp_sip::Message, name: &str) -> Option<String> {
    msg.header_value(name)
        .map(|v| String::from_utf8_lossy(v).trim().to_owned())
}

/// One line for a message sent: `-> udp:192.0.2.10:5060  SIP/2.0 200 OK`.
pub fn describe(s: &Sent) -> String {
    format!("-> {:<24} {}", s.to(), s.start_line())
}

fn describe_expect(e: &Expect) -> String {
    let what = match (e.status, &e.method) {
        (Some(code), _) => format!(
            "SIP/2.0 {code}{}",
            e.reason
                .as_ref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default()
        ),
        (None, Some(m)) => format!(
            "{m} {}",
            e.ruri.clone().unwrap_or_else(|| "(any R-URI)".into())
        ),
        (None, None) => "(any message)".into(),
    };
    format!("-> {:<24} {what}", e.to)
}

/// What differs between `sent` and `e`; empty when it matches.
fn mismatches(e: &Expect, sent: &Sent) -> Vec<String> {
    let mut out = Vec::new();
    if !e.to.eq_ignore_ascii_case(&sent.to()) {
        out.push(format!("sent to {}, expected {}", sent.to(), e.to));
    }
    let msg = match wisp_sip::Message::parse(sent.data.clone()) {
        Ok(m) => m,
        Err(err) => {
            out.push(format!(
                "the router sent an unparsable message: {}",
                err.reason()
            ));
            return out;
        }
    };
    match (e.status, msg.status()) {
        (Some(want), Some(got)) if want != got => {
            out.push(format!("status {got}, expected {want}"))
        }
        (Some(want), None) => out.push(format!("a request, expected a {want} reply")),
        _ => {}
    }
    if let Some(want) = &e.reason {
        let line = sent.start_line();
        let got = line.splitn(3, ' ').nth(2).unwrap_or_default();
        if got != want {
            out.push(format!("reason {got:?}, expected {want:?}"));
        }
    }
    if let Some(want) = &e.method {
        match msg.method() {
            Some(m) if m.as_str() == want => {}
            Some(m) => out.push(format!("method {}, expected {want}", m.as_str())),
            None => out.push(format!("a reply, expected a {want} request")),
        }
    }
    if let Some(want) = &e.ruri {
        let line = sent.start_line();
        let got = line.split(' ').nth(1).unwrap_or_default();
        if msg.is_request() && got != want {
            out.push(format!("Request-URI {got}, expected {want}"));
        }
    }
    for (name, want) in &e.headers {
        match header(&msg, name) {
            Some(got) if &got == want => {}
            Some(got) => out.push(format!("{name}: {got:?}, expected {want:?}")),
            None => out.push(format!("no {name} header, expected {want:?}")),
        }
    }
    for name in &e.absent {
        if let Some(got) = header(&msg, name) {
            out.push(format!("{name}: {got:?}, expected no {name} header"));
        }
    }
    out
}

/// Compare a step's messages with its expectations: readable blocks, empty
/// when all match.
fn compare(step: &str, expect: &[Expect], sent: &[Sent]) -> Option<String> {
    let mut problems = Vec::new();
    for (i, e) in expect.iter().enumerate() {
        match sent.get(i) {
            Some(s) => {
                for m in mismatches(e, s) {
                    problems.push(format!("message {}: {m}", i + 1));
                }
            }
            None => problems.push(format!("message {}: not sent", i + 1)),
        }
    }
    if sent.len() > expect.len() {
        problems.push(format!(
            "{} message(s) more than expected",
            sent.len() - expect.len()
        ));
    }
    if problems.is_empty() {
        return None;
    }
    let mut out = format!("{step}\n");
    for p in &problems {
        let _ = writeln!(out, "    {p}");
    }
    let _ = writeln!(out, "  expected:");
    if expect.is_empty() {
        let _ = writeln!(out, "    (nothing sent)");
    }
    for e in expect {
        let _ = writeln!(out, "    {}", describe_expect(e));
    }
    let _ = writeln!(out, "  sent:");
    if sent.is_empty() {
        let _ = writeln!(out, "    (nothing)");
    }
    for s in sent {
        let _ = writeln!(out, "    {}", describe(s));
    }
    Some(out)
}

/// Put `store` into the router's subscribers and user location.
pub fn seed_store(harness: &Harness, store: &Store) -> anyhow::Result<()> {
    let router = harness.router();
    for s in &store.subscribers {
        router
            .subscribers()
            .add(&s.user, &s.domain, &s.password)
            .with_context(|| format!("subscriber {}@{}", s.user, s.domain))?;
        for g in &s.groups {
            router
                .subscribers()
                .grant(&s.user, &s.domain, g)
                .with_context(|| format!("group {g} of {}@{}", s.user, s.domain))?;
        }
    }
    for (table, aors) in &store.tables {
        for (aor, contacts) in aors {
            for c in contacts.list() {
                router
                    .services()
                    .usrloc()
                    .add(table, aor, &c, Some(3600), None)
                    .with_context(|| format!("store.{table}"))?;
            }
        }
    }
    Ok(())
}

/// Parse `32s`, `500ms`, `2m`.
fn duration(s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s).with_context(|| format!("advance {s:?}"))
}

/// Run one case file against `plugin`; compiled plugins are cached in
/// `cache`. `Err` is a case that cannot run (bad file, plugin that does
/// not load); a decision that differs is a failure in the report.
pub async fn run_case_file(plugin: &Path, file: &Path, cache: &Path) -> anyhow::Result<CaseReport> {
    let started = Instant::now();
    let text = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
    let case: Case = toml::from_str(&text).with_context(|| file.display().to_string())?;
    let manifest = manifest_for(
        plugin,
        &case.params,
        &case.capabilities,
        &case.manifest,
        cache,
        file,
    )?;
    let harness = Harness::start(manifest)
        .await
        .with_context(|| format!("{}: loading {}", file.display(), plugin.display()))?;
    seed_store(&harness, &case.store)?;
    let router = harness.router();
    let mut failures = Vec::new();
    // The last request the router sent to each address: what a `reply` answers.
    let mut last_request: BTreeMap<String, Bytes> = BTreeMap::new();
    for (i, step) in case.steps.iter().enumerate() {
        let n = i + 1;
        let (label, sent) = match (&step.sip, &step.advance, &step.reply) {
            (None, None, Some(reply)) => {
                let from = step
                    .from
                    .as_deref()
                    .with_context(|| format!("step {n}: `reply` needs `from`"))?;
                let from_addr = address(from, &format!("step {n}: from"))?;
                let key = format!(
                    "{}:{}",
                    from_addr.proto.to_string().to_lowercase(),
                    from_addr.addr
                );
                let request = last_request.get(&key).with_context(|| {
                    format!("step {n}: the router sent no request to {key} to reply to")
                })?;
                let data = reply_to(request, reply).with_context(|| format!("step {n}"))?;
                let label = format!("step {n} ({} {} from {key})", reply.status, reply.reason);
                (
                    label,
                    harness
                        .receive(from_addr.proto, from_addr.addr, None, data)
                        .await?,
                )
            }
            (Some(sip), None, None) => {
                let from = step
                    .from
                    .as_deref()
                    .with_context(|| format!("step {n}: `sip` needs `from`"))?;
                let from = address(from, &format!("step {n}: from"))?;
                let to = match &step.to {
                    Some(t) => Some(address(t, &format!("step {n}: to"))?.addr),
                    None => None,
                };
                let data = wire(sip);
                let first = String::from_utf8_lossy(&data)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let label = format!(
                    "step {n} ({first} from {}:{})",
                    from.proto.to_string().to_lowercase(),
                    from.addr
                );
                (
                    label,
                    harness.receive(from.proto, from.addr, to, data).await?,
                )
            }
            (None, Some(adv), None) => (
                format!("step {n} (advance {adv})"),
                harness.advance(duration(adv)?).await,
            ),
            _ => anyhow::bail!(
                "step {n}: give one of `sip` (with `from`), `reply` (with `from`) or `advance`"
            ),
        };
        for s in &sent {
            if !s.start_line().starts_with("SIP/2.0 ") {
                last_request.insert(s.to(), s.data.clone());
            }
        }
        if let Some(diff) = compare(&label, &step.expect, &sent) {
            failures.push(diff);
        }
    }
    if let Some(after) = &case.store_after {
        for (table, want) in after {
            let got: BTreeMap<String, Vec<String>> = router
                .services()
                .usrloc()
                .snapshot(table, None, Instant::now())
                .with_context(|| format!("store_after.{table}"))?
                .into_iter()
                .map(|(aor, b)| {
                    let mut v: Vec<String> = b.into_iter().map(|b| b.contact).collect();
                    v.sort();
                    (aor, v)
                })
                .collect();
            let want: BTreeMap<String, Vec<String>> = want
                .iter()
                .map(|(aor, c)| {
                    let mut v = c.list();
                    v.sort();
                    (aor.clone(), v)
                })
                .collect();
            if got != want {
                let mut out = format!("store after, table {table}:\n");
                for (aor, c) in &want {
                    if got.get(aor) != Some(c) {
                        let _ = writeln!(out, "  - {aor} = {c:?}");
                    }
                }
                for (aor, c) in &got {
                    if want.get(aor) != Some(c) {
                        let _ = writeln!(out, "  + {aor} = {c:?}");
                    }
                }
                failures.push(out);
            }
        }
    }
    Ok(CaseReport {
        file: file.to_owned(),
        description: case.description,
        failures,
        elapsed: started.elapsed(),
    })
}

/// The case files named: files as they are, folders' `*.toml` in name order.
pub fn case_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| p.display().to_string())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Run every case of `paths` (files or folders of `*.toml`) against
/// `plugin`: the library form of `wisp test`, for a plugin's own tests.
pub fn run_cases(plugin: &Path, paths: &[PathBuf]) -> anyhow::Result<Vec<CaseReport>> {
    let files = case_files(paths)?;
    let (cache, _guard) = super::harness::compile_cache()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("the kit's runtime")?;
    runtime.block_on(async {
        let mut reports = Vec::new();
        for f in &files {
            reports.push(run_case_file(plugin, f, &cache).await?);
        }
        Ok::<_, anyhow::Error>(reports)
    })
}

/// The text `wisp test` prints for `reports`: a line per case, the diffs
/// of those that failed.
pub fn render(reports: &[CaseReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let verdict = if r.passed() { "ok  " } else { "FAIL" };
        let _ = writeln!(
            out,
            "{verdict} {} ({} ms){}",
            r.file.display(),
            r.elapsed.as_millis(),
            if r.description.is_empty() {
                String::new()
            } else {
                format!(": {}", r.description)
            }
        );
        for f in &r.failures {
            for line in f.lines() {
                let _ = writeln!(out, "     {line}");
            }
        }
    }
    let failed = reports.iter().filter(|r| !r.passed()).count();
    let _ = writeln!(
        out,
        "{} case(s), {} passed, {failed} failed",
        reports.len(),
        reports.len() - failed
    );
    out
}
