//! Listings on Redis: a walk of one state's index by received time (every
//! event's without a state), a page of scores at a time, reading the listed
//! fields only and filtering in the client, bounded by [`MAX_EXAMINED`].

use std::collections::HashMap;

use bytes::Bytes;

use super::RedisInbox;
use crate::error::StoreError;
use crate::inbox::machine::State;
use crate::inbox::query::{Cursor, ListFilter, MAX_EXAMINED};
use crate::inbox::types::Record;

impl RedisInbox {
    /// The index a listing walks: its state's by received time (every
    /// event's, `all`, without a state).
    pub(super) fn listing_key(&self, q: &ListFilter) -> String {
        match q.state {
            Some(s) => self.key(&format!("recv:{}", s.as_str())),
            None => self.key("all"),
        }
    }

    /// `names` of each ref's hash (one pipelined `HMGET` each; a deleted
    /// event's come back `None`).
    pub(super) async fn fields(
        &self,
        refs: &[String],
        names: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for r in refs {
            pipe.cmd("HMGET")
                .arg(self.key(&format!("ev:{r}")))
                .arg(names);
        }
        let rows: Vec<Vec<Option<Vec<u8>>>> = self.pipe("read", &pipe).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
                    .collect()
            })
            .collect())
    }

    /// Up to `limit` records matching `q`, in its order, and where the next
    /// page starts: walks the listing's index a page of scores at a time,
    /// reads the listed fields (never the body), filters in the client, and
    /// stops after [`MAX_EXAMINED`] events.
    pub(super) async fn walk(
        &self,
        q: &ListFilter,
        limit: usize,
    ) -> Result<(Vec<Record>, Option<Cursor>), StoreError> {
        let key = self.listing_key(q);
        let mut range = ScoreRange::of(q);
        if let Some(after) = &q.after {
            range.narrow(q.newest_first, after.received_at_ms, true);
        }
        let (mut out, mut examined) = (Vec::new(), 0usize);
        loop {
            let (low, high) = range.args();
            let mut cmd = redis::cmd(if q.newest_first {
                "ZREVRANGEBYSCORE"
            } else {
                "ZRANGEBYSCORE"
            });
            cmd.arg(&key);
            if q.newest_first {
                cmd.arg(&high).arg(&low);
            } else {
                cmd.arg(&low).arg(&high);
            }
            cmd.arg("WITHSCORES").arg("LIMIT").arg(0).arg(PAGE);
            let mut batch: Vec<(String, f64)> = self.cmd("list", &cmd).await?;
            let last_page = batch.len() < PAGE;
            if let (false, Some(&(_, edge))) = (last_page, batch.last()) {
                // Members sharing a score come back in member order, not
                // the listing's: the page's last score is read whole, and
                // the next page starts past it.
                let edge = edge as i64;
                batch.retain(|(_, s)| *s as i64 != edge);
                let group: Vec<String> = self
                    .cmd(
                        "list",
                        redis::cmd("ZRANGEBYSCORE").arg(&key).arg(edge).arg(edge),
                    )
                    .await?;
                batch.extend(group.into_iter().map(|r| (r, 0.0)));
                range.narrow(q.newest_first, edge, false);
            }
            let refs: Vec<String> = batch.into_iter().map(|(r, _)| r).collect();
            examined += refs.len();
            let mut records: Vec<Record> = self
                .fields(&refs, &LIST_FIELDS)
                .await?
                .iter()
                .filter_map(|v| listed(v))
                .collect();
            records.sort_by(|a, b| {
                let o = a.cursor().cmp(&b.cursor());
                if q.newest_first {
                    o.reverse()
                } else {
                    o
                }
            });
            let last_seen = records.last().map(Record::cursor);
            for r in records {
                if q.matches(&r) {
                    out.push(r);
                    if out.len() >= limit {
                        let next = out.last().map(Record::cursor);
                        return Ok((out, next));
                    }
                }
            }
            if last_page {
                return Ok((out, None));
            }
            if examined >= MAX_EXAMINED {
                if let Some(next) = last_seen {
                    return Ok((out, Some(next)));
                }
            }
        }
    }
}

/// Scores a listing's page is read between (received times).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ScoreRange {
    /// `(at, inclusive)`; `None`: unbounded.
    low: Option<(i64, bool)>,
    high: Option<(i64, bool)>,
}

impl ScoreRange {
    /// The filter's `since` (inclusive) and `until` (exclusive).
    pub(super) fn of(q: &ListFilter) -> ScoreRange {
        ScoreRange {
            low: q.since_ms.map(|s| (s, true)),
            high: q.until_ms.map(|u| (u, false)),
        }
    }

