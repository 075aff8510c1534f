#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "dispatch")]
mod dispatch;
mod layer;

#[cfg(feature = "dispatch")]
pub use dispatch::{DispatchService, Dispatched};
pub use layer::{
    rejection_response, ResponseBody, ResponseFuture, VerifyWebhook, VerifyWebhookLayer,
};

pub use plugipay_webhook::http::{Rejection, Tenant, VerifierSource, Verifiers};
pub use plugipay_webhook::{Verifier, WebhookEvent};
