//! What the suite and its cases share: the route single-verifier
//! deliveries go to, where a test server takes its verifier from, and the
//! answer a case expects.

use plugipay_webhook::http::Verifiers;
use plugipay_webhook::Verifier;

/// The route the suite sends single-verifier deliveries to. Test servers
/// serve `POST` on every path (a catch-all route): the per-route and
/// per-tenant cases use others.
pub const WEBHOOK_PATH: &str = "/webhook";

/// Where a test server takes its verifier from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Nothing configured at all: the adapter must answer `500 verifier_missing`.
    None,
    /// One verifier for every request, registered the framework's usual way.
    Verifier(Verifier),
    /// A verifier chosen per request (per route, per tenant).
    Verifiers(Verifiers),
}

/// The answer a case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Our answer: this status and `{"error":"<code>"}` as JSON (with
    /// `Retry-After: 5` for `verifier_unavailable`).
    Ours {
        /// Status.
        status: u16,
        /// Error code.
        code: String,
    },
    /// The HTTP server's own answer, before any adapter code: this status,
    /// and not our JSON.
    Server(u16),
    /// Verified and handed to the handler (`204` from the suite's handler).
    Accepted,
}

impl Expected {
    /// Our answer.
    #[must_use]
    pub fn ours(status: u16, code: &str) -> Expected {
        Expected::Ours {
            status,
            code: code.to_owned(),
        }
    }

    /// The HTTP server's own answer.
    #[must_use]
    pub fn server(status: u16) -> Expected {
        Expected::Server(status)
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Expected::Ours { status, code } => format!("{status} {code}"),
            Expected::Server(status) => format!("{status} from the HTTP server"),
            Expected::Accepted => "204 accepted".to_owned(),
        }
    }
}
