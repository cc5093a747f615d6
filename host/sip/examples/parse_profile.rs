//! Loops over the benchmark INVITE for profiling (callgrind/perf):
//! `parse_profile [key|only|full] [iterations]`.
use std::hint::black_box;

// The router's allocator (host/src/main.rs): typed values are owned
// strings, so the allocator is part of what a parse costs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use wisp_sip::Message;

#[path = "../benches/common/invite.rs"]
mod invite;
use invite::invite;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "key".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let raw = invite();
    for _ in 0..n {
        let m = Message::parse(black_box(raw.clone())).unwrap();
        match mode.as_str() {
            "only" => {}
            "key" => {
                black_box(m.transaction_key().unwrap());
            }
            _ => {
                black_box(m.vias().unwrap());
                black_box(m.from().unwrap());
                black_box(m.to().unwrap());
                black_box(m.call_id().unwrap());
                black_box(m.cseq().unwrap());
                black_box(m.max_forwards().unwrap());
                black_box(m.contacts().unwrap());
                black_box(m.routes().unwrap());
                black_box(m.record_routes().unwrap());
                black_box(m.content_length().unwrap());
                black_box(m.content_type());
                black_box(m.request_uri().unwrap());
            }
        }
        black_box(m);
    }
}
