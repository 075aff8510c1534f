//! A store that stops answering is logged as a change of state — once when
//! it goes, a count of the deliveries refused at most every
//! [`OUTAGE_REPORT_EVERY`] while it lasts, and once when it is back — never
//! one line per request.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::error::StoreError;

/// How often at most a continuing outage is reported.
pub const OUTAGE_REPORT_EVERY: Duration = Duration::from_secs(10);

struct Down {
    since: Instant,
    since_wall: SystemTime,
    refused: u64,
    refused_since_report: u64,
    last_report: Instant,
}

/// The state of one store, as seen by this process.
pub(crate) struct Outage {
    /// `inbox`, `de-duplication store`.
    what: &'static str,
    down: Mutex<Option<Down>>,
}

impl Outage {
    pub(crate) fn new(what: &'static str) -> Outage {
        Outage {
            what,
            down: Mutex::new(None),
        }
    }

    /// A call failed (`refused`: a delivery was answered 503 for it).
    pub(crate) fn failed(&self, error: &StoreError, refused: bool) {
        let Ok(mut down) = self.down.lock() else {
            return;
        };
        let what = self.what;
        match down.as_mut() {
            None => {
                let now = Instant::now();
                tracing::warn!(
                    since = %iso8601(SystemTime::now()),
                    error = %error,
                    "{what} unavailable since {}: {error}; deliveries are answered 503 store_unavailable until it is back",
                    iso8601(SystemTime::now())
                );
                *down = Some(Down {
                    since: now,
                    since_wall: SystemTime::now(),
                    refused: u64::from(refused),
                    refused_since_report: u64::from(refused),
                    last_report: now,
                });
            }
            Some(d) => {
                d.refused += u64::from(refused);
                d.refused_since_report += u64::from(refused);
                if d.last_report.elapsed() >= OUTAGE_REPORT_EVERY {
                    tracing::warn!(
                        refused = d.refused_since_report,
                        error = %error,
                        "{what} still unavailable (since {}, {} s): {} deliveries refused in the last {} s; now: {error}",
                        iso8601(d.since_wall),
                        d.since.elapsed().as_secs(),
                        d.refused_since_report,
                        d.last_report.elapsed().as_secs()
                    );
                    d.refused_since_report = 0;
                    d.last_report = Instant::now();
                }
            }
        }
    }

    /// A call succeeded: the end of an outage, if there was one.
    pub(crate) fn succeeded(&self) {
        let Ok(mut down) = self.down.lock() else {
            return;
        };
        if let Some(d) = down.take() {
            let what = self.what;
            tracing::info!(
                refused = d.refused,
                down_s = d.since.elapsed().as_secs_f64(),
                "{what} available again after {:.1} s, {} deliveries refused",
                d.since.elapsed().as_secs_f64(),
                d.refused
            );
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds).
fn iso8601(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
