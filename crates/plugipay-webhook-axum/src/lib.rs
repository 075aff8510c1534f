#![doc = include_str!("../README.md")]

mod extract;

pub use extract::{VerifiedEvent, WebhookRejection};

pub use plugipay_webhook::{Rejection, Verifier, WebhookEvent};
