//! The Redis inbox's calls: receiving, stats, listings, counts, retries,
//! pruning — each a script or a pipeline, bounded by the store timeout.

use std::time::Duration;

use super::super::{Backend, Inserted, NewEvent, Session};
use super::listing::{ScoreRange, PAGE};
use super::session::RedisSession;
use super::{optional, RedisInbox};
use crate::conn::redis::event_ref;
use crate::error::{millis, BoxFuture, StoreError};
use crate::inbox::machine::State;
use crate::inbox::query::{Count, FailingRow, ListFilter, Page, MAX_EXAMINED};
use crate::inbox::types::{Activity, PruneFilter, Record, RetryFilter, Stats};

impl Backend for RedisInbox {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn insert<'a>(&'a self, e: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>> {
        Box::pin(async move {
            let r = event_ref(&e.tenant, &e.id, &e.event_type);
            let (ids, secret, account, occurred, object, trace) = (
                self.ids_key(&e.id),
                e.matched_secret.to_string(),
                optional(e.account_id.as_deref()),
                optional(e.occurred_at.as_deref()),
                optional(e.object_id.as_deref()),
                optional(e.trace.as_deref()),
            );
            let n: i64 = self
                .run(
                    "insert",
                    &self.inner.scripts.insert,
                    &[
                        r.as_bytes(),
                        ids.as_bytes(),
                        e.tenant.as_bytes(),
                        e.id.as_bytes(),
                        e.event_type.as_bytes(),
                        &e.body,
                        e.signature.as_bytes(),
                        secret.as_bytes(),
                        account.as_bytes(),
                        occurred.as_bytes(),
                        e.state.as_str().as_bytes(),
                        object.as_bytes(),
                        trace.as_bytes(),
                    ],
                )
                .await?;
            Ok(match n {
                0 => Inserted::New,
                2 => Inserted::Revived,
                _ => Inserted::Duplicate,
            })
        })
    }

    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>> {
        Box::pin(async move {
            Ok(Box::new(RedisSession {
                inbox: self.clone(),
            }) as Box<dyn Session>)
        })
    }

    fn wait(&self, max: Duration) -> BoxFuture<'_, ()> {
        self.listen();
        let wake = self.inner.wake.clone();
        Box::pin(async move {
            let _ = tokio::time::timeout(max, wake.notified()).await;
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(async move {
            let names: Vec<&[u8]> = State::ALL.iter().map(|s| s.as_str().as_bytes()).collect();
            let v: Vec<i64> = self.run("stats", &self.inner.scripts.stats, &names).await?;
            let mut stats = Stats::default();
            for (state, n) in State::ALL.into_iter().zip(&v) {
                stats.counts.insert(state, u64::try_from(*n).unwrap_or(0));
            }
            stats.oldest_due_ms = v.get(State::ALL.len()).copied().unwrap_or(0);
            stats.next_lease_lapse_ms = v.get(State::ALL.len() + 1).copied();
            Ok(stats)
        })
    }

    fn activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> BoxFuture<'_, Result<Activity, StoreError>> {
        Box::pin(async move {
            // ZCOUNT per bucket on `all` (by received_at) and on the done
            // set (by the time of the change): O(log n) each.
            let mut pipe = redis::pipe();
            for key in [self.key("all"), self.key("state:done")] {
                for i in 0..buckets as i64 {
                    let low = since_ms + i * bucket_ms;
                    pipe.cmd("ZCOUNT")
                        .arg(&key)
                        .arg(low)
                        .arg(format!("({}", low + bucket_ms));
                }
            }
            let counts: Vec<u64> = self.pipe("activity", &pipe).await?;
            let (received, processed) = counts.split_at(buckets.min(counts.len()));
            Ok(Activity {
                since_ms,
                bucket_ms,
                received: received.to_vec(),
                processed: processed.to_vec(),
            })
        })
    }