    /// Moves the walk's leading end (the high one newest first) to `at`,
    /// when that is narrower.
    fn narrow(&mut self, newest_first: bool, at: i64, inclusive: bool) {
        if newest_first {
            let narrower = self
                .high
                .is_none_or(|(h, i)| at < h || (at == h && i && !inclusive));
            if narrower {
                self.high = Some((at, inclusive));
            }
        } else {
            let narrower = self
                .low
                .is_none_or(|(l, i)| at > l || (at == l && i && !inclusive));
            if narrower {
                self.low = Some((at, inclusive));
            }
        }
    }

    /// `ZRANGEBYSCORE`'s `min` and `max`.
    pub(super) fn args(&self) -> (String, String) {
        let arg = |b: Option<(i64, bool)>, inf: &str| match b {
            None => inf.to_owned(),
            Some((at, true)) => at.to_string(),
            Some((at, false)) => format!("({at}"),
        };
        (arg(self.low, "-inf"), arg(self.high, "+inf"))
    }
}

/// A listing's page of an index, before filtering.
pub(super) const PAGE: usize = 500;

/// The fields a listing reads of an event's hash: all but its body and
/// signature.
const LIST_FIELDS: [&str; 14] = [
    "tenant",
    "id",
    "type",
    "state",
    "attempts",
    "received_at",
    "due_at",
    "updated_at",
    "last_error",
    "account_id",
    "occurred_at",
    "matched_secret",
    "object_id",
    "handlers",
];

/// A listed record from [`LIST_FIELDS`]' values (`None`: deleted).
fn listed(values: &[Option<String>]) -> Option<Record> {
    let h: HashMap<String, Vec<u8>> = LIST_FIELDS
        .iter()
        .zip(values)
        .filter_map(|(k, v)| Some(((*k).to_owned(), v.clone()?.into_bytes())))
        .collect();
    record_from(&h)
}

pub(super) fn record_from(h: &HashMap<String, Vec<u8>>) -> Option<Record> {
    let text = |k: &str| h.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
    let int = |k: &str| text(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    Some(Record {
        tenant: text("tenant").unwrap_or_default(),
        id: text("id")?,
        event_type: text("type")?,
        state: State::from_name(&text("state")?).unwrap_or(State::Pending),
        attempts: u32::try_from(int("attempts")).unwrap_or(0),
        received_at_ms: int("received_at"),
        due_at_ms: int("due_at"),
        updated_at_ms: int("updated_at"),
        last_error: text("last_error"),
        account_id: text("account_id"),
        occurred_at: text("occurred_at"),
        body: Bytes::from(h.get("body").cloned().unwrap_or_default()),
        signature: text("signature").unwrap_or_default(),
        matched_secret: usize::try_from(int("matched_secret")).unwrap_or(0),
        object_id: text("object_id"),
        order_key: None,
        handlers: crate::inbox::progress::Progress::parse(text("handlers").as_deref()).0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing's score range: `since` inclusive, `until` exclusive, and a
    /// cursor or a page's edge narrowing the walk's leading end only.
    #[test]
    fn score_ranges_narrow_the_leading_end() {
        let q = ListFilter {
            since_ms: Some(10),
            until_ms: Some(90),
            ..Default::default()
        };
        let mut r = ScoreRange::of(&q);
        assert_eq!(r.args(), ("10".to_owned(), "(90".to_owned()));
        // Newest first: the high end. A cursor at 90 is no narrower than
        // `until` (exclusive); at 50 it is, inclusive (ties are filtered by
        // the cursor); a page edge at 50 then excludes it.
        r.narrow(true, 90, true);
        assert_eq!(r.args().1, "(90");
        r.narrow(true, 50, true);
        assert_eq!(r.args().1, "50");
        r.narrow(true, 50, false);
        assert_eq!(r.args().1, "(50");
        r.narrow(true, 70, true);
        assert_eq!(r.args(), ("10".to_owned(), "(50".to_owned()));
        // Oldest first: the low end.
        let mut r = ScoreRange::of(&ListFilter::default());
        assert_eq!(r.args(), ("-inf".to_owned(), "+inf".to_owned()));
        r.narrow(false, 20, true);
        r.narrow(false, 20, false);
        r.narrow(false, 5, true);
        assert_eq!(r.args(), ("(20".to_owned(), "+inf".to_owned()));
    }
}
