//! The fixture shared by `benches/plugin_call.rs` and
//! `examples/route_profile.rs`: a router core whose plugin is
//! `plugins/minimal`, the requests it routes, and its route in native Rust.
//!
//! Needs `target/plugins/minimal.wasm` (`make plugins`).

// Each of the two targets uses only part of the fixture.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use wisp::config::{Manifest, Proto};
use wisp::router::Router;
use wisp::stateless::sanity;
use wisp::stateless::{RequestSummary, RouteKind};
use wisp::tm::RouteContext;
use wisp::transport::Source;
use wisp_sip::{Message, Method};

pub const OPTIONS: &[u8] = b"OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-bench-1;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:bench@127.0.0.1:5070>;tag=bench-from\r\n\
To: <sip:127.0.0.1:5060>\r\n\
Call-ID: plugin-call-bench@127.0.0.1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

pub const INFO: &[u8] = b"INFO sip:127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-bench-2;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:bench@127.0.0.1:5070>;tag=bench-from\r\n\
To: <sip:127.0.0.1:5060>\r\n\
Call-ID: plugin-call-bench@127.0.0.1\r\n\
CSeq: 2 INFO\r\n\
Content-Length: 0\r\n\r\n";

pub fn minimal_wasm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/minimal.wasm")
}

/// A router core on an ephemeral loopback port with memory-only user
/// location, whose own plugin is the minimal one; the cache is off so the
/// bench writes nothing.
pub fn core(rt: &tokio::runtime::Runtime) -> (Arc<Router>, Manifest) {
    let text = format!(
        "[server]\nlisten = [\"udp:127.0.0.1:0\"]\nplugin_cache = \"\"\n\
         [usrloc]\ndb_mode = 0\n\
         [[plugin]]\nname = \"minimal\"\npath = {:?}\n",
        minimal_wasm().display().to_string()
    );
    let manifest = Manifest::parse(&text, Path::new("bench.toml")).expect("bench manifest");
    let router = rt
        .block_on(Router::bind(manifest.clone()))
        .expect("router binds (is target/plugins/minimal.wasm built? `make plugins`)");
    (router, manifest)
}

pub fn options_ctx() -> Box<RouteContext> {
    ctx_of(OPTIONS)
}

pub fn info_ctx() -> Box<RouteContext> {
    ctx_of(INFO)
}

pub fn ctx_of(raw: &'static [u8]) -> Box<RouteContext> {
    Template::of(raw).into_ctx()
}

/// A parsed and checked request to route again and again. A copy shares
/// the received bytes and costs the same whoever routes it, so a steady
/// loop of copy-then-route compares native and Wasm without criterion's
/// batch setup in the way.
pub struct Template {
    msg: Message,
    summary: RequestSummary,
    source: Source,
}

impl Template {
    pub fn of(raw: &'static [u8]) -> Self {
        let msg = Message::parse(Bytes::from_static(raw)).expect("bench request parses");
        let summary = sanity::check_request(&msg).expect("bench request is sane");
        let source = Source {
            proto: Proto::Udp,
            remote: SocketAddr::from(([127, 0, 0, 1], 5070)),
            local: SocketAddr::from(([127, 0, 0, 1], 5060)),
        };
        Template {
            msg,
            summary,
            source,
        }
    }

    pub fn ctx(&self) -> Box<RouteContext> {
        Box::new(RouteContext::new(
            self.msg.clone(),
            self.source,
            self.summary.clone(),
            RouteKind::Request,
        ))
    }

    fn into_ctx(self) -> Box<RouteContext> {
        Box::new(RouteContext::new(
            self.msg,
            self.source,
            self.summary,
            RouteKind::Request,
        ))
    }
}

/// `plugins/minimal`'s route in native Rust.
pub fn native_route(mut ctx: Box<RouteContext>) -> Box<RouteContext> {
    if ctx.msg.method() == Some(&Method::Options) {
        ctx.flags |= 1 << 1;
        ctx.msg
            .append_raw_header_lines(Bytes::from_static(b"X-Wisp-Seen: 1\r\n"));
    }
    ctx
}
