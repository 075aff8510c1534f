//! Allocations per `verify` are few and do not grow with the body (counted
//! with a counting global allocator; no `unsafe` in this crate).

use std::alloc::System;

use plugipay_webhook::{testing, Bytes, Verifier};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const NOW: i64 = 1_767_225_600;

fn body_of(size: usize) -> Bytes {
    padded(size, b"x")
}

/// Non-ASCII text (validated as UTF-8 by the SIMD path when it is on).
fn text_body_of(size: usize) -> Bytes {
    padded(size, "é中😀".as_bytes())
}

fn padded(size: usize, fill: &[u8]) -> Bytes {
    let mut body =
        br#"{"id":"evt_alloc","type":"plugipay.invoice.paid.v1","data":{"object":{"pad":""#
            .to_vec();
    let tail = br#""}}}"#;
    while body.len() + fill.len() <= size - tail.len() {
        body.extend_from_slice(fill);
    }
    body.resize(size - tail.len(), b'x');
    body.extend_from_slice(tail);
    Bytes::from(body)
}

#[test]
fn allocations_per_verify_are_constant_and_few() {
    let verifier = Verifier::new("whsec_alloc");
    let mut counts = Vec::new();
    for size in [512, 2048, 16 * 1024, 256 * 1024] {
        for body in [body_of(size), text_body_of(size)] {
            let header = testing::sign_header("whsec_alloc", NOW, &body);
            // The fewest over a few runs (the test harness may allocate meanwhile).
            let fewest = (0..5)
                .map(|_| {
                    let region = Region::new(GLOBAL);
                    let event = verifier
                        .verify_at(body.clone(), Some(&header), NOW)
                        .expect("verifies");
                    let n = region.change().allocations;
                    drop(event);
                    n
                })
                .min()
                .unwrap_or(usize::MAX);
            counts.push((size, fewest));
        }
    }
    // One for the shared event; the body is kept, not copied, and the usual
    // header (one or two v1) needs no allocation.
    assert!(counts.iter().all(|&(_, n)| n == 1), "{counts:?}");

    // More than two v1 items (a long rotation) spill to the heap: one more.
    // (In the same test: the counter is process-wide, so tests must not overlap.)
    let body = body_of(512);
    let mut header = testing::sign_header("whsec_alloc", NOW, &body);
    header.push_str(&",v1=00".repeat(5));
    let region = Region::new(GLOBAL);
    let event = verifier
        .verify_at(body, Some(&header), NOW)
        .expect("verifies");
    let n = region.change().allocations;
    drop(event);
    assert!(n <= 2, "{n}");
}