    fn list<'a>(&'a self, q: &'a ListFilter) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            let (records, next) = self.walk(q, q.limit() as usize).await?;
            Ok(Page { records, next })
        })
    }

    fn count<'a>(
        &'a self,
        q: &'a ListFilter,
        at_most: u64,
    ) -> BoxFuture<'a, Result<Count, StoreError>> {
        Box::pin(async move {
            let exact = |n: u64| {
                if n > at_most {
                    Count::AtLeast(at_most.saturating_add(1))
                } else {
                    Count::Exactly(n)
                }
            };
            let by_index_alone = q.event_type.is_none()
                && q.tenant.is_none()
                && q.object_id.is_none()
                && q.id_prefix.is_none()
                && q.after.is_none();
            if by_index_alone {
                // The index's own count over the received-time range.
                let (low, high) = ScoreRange::of(q).args();
                let n: u64 = self
                    .cmd(
                        "count",
                        redis::cmd("ZCOUNT")
                            .arg(self.listing_key(q))
                            .arg(low)
                            .arg(high),
                    )
                    .await?;
                return Ok(exact(n));
            }
            let want = usize::try_from(at_most)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let (found, next) = self.walk(q, want).await?;
            let n = found.len() as u64;
            Ok(match next {
                Some(_) => Count::AtLeast(n.min(at_most.saturating_add(1))),
                None => exact(n),
            })
        })
    }

    fn failing(&self, sample: u32) -> BoxFuture<'_, Result<Vec<FailingRow>, StoreError>> {
        Box::pin(async move {
            let sample = sample as usize;
            let mut out = Vec::new();
            // The newest dead ones, and the newest pending ones that failed
            // before: walked newest first until the sample or the bound.
            for (state, dead) in [(State::Dead, true), (State::Pending, false)] {
                let (mut from, mut examined, mut taken) = (0usize, 0usize, 0usize);
                while taken < sample && examined < MAX_EXAMINED {
                    let batch = if dead { sample } else { PAGE };
                    let refs: Vec<String> = self
                        .cmd(
                            "failing types",
                            redis::cmd("ZREVRANGE")
                                .arg(self.key(&format!("state:{}", state.as_str())))
                                .arg(from)
                                .arg(from + batch - 1),
                        )
                        .await?;
                    from += refs.len();
                    examined += refs.len();
                    let rows = self
                        .fields(&refs, &["type", "attempts", "last_error", "updated_at"])
                        .await?;
                    for f in rows {
                        let attempts = f.get(1).and_then(Option::as_deref).unwrap_or("0");
                        let Some(event_type) = f.first().cloned().flatten() else {
                            continue;
                        };
                        if (dead || attempts != "0") && taken < sample {
                            taken += 1;
                            out.push(FailingRow {
                                event_type,
                                dead,
                                last_error: f.get(2).cloned().flatten().map(|e| {
                                    e.chars()
                                        .take(crate::inbox::query::FAILING_ERROR_LEN)
                                        .collect()
                                }),
                                updated_at_ms: f
                                    .get(3)
                                    .and_then(Option::as_deref)
                                    .and_then(|v| v.parse().ok())
                                    .unwrap_or(0),
                            });
                        }
                    }
                    if refs.len() < batch {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            let mut refs: Vec<String> = self
                .cmd("get", redis::cmd("SMEMBERS").arg(self.ids_key(id)))
                .await?;
            refs.sort();
            let mut records = self.records(&refs).await?;
            records.sort_by(|a, b| (&a.tenant, &a.event_type).cmp(&(&b.tenant, &b.event_type)));
            Ok(records)
        })
    }

    fn retry<'a>(&'a self, f: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let flag = |b: bool| if b { "1" } else { "0" };
            let tenant = f
                .tenant
                .as_deref()
                .map_or_else(|| "-".to_owned(), |t| format!("+{t}"));
            let since = f.since_ms.map(|s| s.to_string()).unwrap_or_default();
            let args = |ids: &str| -> Vec<Vec<u8>> {
                [
                    ids,
                    flag(f.dead),
                    flag(f.skipped),
                    flag(f.done),
                    f.event_type.as_deref().unwrap_or(""),
                    tenant.as_str(),
                    flag(f.stale),
                    f.handler.as_deref().unwrap_or(""),
                    since.as_str(),
                ]
                .iter()
                .map(|a| a.as_bytes().to_vec())
                .collect()
            };
            let script = &self.inner.scripts.retry;
            if let Some(id) = f.id.as_deref() {
                let ids = self.ids_key(id);
                let args = args(&ids);
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                let (n, _, _): (i64, i64, i64) = self.run("retry", script, &refs).await?;
                return Ok(u64::try_from(n).unwrap_or(0));
            }
            // A batch of one state at a time: each script call is short.
            const BATCH: usize = 500;
            let mut total = 0u64;
            let mut till = String::new();
            let states = [
                (f.dead, State::Dead),
                (f.skipped, State::Skipped),
                (f.stale, State::Stale),
                (f.done, State::Done),
            ];
            for (_, state) in states.iter().filter(|(on, _)| *on) {
                let mut start = 0usize;
                loop {
                    let mut a = args("");
                    a.extend([
                        state.as_str().as_bytes().to_vec(),
                        start.to_string().into_bytes(),
                        BATCH.to_string().into_bytes(),
                        till.clone().into_bytes(),
                    ]);
                    let refs: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
                    let (moved, examined, end): (i64, i64, i64) =
                        self.run("retry", script, &refs).await?;
                    till = end.to_string();
                    let (moved, examined) = (
                        usize::try_from(moved).unwrap_or(0),
                        usize::try_from(examined).unwrap_or(0),
                    );
                    total += moved as u64;
                    // The moved left the state's set; the others stay ahead.
                    start += examined.saturating_sub(moved);
                    if examined < BATCH {
                        break;
                    }
                }
            }
            Ok(total)
        })
    }

    fn prune<'a>(&'a self, f: &'a PruneFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let ms = millis(f.older_than).to_string();
        Box::pin(async move {
            const BATCH: i64 = 1000;
            let mut total = 0u64;
            loop {
                let n: i64 = self
                    .run(
                        "prune",
                        &self.inner.scripts.prune,
                        &[
                            ms.as_bytes(),
                            BATCH.to_string().as_bytes(),
                            if f.skipped { b"1" } else { b"0" },
                        ],
                    )
                    .await?;
                total += u64::try_from(n).unwrap_or(0);
                if n < BATCH {
                    return Ok(total);
                }
            }
        })
    }
}
