#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "dispatch")]
mod dispatch;
mod guard;
pub mod testing;

#[cfg(feature = "dispatch")]
pub use dispatch::{dispatch_route, Dispatched};
pub use guard::{catchers, VerifiedEvent, WebhookRejection, LIMIT_NAME};

pub use plugipay_webhook::http::{Rejection, Tenant, VerifierSource, Verifiers};
pub use plugipay_webhook::{Verifier, WebhookEvent};
