//! `verify` against its floor, in one criterion run: keyed HMAC-SHA256 over
//! the body, plus UTF-8 validation, plus one serde_json pass over the same
//! bytes (a struct with borrowed strings and a `RawValue` object).
//!
//! cargo bench -p plugipay-webhook --bench verify

use criterion::{black_box, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, Mac};
use plugipay_webhook::{testing, Bytes, Verifier};
use serde::Deserialize;
use sha2::Sha256;

const SECRET: &str = "whsec_bench_0123456789abcdef";
const NOW: i64 = 1_767_225_600;

/// A realistic envelope of about `size` bytes: an invoice with line items.
fn body_of(size: usize) -> Bytes {
    invoice(size, r"Plan \u00e9t\u00e9 seat")
}

/// The same invoice with its descriptions in raw (unescaped) non-ASCII text,
/// as a service writing French, Japanese and emoji sends it: a third of the
/// body's bytes are multi-byte UTF-8.
fn text_body_of(size: usize) -> Bytes {
    invoice(
        size,
        "Abonnement été — プラン座席・年間契約 😀 Grüße, ¿qué tal?",
    )
}

fn invoice(size: usize, description: &str) -> Bytes {
    let mut lines = Vec::new();
    let mut i = 0;
    loop {
        let line = format!(
            r#"{{"id":"il_{i:08}","description":"{description} {i}","amount":{},"currency":"usd","quantity":1,"metadata":{{"k":"v","n":null}}}}"#,
            1000 + i
        );
        lines.push(line);
        let body = format!(
            r#"{{"id":"evt_01HXBENCH","type":"plugipay.invoice.paid.v1","account_id":"acc_01HX","occurred_at":"2026-01-01T00:00:00Z","data":{{"object":{{"id":"inv_01H","total":4200,"lines":[{}]}}}}}}"#,
            lines.join(",")
        );
        if body.len() >= size {
            return Bytes::from(body);
        }
        i += 1;
    }
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Floor<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    ty: &'a str,
    account_id: Option<&'a str>,
    occurred_at: Option<&'a str>,
    #[serde(borrow)]
    data: Option<FloorData<'a>>,
}

#[derive(Deserialize)]
struct FloorData<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    object: Option<&'a serde_json::value::RawValue>,
}

fn bench(c: &mut Criterion) {
    group(c, "verify", body_of);
    group(c, "text", text_body_of);
}

fn group(c: &mut Criterion, name: &str, body_of: fn(usize) -> Bytes) {
    let verifier = Verifier::new(SECRET).body_limit(1 << 20);
    let key = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    let mut group = c.benchmark_group(name);
    for size in [512usize, 2048, 16 * 1024, 256 * 1024] {
        let body = body_of(size);
        let header = testing::sign_header(SECRET, NOW, &body);
        assert!(verifier.verify_at(body.clone(), Some(&header), NOW).is_ok());
        group.throughput(Throughput::Bytes(body.len() as u64));

        group.bench_with_input(BenchmarkId::new("hmac", size), &body, |b, body| {
            b.iter(|| {
                let mut mac = key.clone();
                mac.update(b"1767225600.");
                mac.update(body);
                black_box(mac.finalize().into_bytes())
            })
        });
        group.bench_with_input(BenchmarkId::new("utf8", size), &body, |b, body| {
            b.iter(|| black_box(std::str::from_utf8(body).is_ok()))
        });
        group.bench_with_input(BenchmarkId::new("floor", size), &body, |b, body| {
            b.iter(|| {
                let mut mac = key.clone();
                mac.update(b"1767225600.");
                mac.update(body);
                let tag = mac.finalize().into_bytes();
                let text = std::str::from_utf8(body).unwrap();
                let env: Floor<'_> = serde_json::from_str(text).unwrap();
                black_box((tag, env.id.len()))
            })
        });
        group.bench_with_input(BenchmarkId::new("verify", size), &body, |b, body| {
            b.iter(|| {
                black_box(
                    verifier
                        .verify_at(body.clone(), Some(&header), NOW)
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(harness::benches);
