//! For adapter authors: the one door from a web framework into the core.
//!
//! An adapter (1) finds the [`VerifierSource`] in its framework's state, (2)
//! hands [`receive`] that source, the request head ([`RequestHead`]) and the
//! raw body stream, and (3) turns the result into its framework's success or
//! rejection, answering a [`Rejection`] with exactly its
//! [`status`](Rejection::status), [`headers`](Rejection::headers) and
//! [`body`](Rejection::body). Nothing else is decided in an adapter, so the
//! five frameworks cannot drift apart.
//!
//! Applications use this module for one thing: choosing the verifier per
//! request — [`Verifiers`] by route or by [`Tenant`].

mod body;
mod head;
#[cfg(feature = "tokio")]
mod receive;
mod rejection;
mod source;
mod vocabulary;

pub use ::http::StatusCode;
pub use body::{BodyCollector, INITIAL_BUFFER_CAP};
pub use head::{HeaderValues, HttpHead, RequestHead};
#[cfg(feature = "tokio")]
pub use receive::{receive, ReaderStream};
pub use rejection::{Rejection, JSON_CONTENT_TYPE, RETRY_AFTER_SECS};
pub use source::{
    BoxFuture, LookupError, Selection, Tenant, VerifierSource, Verifiers, DEFAULT_LOOKUP_TIMEOUT,
};
