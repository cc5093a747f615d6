//! The Prometheus endpoint (`[metrics] listen`): `GET /metrics` answers the
//! [`Report`] of `wisp ctl stats` in the Prometheus text format (encoded by
//! `prometheus-client`); anything else gets 404 or 405.
//!
//! The responder is deliberately tiny, since it may face the internet: one
//! request per connection (`Connection: close`), a request head of at most
//! [`MAX_HEAD`] bytes that must arrive within [`READ_DEADLINE`], at most
//! [`MAX_CONNECTIONS`] connections at once (more wait in the kernel's
//! backlog), no body read, no keep-alive.
//!
//! Names (Kamailio's statistic in brackets):
//!
//! | metric | Kamailio |
//! |---|---|
//! | `wisp_requests_received_total{method}` | `core:rcv_requests_<method>` |
//! | `wisp_replies_sent_total{class}` | `sl:<class>_replies`, `tm:<class>_replies` (local) |
//! | `wisp_replies_relayed_total{class}` | `core:fwd_replies` by class |
//! | `wisp_replies_received_total{class}` | `core:rcv_replies_<class>` |
//! | `wisp_requests_dropped_total` | `core:drop_requests` |
//! | `wisp_bad_messages_total` | `core:err_requests` + `err_replies` |
//! | `wisp_transactions_created_total` | `tm:created` |
//! | `wisp_transactions_active` | `tm:current` |
//! | `wisp_transactions_waiting` | `tm:waiting` |
//! | `wisp_retransmissions_absorbed_total` | `tm:rpl_absorbed`-like (requests) |
//! | `wisp_registers_accepted_total`, `..._refused_total` | `registrar:accepted_regs`, `rejected_regs` |
//! | `wisp_usrloc_aors{table}`, `wisp_usrloc_contacts{table}` | `usrloc:location-users`, `-contacts` |
//! | `wisp_plugin_calls_total{plugin,build}` and traps, deadline, memory | — |
//! | `wisp_plugin_call_duration_seconds{plugin,build}` | — |
//! | `wisp_plugin_reloads_total`, `..._refused_total` | — |
//! | `wisp_store_commits_total`, `..._failures_total`, `wisp_store_commit_duration_seconds` | — |
//! | `wisp_store_writer_queue` | — |
//! | `wisp_store_up` (1 up, 0 down; absent in memory-only mode) | — |
//! | `wisp_dns_lookups_total`, `wisp_dns_failures_total` | `dns:failed_dns_request` |
//! | `wisp_acc_records_total`, `wisp_acc_dropped_total` | — |
//! | `wisp_acc_stored_total`, `wisp_acc_db_failures_total` | — |
//! | `wisp_keepalive_sent_total`, `..._answered_total`, `..._missed_total`, `..._removed_total` | — |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::stats::{Latency, Report, report};
use crate::router::Router;

/// Most bytes of a request head (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// The whole request head must arrive within this, and the answer leave.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// The report in the Prometheus text format (version 0.0.4).
pub fn render(r: &Report) -> String {
    let mut registry = Registry::with_prefix("wisp");
    registry.register_collector(Box::new(ReportCollector(r.clone())));
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug
    // in our labels, and leaves what was written so far.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::warn!("metrics: encoding failed: {e}");
    }
    out
}

#[derive(Debug)]
struct ReportCollector(Report);

type Enc<'a> = DescriptorEncoder<'a>;

fn counter(e: &mut Enc, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn gauge(e: &mut Enc, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v as i64).encode(m)
}

/// A counter with one label, a value per label value.
fn counter_by<'a>(
    e: &mut Enc,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (l, v) in values {
        let labels = [(label, l)];
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram(m: &mut prometheus_client::encoding::MetricEncoder, l: &Latency) -> std::fmt::Result {
    let h = &l.histogram;
    m.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)
}

