#![doc = include_str!("../README.md")]

mod extract;

pub use extract::{VerifiedEvent, WebhookError};

pub use plugipay_webhook::{Rejection, Verifier, WebhookEvent};
