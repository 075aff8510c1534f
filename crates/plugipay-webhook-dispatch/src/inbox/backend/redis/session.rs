//! A worker's session on Redis: the claim and the owned transitions, each
//! one script on the shared connection.

use bytes::Bytes;

use super::super::{ClaimParams, Claimed, Job, Session};
use super::RedisInbox;
use crate::conn::redis::event_ref;
use crate::error::{BoxFuture, StoreError};
use crate::inbox::machine::{Move, State};

/// A worker's session: the shared multiplexed connection.
pub(super) struct RedisSession {
    pub(super) inbox: RedisInbox,
}

impl Session for RedisSession {
    fn claim<'a>(&'a mut self, p: ClaimParams<'a>) -> BoxFuture<'a, Result<Claimed, StoreError>> {
        Box::pin(async move {
            let (lease, max) = (p.lease_ms.max(1).to_string(), p.max_attempts.to_string());
            let v: redis::Value = self
                .inbox
                .run(
                    "claim",
                    &self.inbox.inner.scripts.claim,
                    &[p.owner.as_bytes(), lease.as_bytes(), max.as_bytes()],
                )
                .await?;
            claimed_from(&v)
        })
    }

    fn transition<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        mv: &'a Move,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let r = event_ref(&job.tenant, &job.id, &job.event_type);
            let due = mv.due_in_ms.map(|d| d.to_string()).unwrap_or_default();
            let n: i64 = self
                .inbox
                .run(
                    "transition",
                    &self.inbox.inner.scripts.transition,
                    &[
                        r.as_bytes(),
                        owner.as_bytes(),
                        mv.to().as_str().as_bytes(),
                        due.as_bytes(),
                        mv.error.as_deref().unwrap_or("").as_bytes(),
                        if mv.refund { b"1" } else { b"0" },
                        mv.progress.as_deref().unwrap_or("").as_bytes(),
                    ],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn peek<'a>(
        &'a mut self,
        job: &'a Job,
    ) -> BoxFuture<'a, Result<super::super::Peeked, StoreError>> {
        Box::pin(async move {
            let key = self.inbox.key(&format!(
                "ev:{}",
                event_ref(&job.tenant, &job.id, &job.event_type)
            ));
            let v: (Option<String>, Option<String>) = self
                .inbox
                .cmd(
                    "peek",
                    redis::cmd("HMGET").arg(key).arg("state").arg("owner"),
                )
                .await?;
            Ok(v.0.map(|s| (State::from_name(&s).unwrap_or(State::Pending), v.1)))
        })
    }
}

/// A claim script's reply.
fn claimed_from(v: &redis::Value) -> Result<Claimed, StoreError> {
    use redis::Value;
    let bad = || StoreError::new("redis inbox claim: an unexpected reply");
    let Value::Array(items) = v else {
        return Err(bad());
    };
    let int = |i: usize| match items.get(i) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let bytes = |i: usize| match items.get(i) {
        Some(Value::BulkString(b)) => Some(b.clone()),
        _ => None,
    };
    let text = |i: usize| bytes(i).map(|b| String::from_utf8_lossy(&b).into_owned());
    match int(0) {
        Some(0) => Ok(Claimed::Idle {
            due_in_ms: int(1).filter(|d| *d >= 0),
        }),
        Some(kind @ (1 | 2)) => {
            let job = Job {
                tenant: text(1).unwrap_or_default(),
                id: text(2).ok_or_else(bad)?,
                event_type: text(3).ok_or_else(bad)?,
                body: Bytes::from(bytes(4).unwrap_or_default()),
                matched_secret: text(5).and_then(|s| s.parse().ok()).unwrap_or(0),
                attempt: int(6)
                    .and_then(|a| u32::try_from(a).ok())
                    .unwrap_or(u32::MAX),
                received_at_ms: text(7).and_then(|t| t.parse().ok()).unwrap_or(0),
                progress: crate::inbox::progress::Progress::parse(text(8).as_deref()),
                rerun: text(9),
                trace: text(10),
                stale: false,
                cut_short: int(11) == Some(1),
            };
            Ok(if kind == 1 {
                Claimed::Job(job)
            } else {
                Claimed::Exhausted(job)
            })
        }
        _ => Err(bad()),
    }
}