impl Collector for ReportCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let r = &self.0;
        let e = &mut e;
        counter_by(
            e,
            "requests_received",
            "SIP requests received, by method (retransmissions included).",
            "method",
            r.requests_received.iter().map(|(k, v)| (*k, *v)),
        )?;
        counter_by(
            e,
            "replies_sent",
            "Replies Wisp made and sent, by class.",
            "class",
            r.replies_sent.iter().map(|(k, v)| (*k, *v)),
        )?;
        counter_by(
            e,
            "replies_relayed",
            "Replies from downstream relayed upstream, by class.",
            "class",
            r.replies_relayed.iter().map(|(k, v)| (*k, *v)),
        )?;
        counter_by(
            e,
            "replies_received",
            "Replies received from downstream, by class (retransmissions included).",
            "class",
            r.replies_received.iter().map(|(k, v)| (*k, *v)),
        )?;
        counter(
            e,
            "requests_dropped",
            "Requests a route ended without answering or relaying.",
            r.requests_dropped,
        )?;
        counter(
            e,
            "bad_messages",
            "Messages that did not parse or failed the sanity check.",
            r.bad_messages,
        )?;
        counter(
            e,
            "transactions_created",
            "Transactions created.",
            r.transactions_created,
        )?;
        gauge(
            e,
            "transactions_active",
            "Transactions alive now.",
            r.transactions_active,
        )?;
        gauge(
            e,
            "transactions_waiting",
            "Answered transactions absorbing retransmissions until their timers end.",
            r.transactions_waiting,
        )?;
        counter(
            e,
            "retransmissions_absorbed",
            "Retransmitted requests their transaction absorbed.",
            r.retransmissions_absorbed,
        )?;
        counter(
            e,
            "registers_accepted",
            "REGISTERs saved (200 OK).",
            r.registers_accepted,
        )?;
        counter(
            e,
            "registers_refused",
            "REGISTERs save refused (4xx/5xx).",
            r.registers_refused,
        )?;
        for (name, help, pick) in [
            (
                "usrloc_aors",
                "Addresses of record in a user location table.",
                (|t: &super::stats::TableCounts| t.aors) as fn(&super::stats::TableCounts) -> u64,
            ),
            (
                "usrloc_contacts",
                "Contacts in a user location table.",
                |t: &super::stats::TableCounts| t.contacts,
            ),
        ] {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for t in &r.usrloc {
                let labels = [("table", t.table.as_str())];
                ConstGauge::new(pick(t) as i64).encode(m.encode_family(&labels)?)?;
            }
        }
        type PickPlugin = fn(&super::stats::PluginBuild) -> u64;
        for (name, help, pick) in [
            (
                "plugin_calls",
                "Calls into a plugin build.",
                (|p: &super::stats::PluginBuild| p.calls) as PickPlugin,
            ),
            (
                "plugin_traps",
                "Plugin calls that trapped (deadline and memory included).",
                |p| p.traps,
            ),
            (
                "plugin_deadline_exceeded",
                "Plugin calls cut at their deadline.",
                |p| p.deadline_exceeded,
            ),
            (
                "plugin_memory_exceeded",
                "Plugin calls that outgrew their memory cap.",
                |p| p.memory_exceeded,
            ),
        ] {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for p in &r.plugins {
                let labels = [("plugin", p.plugin.as_str()), ("build", p.build.as_str())];
                ConstCounter::new(pick(p)).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "plugin_call_duration_seconds",
                "Time of a plugin call, from instance checkout to its return.",
                None,
                MetricType::Histogram,
            )?;
            for p in &r.plugins {
                let labels = [("plugin", p.plugin.as_str()), ("build", p.build.as_str())];
                histogram(&mut m.encode_family(&labels)?, &p.call_latency)?;
            }
        }
        counter(
            e,
            "plugin_reloads",
            "Plugin builds swapped in by a reload.",
            r.plugin_reloads,
        )?;
        counter(
            e,
            "plugin_reloads_refused",
            "Plugin builds a reload refused.",
            r.plugin_reloads_refused,
        )?;
        counter(
            e,
            "store_commits",
            "User location database transactions committed.",
            r.store_commits,
        )?;
        counter(
            e,
            "store_commit_failures",
            "User location database transactions that failed.",
            r.store_commit_failures,
        )?;
        {
            let mut m = e.encode_descriptor(
                "store_commit_duration_seconds",
                "Time of a user location database commit.",
                None,
                MetricType::Histogram,
            )?;
            histogram(&mut m, &r.store_commit_latency)?;
        }
        gauge(
            e,
            "store_writer_queue",
            "Changes waiting for the database writer.",
            r.store_writer_queue,
        )?;
        if let Some(up) = r.store_up {
            gauge(
                e,
                "store_up",
                "Whether the user location database answered its last call (1) or not (0).",
                u64::from(up),
            )?;
        }
        counter(
            e,
            "dns_lookups",
            "DNS resolutions of a relay target (RFC 3263).",
            r.dns_lookups,
        )?;
        counter(
            e,
            "dns_failures",
            "DNS resolutions that failed or timed out.",
            r.dns_failures,
        )?;
        counter(
            e,
            "acc_records",
            "Accounting records queued for the log.",
            r.acc_records,
        )?;
        counter(
            e,
            "acc_dropped",
            "Accounting records left out: their queue was full.",
            r.acc_dropped,
        )?;
        counter(
            e,
            "acc_stored",
            "Accounting records written to the database's acc table.",
            r.acc_stored,
        )?;
        counter(
            e,
            "acc_db_failures",
            "Accounting records the database refused (down): in the log only.",
            r.acc_db_failures,
        )?;
        counter(
            e,
            "keepalive_sent",
            "Keepalives sent to registered contacts behind NAT.",
            r.keepalive_sent,
        )?;
        counter(
            e,
            "keepalive_answered",
            "Keepalive requests answered (any status).",
            r.keepalive_answered,
        )?;
        counter(
            e,
            "keepalive_missed",
            "Keepalives still unanswered when their round ended.",
            r.keepalive_missed,
        )?;
        counter(
            e,
            "keepalive_removed",
            "Bindings removed after keepalive_max_failures misses in a row.",
            r.keepalive_removed,
        )?;
        Ok(())
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq)]
pub enum Ask {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Judge a request head (everything before the blank line).
pub fn ask(head: &[u8]) -> Ask {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ask::BadRequest;
    };
    if !version.starts_with(b"HTTP/1.") {
        return Ask::BadRequest;
    }
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => Ask::Metrics,
        (b"GET" | b"HEAD", _) => Ask::NotFound,
        _ => Ask::MethodNotAllowed,
    }
}

