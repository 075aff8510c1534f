#![doc = include_str!("../README.md")]

mod filter;

pub use filter::{recover, rejection_reply, verified_event, WebhookRejection};

pub use plugipay_webhook::{Rejection, Verifier, WebhookEvent};
