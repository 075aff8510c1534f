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

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub(crate) fn iso8601(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso8601_of_known_instants() {
        let at = |s| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(super::iso8601(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso8601(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(super::iso8601(at(1_795_931_142)), "2026-11-29T05:45:42Z");
    }
}
