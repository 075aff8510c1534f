#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "dispatch")]
mod dispatch;
mod filter;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "dispatch")]
pub use dispatch::{dispatch, Dispatched};
pub use filter::{recover, rejection_reply, verified_event, VerifiedEvent, WebhookRejection};

pub use plugipay_webhook::http::{Rejection, Tenant, VerifierSource, Verifiers};
pub use plugipay_webhook::{Verifier, WebhookEvent};
