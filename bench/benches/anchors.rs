//! One criterion run, identical bodies: plugipay-webhook's `verify`, bare
//! keyed HMAC-SHA256, the serde floor, async-stripe's `construct_event`, and
//! Standard Webhooks (svix's code) verify + `serde_json::Value`.
//!
//! cd bench && cargo bench --bench anchors

use base64::Engine as _;
use bytes::Bytes;
use criterion::{black_box, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, Mac};
use plugipay_webhook::{testing, Verifier};
use plugipay_webhook_bench::{body_of, text_body_of, NOW, SECRET};
use serde::Deserialize;
use sha2::Sha256;

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
#[allow(dead_code)]
struct FloorData<'a> {
    #[serde(borrow)]
    object: Option<&'a serde_json::value::RawValue>,
}

fn bench(c: &mut Criterion) {
    anchors(c, "anchors", body_of);
    validate(c, "validate", body_of);
    // Raw non-ASCII text: where the `simd` feature's UTF-8 validation counts.
    anchors(c, "anchors_text", text_body_of);
    validate(c, "validate_text", text_body_of);
}

fn anchors(c: &mut Criterion, name: &str, body_of: fn(usize) -> Vec<u8>) {
    let verifier = Verifier::new(SECRET);
    let key = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    let svix_secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(b"bench-svix-key-0123456789abcdef!"));
    let svix = standardwebhooks::Webhook::new(&svix_secret).expect("svix key");

    let mut group = c.benchmark_group(name);
    for size in [512usize, 2048, 16 * 1024, 256 * 1024] {
        let raw = body_of(size);
        let body = Bytes::from(raw.clone());
        let text = String::from_utf8(raw.clone()).expect("utf-8");
        let header = testing::sign_header(SECRET, NOW, &body);
        group.throughput(Throughput::Bytes(body.len() as u64));

        // Every contender must accept the body, or the comparison is void.
        assert!(verifier.verify_at(body.clone(), Some(&header), NOW).is_ok());
        assert!(stripe_webhook::Webhook::construct_event_with_timestamp(&text, &header, SECRET, NOW).is_ok());

        group.bench_with_input(BenchmarkId::new("hmac", size), &body, |b, body| {
            b.iter(|| {
                let mut mac = key.clone();
                mac.update(b"1767225600.");
                mac.update(body);
                black_box(mac.finalize().into_bytes())
            })
        });
        group.bench_with_input(BenchmarkId::new("floor", size), &body, |b, body| {
            b.iter(|| {
                let mut mac = key.clone();
                mac.update(b"1767225600.");
                mac.update(body);
                let tag = mac.finalize().into_bytes();
                let text = std::str::from_utf8(body).expect("utf-8");
                let env: Floor<'_> = serde_json::from_str(text).expect("floor parses");
                black_box((tag, env.id.len()))
            })
        });
        group.bench_with_input(BenchmarkId::new("serde_value", size), &body, |b, body| {
            b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(body).expect("value")))
        });
        group.bench_with_input(BenchmarkId::new("plugipay_verify", size), &body, |b, body| {
            b.iter(|| black_box(verifier.verify_at(body.clone(), Some(&header), NOW).expect("verifies")))
        });
        group.bench_with_input(BenchmarkId::new("async_stripe", size), &text, |b, text| {
            b.iter(|| {
                black_box(
                    stripe_webhook::Webhook::construct_event_with_timestamp(text, &header, SECRET, NOW)
                        .expect("stripe verifies"),
                )
            })
        });
        // Standard Webhooks checks against the system clock: sign now.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let sig = svix.sign("msg_bench", now, &body).expect("sign");
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "msg_bench".parse().expect("hv"));
        headers.insert("webhook-timestamp", now.to_string().parse().expect("hv"));
        headers.insert("webhook-signature", sig.parse().expect("hv"));
        assert!(svix.verify(&body, &headers).is_ok());
        group.bench_with_input(BenchmarkId::new("svix_value", size), &body, |b, body| {
            b.iter(|| {
                svix.verify(body, &headers).expect("svix verifies");
                black_box(serde_json::from_slice::<serde_json::Value>(body).expect("value"))
            })
        });
    }
    group.finish();
}

fn validate(c: &mut Criterion, name: &str, body_of: fn(usize) -> Vec<u8>) {
    // The JSON pass alone: what each validator costs over the same bytes,
    // against the keyed HMAC — the question being whether a SIMD parser
    // could bring verify near the HMAC (issue: ≤ 1.6 × HMAC at 16 KiB+).
    // plugipay's own pass is `plugipay_verify` − `hmac` above.
    let mut group = c.benchmark_group(name);
    for size in [512usize, 2048, 16 * 1024, 256 * 1024] {
        let raw = body_of(size);
        group.throughput(Throughput::Bytes(raw.len() as u64));
        assert!(sonic_rs::from_slice::<serde::de::IgnoredAny>(&raw).is_ok());
        assert!(simd_json::to_tape(&mut raw.clone()).is_ok());
        group.bench_with_input(BenchmarkId::new("serde_ignored", size), &raw, |b, raw| {
            b.iter(|| black_box(serde_json::from_slice::<serde::de::IgnoredAny>(raw).expect("json")))
        });
        group.bench_with_input(BenchmarkId::new("sonic_ignored", size), &raw, |b, raw| {
            b.iter(|| black_box(sonic_rs::from_slice::<serde::de::IgnoredAny>(raw).expect("json")))
        });
        group.bench_with_input(BenchmarkId::new("sonic_value", size), &raw, |b, raw| {
            b.iter(|| black_box(sonic_rs::from_slice::<sonic_rs::Value>(raw).expect("json")))
        });
        // simd-json parses in place: the copy it needs is part of its cost.
        group.bench_with_input(BenchmarkId::new("simd_json_tape", size), &raw, |b, raw| {
            b.iter(|| {
                let mut copy = raw.clone();
                black_box(simd_json::to_tape(&mut copy).map(|t| t.0.len()).expect("json"))
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
