#![doc = include_str!("../README.md")]

mod guard;

pub use guard::{catchers, VerifiedEvent};

pub use plugipay_webhook::{Rejection, Verifier, WebhookEvent};
