//! `wisp ctl stats [--json] [--watch N]` — the router's counters and gauges
//! (like `kamcmd stats.get_statistics all` / `serctl moni`), and the
//! [`Report`] the Prometheus endpoint ([`super::metrics`]) renders too.
//!
//! ```text
//! $ wisp ctl stats
//! requests_received.OPTIONS        12
//! replies_sent.2xx                 12
//! transactions_active               0
//! usrloc.location.contacts          3
//! plugin.default.3f9a1c0b77e2.calls 15
//! ...
//! ```
//!
//! `--watch N` is the client's: it asks again every N seconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::Args;
use serde::Serialize;

use crate::router::Router;
use crate::stats::{self, Counter, HistogramSnapshot};

/// `wisp ctl stats`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct StatsArgs {
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Ask again every N seconds until interrupted (done by the client).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub watch: Option<u64>,
}

/// Everything counted and measured, read now.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// By method (`other` for unknown ones), retransmissions included.
    pub requests_received: BTreeMap<&'static str, u64>,
    /// Replies Wisp made and sent, by class (`1xx`..`6xx`).
    pub replies_sent: BTreeMap<&'static str, u64>,
    /// Replies from downstream passed up, by class.
    pub replies_relayed: BTreeMap<&'static str, u64>,
    /// Replies received from downstream, by class (retransmissions included).
    pub replies_received: BTreeMap<&'static str, u64>,
    pub requests_dropped: u64,
    pub bad_messages: u64,
    pub transactions_created: u64,
    pub transactions_active: u64,
    /// Answered, absorbing retransmissions until their timers end.
    pub transactions_waiting: u64,
    pub retransmissions_absorbed: u64,
    pub registers_accepted: u64,
    pub registers_refused: u64,
    pub usrloc: Vec<TableCounts>,
    pub plugin_reloads: u64,
    pub plugin_reloads_refused: u64,
    pub plugins: Vec<PluginBuild>,
    pub store_commits: u64,
    pub store_commit_failures: u64,
    pub store_commit_latency: Latency,
    pub store_writer_queue: u64,
    /// Whether the user location database answered its last call; `None`
    /// in memory-only mode.
    pub store_up: Option<bool>,
    pub dns_lookups: u64,
    pub dns_failures: u64,
    pub acc_records: u64,
    pub acc_dropped: u64,
    pub acc_stored: u64,
    pub acc_db_failures: u64,
    pub keepalive_sent: u64,
    pub keepalive_answered: u64,
    pub keepalive_missed: u64,
    pub keepalive_removed: u64,
}

/// A user location table's size.
#[derive(Debug, Clone, Serialize)]
pub struct TableCounts {
    pub table: String,
    pub aors: u64,
    pub contacts: u64,
}

/// One build of a plugin (the serving one, and retired ones still alive).
#[derive(Debug, Clone, Serialize)]
pub struct PluginBuild {
    pub plugin: String,
    pub build: String,
    pub serving: bool,
    pub calls: u64,
    /// Traps of any kind, deadline and memory included.
    pub traps: u64,
    pub deadline_exceeded: u64,
    pub memory_exceeded: u64,
    pub call_latency: Latency,
}

/// A histogram: JSON shows count and sum; the buckets are for Prometheus.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub sum_seconds: f64,
    #[serde(skip)]
    pub histogram: HistogramSnapshot,
}

impl From<HistogramSnapshot> for Latency {
    fn from(h: HistogramSnapshot) -> Self {
        Latency {
            count: h.count,
            sum_seconds: h.sum_seconds,
            histogram: h,
        }
    }
}

/// Read every counter and gauge of `router`.
pub fn report(router: &Router) -> Report {
    let s = stats::snapshot();
    let usrloc = router.services().usrloc();
    let plugins = router
        .plugins()
        .slots()
        .iter()
        .flat_map(|slot| {
            slot.versions().into_iter().map(|v| PluginBuild {
                plugin: slot.name().to_owned(),
                build: v.hash,
                serving: v.serving,
                calls: v.stats.calls,
                traps: v.stats.traps,
                deadline_exceeded: v.stats.deadline,
                memory_exceeded: v.stats.memory,
                call_latency: v.stats.latency.into(),
            })
        })
        .collect();
    Report {
        requests_received: s.requests.iter().copied().collect(),
        replies_sent: s.replies_local.iter().copied().collect(),
        replies_relayed: s.replies_relayed.iter().copied().collect(),
        replies_received: s.replies_received.iter().copied().collect(),
        requests_dropped: s.get(Counter::RequestsDropped),
        bad_messages: s.get(Counter::BadMessages),
        transactions_created: s.get(Counter::TransactionsCreated),
        transactions_active: router.host().tm.len() as u64,
        transactions_waiting: s
            .get(Counter::TransactionsAnswered)
            .saturating_sub(s.get(Counter::TransactionsAnsweredEnded)),
        retransmissions_absorbed: s.get(Counter::RetransmissionsAbsorbed),
        registers_accepted: s.get(Counter::RegistersAccepted),
        registers_refused: s.get(Counter::RegistersRefused),
        usrloc: usrloc
            .counts()
            .into_iter()
            .map(|(table, aors, contacts)| TableCounts {
                table,
                aors: aors as u64,
                contacts: contacts as u64,
            })
            .collect(),
        plugin_reloads: s.get(Counter::ReloadsDone),
        plugin_reloads_refused: s.get(Counter::ReloadsRefused),
        plugins,
        store_commits: s.get(Counter::StoreCommits),
        store_commit_failures: s.get(Counter::StoreCommitFailures),
        store_commit_latency: s.commit_latency.clone().into(),
        store_writer_queue: usrloc.writer_queue_len() as u64,
        store_up: usrloc.store_health().map(|h| h.is_up()),
        dns_lookups: s.get(Counter::DnsLookups),
        dns_failures: s.get(Counter::DnsFailures),
        acc_records: s.get(Counter::AccRecords),
        acc_dropped: s.get(Counter::AccDropped),
        acc_stored: s.get(Counter::AccStored),
        acc_db_failures: s.get(Counter::AccDbFailures),
        keepalive_sent: s.get(Counter::KeepaliveSent),
        keepalive_answered: s.get(Counter::KeepaliveAnswered),
        keepalive_missed: s.get(Counter::KeepaliveMissed),
        keepalive_removed: s.get(Counter::KeepaliveRemoved),
    }
}

