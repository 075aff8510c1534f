//! Per-key ordering: which key an event is ordered under, when it
//! happened, and what becomes of one that comes up older than its key's
//! high-water mark.

use std::fmt;
use std::sync::Arc;

use plugipay_webhook::WebhookEvent;

/// The key events are ordered by: events of one key run one at a time,
/// across every worker and process, in the order they happened
/// (`occurred_at`; ties and missing timestamps in arrival order). The
/// verified tenant is always part of the key, so two tenants' objects never
/// share one.
#[derive(Clone)]
pub struct OrderKey {
    key: KeyFn,
}

/// An event's key, if it has one.
type KeyFn = Arc<dyn Fn(&WebhookEvent) -> Option<String> + Send + Sync>;

impl OrderKey {
    /// `data.object.id` (with the tenant): everything about one invoice,
    /// one subscription, one payout — in order. Events whose object has no
    /// string `id` are not ordered.
    #[must_use]
    pub fn object() -> OrderKey {
        OrderKey::with(object_id)
    }

    /// Any key: `None` for an event that need not be ordered.
    #[must_use]
    pub fn with(key: impl Fn(&WebhookEvent) -> Option<String> + Send + Sync + 'static) -> OrderKey {
        OrderKey { key: Arc::new(key) }
    }

    /// The stored key of `event`: its tenant, then the key (length-prefixed,
    /// so that no two pairs spell the same key).
    pub(crate) fn of(&self, event: &WebhookEvent) -> Option<String> {
        let key = (self.key)(event)?;
        let tenant = event.tenant().unwrap_or_default();
        Some(format!("t{}:{tenant}:{key}", tenant.len()))
    }
}

impl fmt::Debug for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OrderKey(..)")
    }
}

/// `data.object.id`, when it is a string.
pub(crate) fn object_id(event: &WebhookEvent) -> Option<String> {
    event
        .object()
        .get("id")
        .and_then(|id| id.as_str())
        .map(str::to_owned)
}

/// What becomes of a *stale* event — one that comes up when its key has
/// already done an event that happened later (its `occurred_at` is older
/// than the key's high-water mark).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stale {
    /// Recorded as `stale` (a terminal state, like `skipped`) and not handed
    /// to the handler: applying it would write older state over newer.
    #[default]
    Skip,
    /// Handed to the handler anyway, with [`is_stale`](super::is_stale)
    /// answering `true` — for handlers that merge rather than overwrite.
    Deliver,
}

/// How far in the future an event's `occurred_at` may be, for ordering:
/// the signature's default tolerance (the clock skew the contract already
/// accepts between Plugipay and a receiver).
pub const OCCURRED_AT_SLACK: std::time::Duration = std::time::Duration::from_secs(300);

/// `occurred_ms` no later than now plus [`OCCURRED_AT_SLACK`]: an event
/// that claims to have happened further in the future (a wrong clock, a
/// bug) would otherwise become its key's newest for good — every later
/// event of the key stale, and prune keeps the high-water mark. Clamped, it
/// is the newest for at most the slack.
pub(crate) fn clamp_occurred_ms(ms: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    ms.min(now.saturating_add(crate::error::millis(OCCURRED_AT_SLACK)))
}

/// Milliseconds since the epoch of an RFC 3339 / ISO 8601 timestamp with a
/// date, a time and an offset (`2026-12-04T16:55:42Z`,
/// `2026-12-04T17:55:42.123+01:00`, a space for the `T`); `None` for
/// anything else — such an event is ordered by arrival and never stale.
///
/// For ordering, the inbox takes it no later than its receipt plus
/// [`OCCURRED_AT_SLACK`].
pub fn occurred_at_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')),
        )
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // The date is checked (month, day of the month, leap years) where it
    // becomes a day number below.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if sep(i, b".,") {
        let start = i + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start || end - start > 9 {
            return None;
        }
        // The first three digits are milliseconds; the rest is dropped.
        let digits = &b[start..end.min(start + 3)];
        millis = digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
            * 10i64.pow(3 - u32::try_from(digits.len()).ok()?);
        i = end;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if b.len() == i + 1 => 0,
        c @ (b'+' | b'-') if b.len() == i + 6 && sep(i + 3, b":") => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if *c == b'+' {
                total
            } else {
                -total
            }
        }
        _ => return None,
    };
    let date = time::Date::from_calendar_date(
        i32::try_from(year).ok()?,
        time::Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let days = i64::from(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_min * 60;
    Some(seconds * 1000 + millis)
}

/// 1970-01-01's Julian day number.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_with_offsets_and_fractions() {
        assert_eq!(occurred_at_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            occurred_at_ms("2026-12-04T16:55:42Z"),
            Some(1_796_403_342_000)
        );
        assert_eq!(
            occurred_at_ms("2026-12-04T17:55:42.5+01:00"),
            Some(1_796_403_342_500)
        );
        assert_eq!(
            occurred_at_ms("2026-12-04 16:55:42.123456789z"),
            Some(1_796_403_342_123)
        );
        assert_eq!(
            occurred_at_ms("2024-02-29T00:00:00-00:30"),
            Some(1_709_166_600_000)
        );
        assert_eq!(occurred_at_ms("1969-12-31T23:59:59Z"), Some(-1000));
    }

    #[test]
    fn refuses_what_is_not_a_full_timestamp() {
        for bad in [
            "",
            "2026-12-04",
            "2026-12-04T16:55:42",
            "2026-13-04T16:55:42Z",
            "2026-02-30T16:55:42Z",
            "2025-02-29T00:00:00Z",
            "2026-12-04T24:00:00Z",
            "2026-12-04T16:55:42.Z",
            "2026-12-04T16:55:42+1:00",
            "2026-12-04T16:55:42Z ",
            "１２３４-12-04T16:55:42Z",
            "1796403342",
        ] {
            assert_eq!(occurred_at_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_hold_the_tenant_unambiguously() {
        let body = br#"{"id":"evt_1","type":"t","data":{"object":{"id":"inv_1"}}}"#;
        let ev = WebhookEvent::from_stored(bytes::Bytes::from_static(body), 0, Some("ab"))
            .expect("event");
        assert_eq!(OrderKey::object().of(&ev).as_deref(), Some("t2:ab:inv_1"));
        let none = WebhookEvent::from_stored(bytes::Bytes::from_static(body), 0, None).unwrap();
        assert_eq!(OrderKey::object().of(&none).as_deref(), Some("t0::inv_1"));
        let no_id = br#"{"id":"evt_1","type":"t","data":{"object":{"id":7}}}"#;
        let ev = WebhookEvent::from_stored(bytes::Bytes::from_static(no_id), 0, None).unwrap();
        assert_eq!(OrderKey::object().of(&ev), None);
    }
}
