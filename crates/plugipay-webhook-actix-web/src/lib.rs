#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "dispatch")]
mod dispatch;
mod extract;
pub mod testing;

#[cfg(feature = "dispatch")]
pub use dispatch::{dispatch, Dispatched};
pub use extract::{VerifiedEvent, WebhookRejection};

pub use plugipay_webhook::http::{Rejection, Tenant, VerifierSource, Verifiers};
pub use plugipay_webhook::{Verifier, WebhookEvent};