/// The operator's table: one `name value` line per number; methods and
/// reply classes never seen are left out.
pub fn table(r: &Report) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: String, v: String| rows.push((k, v));
    for (what, map) in [
        ("requests_received", &r.requests_received),
        ("replies_sent", &r.replies_sent),
        ("replies_relayed", &r.replies_relayed),
        ("replies_received", &r.replies_received),
    ] {
        let total: u64 = map.values().sum();
        row(what.to_owned(), total.to_string());
        for (k, v) in map.iter().filter(|(_, v)| **v > 0) {
            row(format!("{what}.{k}"), v.to_string());
        }
    }
    for (k, v) in [
        ("requests_dropped", r.requests_dropped),
        ("bad_messages", r.bad_messages),
        ("transactions_created", r.transactions_created),
        ("transactions_active", r.transactions_active),
        ("transactions_waiting", r.transactions_waiting),
        ("retransmissions_absorbed", r.retransmissions_absorbed),
        ("registers_accepted", r.registers_accepted),
        ("registers_refused", r.registers_refused),
    ] {
        row(k.to_owned(), v.to_string());
    }
    for t in &r.usrloc {
        row(format!("usrloc.{}.aors", t.table), t.aors.to_string());
        row(
            format!("usrloc.{}.contacts", t.table),
            t.contacts.to_string(),
        );
    }
    row("plugin_reloads".into(), r.plugin_reloads.to_string());
    row(
        "plugin_reloads_refused".into(),
        r.plugin_reloads_refused.to_string(),
    );
    for p in &r.plugins {
        let at = format!("plugin.{}.{}", p.plugin, p.build);
        row(format!("{at}.calls"), p.calls.to_string());
        row(format!("{at}.traps"), p.traps.to_string());
        row(
            format!("{at}.deadline_exceeded"),
            p.deadline_exceeded.to_string(),
        );
        row(
            format!("{at}.memory_exceeded"),
            p.memory_exceeded.to_string(),
        );
        row(format!("{at}.call_mean_us"), mean_us(&p.call_latency));
    }
    for (k, v) in [
        ("store_commits", r.store_commits),
        ("store_commit_failures", r.store_commit_failures),
        ("store_writer_queue", r.store_writer_queue),
    ] {
        row(k.to_owned(), v.to_string());
    }
    if let Some(up) = r.store_up {
        row("store_up".into(), u8::from(up).to_string());
    }
    row(
        "store_commit_mean_us".into(),
        mean_us(&r.store_commit_latency),
    );
    row("dns_lookups".into(), r.dns_lookups.to_string());
    row("dns_failures".into(), r.dns_failures.to_string());
    row("acc_records".into(), r.acc_records.to_string());
    row("acc_dropped".into(), r.acc_dropped.to_string());
    row("acc_stored".into(), r.acc_stored.to_string());
    row("acc_db_failures".into(), r.acc_db_failures.to_string());
    row("keepalive_sent".into(), r.keepalive_sent.to_string());
    row(
        "keepalive_answered".into(),
        r.keepalive_answered.to_string(),
    );
    row("keepalive_missed".into(), r.keepalive_missed.to_string());
    row("keepalive_removed".into(), r.keepalive_removed.to_string());
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}  {v}");
    }
    out
}

fn mean_us(l: &Latency) -> String {
    if l.count == 0 {
        return "-".into();
    }
    format!("{:.1}", l.sum_seconds * 1e6 / l.count as f64)
}

/// Carry out `wisp ctl stats` (`--watch` is the client's loop).
pub fn execute(router: &Router, args: &StatsArgs) -> Result<String, super::CtlError> {
    let r = report(router);
    if args.json {
        let mut text = serde_json::to_string(&r)
            .map_err(|e| super::CtlError::Failed(format!("stats: {e}")))?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(table(&r))
    }
}
