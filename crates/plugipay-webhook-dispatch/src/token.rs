//! Claim tokens: who holds a claim or a lease.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Proof of a claim: only its holder can complete, extend or release it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh token: 128 bits from the operating system's random source,
    /// as 32 hex digits — unique across processes and machines, whatever
    /// their clocks and process ids (every container's first process is pid 1).
    #[must_use]
    pub fn new() -> ClaimToken {
        let mut bytes = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut bytes) {
            // Never seen on a supported OS; if it happens, make it loud and
            // still unique within this process.
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            tracing::error!(error = %e, "no OS randomness for a claim token: using time, pid and a counter");
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            bytes[..8].copy_from_slice(&(nanos ^ u64::from(std::process::id())).to_le_bytes());
            bytes[8..].copy_from_slice(&n.to_le_bytes());
        }
        let mut s = String::with_capacity(32);
        for b in bytes {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        ClaimToken(s)
    }

    /// The token's text, as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A token from stored text.
    #[must_use]
    pub fn from_string(s: String) -> ClaimToken {
        ClaimToken(s)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Default for ClaimToken {
    fn default() -> Self {
        ClaimToken::new()
    }
}

impl fmt::Debug for ClaimToken {
    /// The first 8 characters (whatever the text: a stored token may be anything).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(8).collect();
        write!(f, "ClaimToken({shown}…)")
    }
}
