//! What the tools ask of the inbox: a listing's filter, its keyset cursor
//! and its page, a bounded count, and the failing types' aggregate.

use std::collections::HashMap;

use super::machine::State;
use super::types::Record;

impl Record {
    /// Where a listing continues after this record.
    #[must_use]
    pub fn cursor(&self) -> Cursor {
        Cursor {
            received_at_ms: self.received_at_ms,
            tenant: self.tenant.clone(),
            id: self.id.clone(),
            event_type: self.event_type.clone(),
        }
    }
}

/// A position in a listing: the key of the last record seen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// The record's `received_at_ms`.
    pub received_at_ms: i64,
    /// Its tenant.
    pub tenant: String,
    /// Its id.
    pub id: String,
    /// Its type.
    pub event_type: String,
}

impl Cursor {
    /// The cursor as one printable token (for `inbox list --after`).
    #[must_use]
    pub fn to_token(&self) -> String {
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        format!(
            "{}.{}.{}.{}",
            self.received_at_ms,
            hex(&self.tenant),
            hex(&self.id),
            hex(&self.event_type)
        )
    }

    /// A cursor from [`to_token`](Cursor::to_token)'s text.
    #[must_use]
    pub fn from_token(token: &str) -> Option<Cursor> {
        let unhex = |s: &str| -> Option<String> {
            if !s.len().is_multiple_of(2) {
                return None;
            }
            let bytes: Option<Vec<u8>> = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect();
            String::from_utf8(bytes?).ok()
        };
        let mut parts = token.split('.');
        let cursor = Cursor {
            received_at_ms: parts.next()?.parse().ok()?,
            tenant: unhex(parts.next()?)?,
            id: unhex(parts.next()?)?,
            event_type: unhex(parts.next()?)?,
        };
        parts.next().is_none().then_some(cursor)
    }
}

/// Which events a listing shows: filters, order and a keyset page.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this state.
    pub state: Option<State>,
    /// Only this type.
    pub event_type: Option<String>,
    /// Only this tenant (`Some("")`: events without one).
    pub tenant: Option<String>,
    /// Only events received at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only events received before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only the events about this object (`data.object.id`).
    pub object_id: Option<String>,
    /// Only events whose id starts with this.
    pub id_prefix: Option<String>,
    /// Only events after this one in the listing's order (the next page).
    pub after: Option<Cursor>,
    /// Newest first (default: oldest first).
    pub newest_first: bool,
    /// At most this many (0: 50).
    pub limit: u32,
}

impl ListFilter {
    /// The page size.
    pub(crate) fn limit(&self) -> u32 {
        if self.limit == 0 {
            50
        } else {
            self.limit
        }
    }

    /// Whether `r` belongs in the listing (for backends that filter
    /// themselves).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn matches(&self, r: &Record) -> bool {
        let after = self.after.as_ref().is_none_or(|a| {
            let c = r.cursor();
            if self.newest_first {
                c < *a
            } else {
                c > *a
            }
        });
        after
            && self.state.is_none_or(|s| r.state == s)
            && self.event_type.as_deref().is_none_or(|t| r.event_type == t)
            && self.tenant.as_deref().is_none_or(|t| r.tenant == t)
            && self.since_ms.is_none_or(|s| r.received_at_ms >= s)
            && self.until_ms.is_none_or(|u| r.received_at_ms < u)
            && self
                .id_prefix
                .as_deref()
                .is_none_or(|p| r.id.starts_with(p))
            && self
                .object_id
                .as_deref()
                .is_none_or(|o| r.object_id.as_deref() == Some(o))
    }
}

/// One page of a listing ([`Inbox::list_page`](super::Inbox::list_page)).
/// Its records carry no body and no signature (empty): a listing reads
/// what a table shows; [`Inbox::get`](super::Inbox::get) reads one event
/// whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// The matching records, in the listing's order (at most its limit).
    pub records: Vec<Record>,
    /// Where the next page starts (its `after`), when there may be more:
    /// the page is full, or the backend stopped after examining its
    /// per-request bound of events (Redis: [`MAX_EXAMINED`] — the page may
    /// then hold fewer records than asked, even none). `None`: the listing
    /// is exhausted.
    pub next: Option<Cursor>,
}

/// The most events a Redis listing or count examines per request (a
/// listing filtered by anything but its state and received time filters
/// in the client): past it, the page ends early with its
/// [`next`](Page::next) cursor, and a count says "at least".
pub const MAX_EXAMINED: usize = 10_000;

/// How many events match ([`Inbox::count`](super::Inbox::count)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Exactly this many.
    Exactly(u64),
    /// At least this many: the count stopped past the bound asked for
    /// (one more than it), or (Redis) at [`MAX_EXAMINED`] events examined.
    AtLeast(u64),
}

impl Count {
    /// The number counted (a lower bound when [`Count::AtLeast`]).
    #[must_use]
    pub fn n(self) -> u64 {
        match self {
            Count::Exactly(n) | Count::AtLeast(n) => n,
        }
    }
}

/// An event type failing now ([`Inbox::failing_types`](super::Inbox::failing_types)),
/// among the newest dead events and the newest pending events that have
/// failed before.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailingType {
    /// The type.
    pub event_type: String,
    /// Its dead events in the sample.
    pub dead: u64,
    /// Its pending events that have failed before (being retried).
    pub retrying: u64,
    /// The newest of their errors (its first 500 characters).
    pub last_error: Option<String>,
    /// When that error's event last changed (ms since the epoch).
    pub last_failed_at_ms: i64,
}

/// One failing event of the sample a backend reads for
/// [`FailingType`]: its type, whether it is dead (else retrying), its
/// error and its last change.
#[derive(Debug, Clone)]
pub(crate) struct FailingRow {
    pub(crate) event_type: String,
    pub(crate) dead: bool,
    pub(crate) last_error: Option<String>,
    pub(crate) updated_at_ms: i64,
}

/// The longest error a [`FailingType`] carries, in characters.
pub(crate) const FAILING_ERROR_LEN: usize = 500;

/// The types of `rows`, most failing events first (then by name), `top`
/// of them.
pub(crate) fn failing_types(rows: Vec<FailingRow>, top: usize) -> Vec<FailingType> {
    let mut by_type: HashMap<String, FailingType> = HashMap::new();
    for r in rows {
        let f = by_type
            .entry(r.event_type.clone())
            .or_insert_with(|| FailingType {
                event_type: r.event_type,
                dead: 0,
                retrying: 0,
                last_error: None,
                last_failed_at_ms: i64::MIN,
            });
        if r.dead {
            f.dead += 1;
        } else {
            f.retrying += 1;
        }
        if r.last_error.is_some() && r.updated_at_ms > f.last_failed_at_ms {
            f.last_failed_at_ms = r.updated_at_ms;
            f.last_error = r
                .last_error
                .map(|e| e.chars().take(FAILING_ERROR_LEN).collect());
        }
    }
    let mut out: Vec<FailingType> = by_type.into_values().collect();
    out.sort_by(|a, b| {
        (b.dead + b.retrying)
            .cmp(&(a.dead + a.retrying))
            .then_with(|| a.event_type.cmp(&b.event_type))
    });
    out.truncate(top);
    out
}
