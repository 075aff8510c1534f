#![doc = include_str!("../README.md")]

mod layer;
mod request;

pub use layer::{ResponseBody, ResponseFuture, VerifyWebhook, VerifyWebhookLayer};
pub use request::{rejection_response, verify_request};

pub use plugipay_webhook::{Rejection, Verifier, WebhookEvent};
