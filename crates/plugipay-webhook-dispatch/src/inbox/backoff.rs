//! Exponential backoff with full jitter.

use std::time::Duration;

/// The delay before attempt `failed + 1`: a uniformly random duration in
/// `[0, min(max, base × 2^(failed-1))]` ("full jitter"), so that many events
/// failing together do not retry together.
pub(crate) fn full_jitter(base: Duration, max: Duration, failed: u32) -> Duration {
    let exp = failed.saturating_sub(1).min(32);
    let ceiling = base.saturating_mul(1u32 << exp.min(31)).min(max);
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return ceiling;
    }
    let fraction = u64::from_le_bytes(bytes) as f64 / u64::MAX as f64;
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap_and_is_jittered() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for failed in 1..20 {
            let ceiling = (base * 2u32.pow((failed - 1).min(20))).min(max);
            let draws: Vec<Duration> = (0..200).map(|_| full_jitter(base, max, failed)).collect();
            assert!(draws.iter().all(|d| *d <= ceiling), "{failed}");
            // Jittered: not all the same, and spread over the range.
            assert!(draws.iter().any(|d| *d < ceiling / 2), "{failed}");
            assert!(draws.iter().any(|d| *d > ceiling / 2), "{failed}");
        }
    }
}
