//! A tiny authoritative DNS server for the tests: UDP on 127.0.0.1, an
//! in-memory zone, answers built with hickory-proto's message encoding.
//! Unknown names get NXDOMAIN, known names without the asked type get an
//! empty NOERROR; both carry an SOA so the resolver caches them (RFC 2308).
//! Names marked with [`Zone::servfail`] get SERVFAIL, as a broken server would.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, NAPTR, SOA, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

pub const TTL: u32 = 300;

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("test names are valid")
}

#[derive(Default, Clone)]
pub struct Zone {
    records: Vec<Record>,
    servfail: Vec<Name>,
}

impl Zone {
    fn add(mut self, owner: &str, data: RData) -> Self {
        self.records
            .push(Record::from_rdata(name(owner), TTL, data));
        self
    }

    /// Every query for `owner` (any type) gets SERVFAIL.
    pub fn servfail(mut self, owner: &str) -> Self {
        self.servfail.push(name(owner));
        self
    }

    pub fn naptr(
        self,
        owner: &str,
        order: u16,
        pref: u16,
        service: &str,
        replacement: &str,
    ) -> Self {
        let data = NAPTR::new(
            order,
            pref,
            b"s".to_vec().into(),
            service.as_bytes().to_vec().into(),
            Vec::new().into(),
            name(replacement),
        );
        self.add(owner, RData::NAPTR(data))
    }

    pub fn srv(self, owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Self {
        self.add(
            owner,
            RData::SRV(SRV::new(priority, weight, port, name(target))),
        )
    }

    pub fn addr(self, owner: &str, ip: &str) -> Self {
        let data = match ip.parse::<IpAddr>().expect("test addresses are valid") {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.add(owner, data)
    }

    fn answer(&self, request: &Message) -> Message {
        let mut response = Message::response(request.metadata.id, OpCode::Query);
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        let Some(query) = request.queries.first() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return response;
        };
        response.add_query(query.clone());
        let qname = query.name();
        if self.servfail.iter().any(|n| n.eq_ignore_root(qname)) {
            response.metadata.response_code = ResponseCode::ServFail;
            return response;
        }
        let answers: Vec<Record> = self
            .records
            .iter()
            .filter(|r| r.name.eq_ignore_root(qname) && r.record_type() == query.query_type())
            .cloned()
            .collect();
        if answers.is_empty() {
            let exists = self.records.iter().any(|r| qname.zone_of(&r.name));
            if !exists {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            let soa = SOA::new(
                name("ns.test."),
                name("admin.test."),
                1,
                3600,
                600,
                86400,
                TTL,
            );
            response.add_authority(Record::from_rdata(name("test."), TTL, RData::SOA(soa)));
        } else {
            response.add_answers(answers);
        }
        response
    }
}

/// The running server; dropping it (or [`TestDns::stop`]) stops serving.
pub struct TestDns {
    pub addr: SocketAddr,
    queries: Arc<Mutex<Vec<(String, RecordType)>>>,
    task: JoinHandle<()>,
}

impl TestDns {
    pub async fn start(zone: Zone) -> TestDns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind test DNS");
        let addr = socket.local_addr().expect("local addr");
        let queries = Arc::new(Mutex::new(Vec::new()));
        let log = queries.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(request) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                if let Some(q) = request.queries.first() {
                    log.lock()
                        .expect("query log")
                        .push((q.name().to_ascii().to_lowercase(), q.query_type()));
                }
                let Ok(bytes) = zone.answer(&request).to_vec() else {
                    continue;
                };
                let _ = socket.send_to(&bytes, peer).await;
            }
        });
        TestDns {
            addr,
            queries,
            task,
        }
    }

    /// Every (name, type) asked so far, names lowercase and fully qualified.
    pub fn queries(&self) -> Vec<(String, RecordType)> {
        self.queries.lock().expect("query log").clone()
    }

    /// Stops serving and waits until the socket is closed.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}
