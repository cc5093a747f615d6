//! Parser benchmarks: the per-message cost a proxy always pays
//! (`parse_first_line_and_txn_headers`) and a full typed parse.

use std::hint::black_box;

// The router's allocator (host/src/main.rs): typed values are owned
// strings, so the allocator is part of what a parse costs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group, criterion_main};
use wisp_sip::Message;

#[path = "common/invite.rs"]
mod invite;
use invite::invite;

fn bench(c: &mut Criterion) {
    let raw = invite();
    eprintln!("benchmark INVITE is {} bytes", raw.len());
    c.bench_function("parse_first_line_and_txn_headers", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(raw.clone())).unwrap();
            black_box(m.transaction_key().unwrap());
        })
    });
    c.bench_function("parse_only", |b| {
        b.iter(|| black_box(Message::parse(black_box(raw.clone())).unwrap()))
    });
    c.bench_function("parse_full_typed", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(raw.clone())).unwrap();
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
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