/// Bind `addr` and serve `GET /metrics` on the current runtime. The bound
/// address is returned (port 0 picks one).
pub async fn serve(router: Arc<Router>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            // A free slot first: past the limit, connections wait in the backlog.
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let router = router.clone();
                    tokio::spawn(async move {
                        let _ =
                            tokio::time::timeout(READ_DEADLINE, connection(router, stream)).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(bound)
}

async fn connection(router: Arc<Router>, mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let ask = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break ask(&head[..end]);
        }
        if head.len() > MAX_HEAD {
            break Ask::BadRequest;
        }
    };
    let head_only = head.starts_with(b"HEAD ");
    let (status, body, content_type) = match ask {
        Ask::Metrics => (
            "200 OK",
            // Counting the contacts walks the user location tables: off
            // the runtime's workers, which also run the receive loops.
            tokio::task::spawn_blocking(move || render(&report(&router)))
                .await
                .map_err(std::io::Error::other)?,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        ),
        Ask::NotFound => ("404 Not Found", "not found\n".into(), "text/plain"),
        Ask::MethodNotAllowed => ("405 Method Not Allowed", "only GET\n".into(), "text/plain"),
        Ask::BadRequest => ("400 Bad Request", "bad request\n".into(), "text/plain"),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if matches!(ask, Ask::MethodNotAllowed) {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if !head_only {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_of_metrics_is_served() {
        assert_eq!(ask(b"GET /metrics HTTP/1.1\r\nHost: x"), Ask::Metrics);
        assert_eq!(ask(b"GET /metrics?x=1 HTTP/1.0"), Ask::Metrics);
        assert_eq!(ask(b"HEAD /metrics HTTP/1.1"), Ask::Metrics);
        assert_eq!(ask(b"GET / HTTP/1.1"), Ask::NotFound);
        assert_eq!(ask(b"GET /metricsx HTTP/1.1"), Ask::NotFound);
        assert_eq!(ask(b"POST /metrics HTTP/1.1"), Ask::MethodNotAllowed);
        assert_eq!(ask(b"GET /metrics"), Ask::BadRequest);
        assert_eq!(ask(b"GET /metrics SIP/2.0"), Ask::BadRequest);
        assert_eq!(ask(b"GET  /metrics HTTP/1.1"), Ask::BadRequest);
        assert_eq!(ask(b""), Ask::BadRequest);
    }

    #[test]
    fn the_report_renders_with_prometheus_names_labels_and_histograms() {
        use super::super::stats::{PluginBuild, TableCounts};
        let h = crate::stats::Histogram::new();
        h.observe(Duration::from_micros(30));
        let latency: Latency = h.snapshot().into();
        let r = Report {
            requests_received: [("INVITE", 0), ("OPTIONS", 7)].into_iter().collect(),
            replies_sent: [("2xx", 7)].into_iter().collect(),
            replies_relayed: [("4xx", 1)].into_iter().collect(),
            replies_received: [("4xx", 2)].into_iter().collect(),
            requests_dropped: 0,
            bad_messages: 2,
            transactions_created: 3,
            transactions_active: 1,
            transactions_waiting: 1,
            retransmissions_absorbed: 4,
            registers_accepted: 5,
            registers_refused: 6,
            usrloc: vec![TableCounts {
                table: "location".into(),
                aors: 2,
                contacts: 3,
            }],
            plugin_reloads: 0,
            plugin_reloads_refused: 0,
            plugins: vec![PluginBuild {
                plugin: "default".into(),
                build: "abcdef012345".into(),
                serving: true,
                calls: 9,
                traps: 1,
                deadline_exceeded: 1,
                memory_exceeded: 0,
                call_latency: latency.clone(),
            }],
            store_commits: 1,
            store_commit_failures: 0,
            store_commit_latency: latency,
            store_writer_queue: 0,
            store_up: Some(false),
            dns_lookups: 0,
            dns_failures: 0,
            acc_records: 0,
            acc_dropped: 0,
            acc_stored: 0,
            acc_db_failures: 0,
            keepalive_sent: 0,
            keepalive_answered: 0,
            keepalive_missed: 0,
            keepalive_removed: 0,
        };
        let text = render(&r);
        for line in [
            "# TYPE wisp_requests_received_total counter",
            "wisp_requests_received_total{method=\"OPTIONS\"} 7",
            "wisp_requests_received_total{method=\"INVITE\"} 0",
            "wisp_replies_sent_total{class=\"2xx\"} 7",
            "wisp_replies_relayed_total{class=\"4xx\"} 1",
            "wisp_replies_received_total{class=\"4xx\"} 2",
            "wisp_bad_messages_total 2",
            "wisp_transactions_active 1",
            "wisp_usrloc_contacts{table=\"location\"} 3",
            "wisp_plugin_calls_total{plugin=\"default\",build=\"abcdef012345\"} 9",
            "wisp_plugin_deadline_exceeded_total{plugin=\"default\",build=\"abcdef012345\"} 1",
            "# TYPE wisp_plugin_call_duration_seconds histogram",
            "wisp_plugin_call_duration_seconds_bucket{plugin=\"default\",build=\"abcdef012345\",le=\"2.5e-05\"} 0",
            "wisp_plugin_call_duration_seconds_bucket{plugin=\"default\",build=\"abcdef012345\",le=\"5e-05\"} 1",
            "wisp_plugin_call_duration_seconds_bucket{plugin=\"default\",build=\"abcdef012345\",le=\"+Inf\"} 1",
            "wisp_plugin_call_duration_seconds_count{plugin=\"default\",build=\"abcdef012345\"} 1",
            "wisp_store_commit_duration_seconds_bucket{le=\"2.5e-05\"} 0",
            "wisp_store_commit_duration_seconds_bucket{le=\"+Inf\"} 1",
            "wisp_store_commits_total 1",
            "wisp_store_up 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
