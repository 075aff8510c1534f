//! Realistic sample events for the seed's event catalog.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

/// The event types `send --type` knows sample objects for.
pub(crate) const EVENT_TYPES: &[&str] = &[
    "plugipay.customer.created.v1",
    "plugipay.invoice.paid.v1",
    "plugipay.checkout_session.succeeded.v1",
    "plugipay.subscription.cancelled.v1",
    "plugipay.refund.succeeded.v1",
    "plugipay.payout.paid.v1",
];

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh id with `prefix`: `prefix_` + 26 Crockford base-32 characters,
/// ULID-shaped: 48 bits of milliseconds, then 80 bits mixed from the clock,
/// the process id and a counter.
pub(crate) fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = (nanos as u64) ^ (u64::from(std::process::id()) << 40) ^ n.rotate_left(17);
    let (a, b) = (splitmix(seed), splitmix(seed ^ 0x9E37_79B9_7F4A_7C15));
    let millis = (nanos / 1_000_000) & ((1 << 48) - 1);
    let mut x: u128 = (millis << 80) | (u128::from(a) << 16) | u128::from(b & 0xFFFF);
    let mut out = [b'0'; 26];
    for c in out.iter_mut().rev() {
        *c = ALPHABET[(x & 31) as usize];
        x >>= 5;
    }
    format!("{prefix}_{}", String::from_utf8_lossy(&out))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A sample `data.object` for `event_type` (an empty object for others).
pub(crate) fn object_for(event_type: &str, now: i64) -> Value {
    let customer = new_id("cus");
    match event_type {
        "plugipay.customer.created.v1" => json!({
            "id": customer, "object": "customer", "email": "ada@example.com",
            "name": "Ada Lovelace", "created": now, "metadata": {}
        }),
        "plugipay.invoice.paid.v1" => json!({
            "id": new_id("inv"), "object": "invoice", "customer": customer,
            "status": "paid", "currency": "usd", "subtotal": 4000, "tax": 200, "total": 4200,
            "amount_paid": 4200, "paid_at": now,
            "lines": [{"id": new_id("il"), "description": "Pro plan (monthly)", "amount": 4000, "quantity": 1}]
        }),
        "plugipay.checkout_session.succeeded.v1" => json!({
            "id": new_id("cs"), "object": "checkout_session", "customer": customer,
            "payment_status": "paid", "currency": "usd", "amount_total": 4200,
            "mode": "subscription", "success_url": "https://example.com/thanks"
        }),
        "plugipay.subscription.cancelled.v1" => json!({
            "id": new_id("sub"), "object": "subscription", "customer": customer,
            "status": "cancelled", "cancelled_at": now, "cancel_reason": "customer_request",
            "plan": {"id": "plan_pro_monthly", "amount": 4000, "interval": "month"}
        }),
        "plugipay.refund.succeeded.v1" => json!({
            "id": new_id("re"), "object": "refund", "payment": new_id("pay"),
            "amount": 1500, "currency": "usd", "reason": "requested_by_customer", "status": "succeeded"
        }),
        "plugipay.payout.paid.v1" => json!({
            "id": new_id("po"), "object": "payout", "amount": 125_000, "currency": "usd",
            "arrival_date": now + 86_400, "status": "paid", "destination": "ba_01HXBANKACCOUNT"
        }),
        _ => json!({}),
    }
}

/// A whole envelope.
pub(crate) fn envelope(id: &str, event_type: &str, object: Value, now: i64) -> Value {
    json!({
        "id": id,
        "type": event_type,
        "account_id": "acc_01HXDEVELOPMENT00000000000",
        "occurred_at": crate::time::iso8601(now),
        "data": {"object": object}
    })
}
