//! The console's state as its pages see it: the inbox, the options, and
//! the request being answered (its CSRF token). The routing (`lib.rs`) and
//! the pages both build on it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use plugipay_webhook::Verifier;
use plugipay_webhook_dispatch::inbox::Inbox;

use crate::{auth, components, dev};

/// The web console: see the [crate documentation](crate). Cheap to clone.
#[derive(Clone)]
pub struct Console {
    pub(crate) inner: Arc<Inner>,
    /// While answering one request: its forms' CSRF token (its session's),
    /// and whether it holds a session (a Sign out button).
    pub(crate) request: Option<Arc<(String, bool)>>,
}

pub(crate) struct Inner {
    pub(crate) inbox: Inbox,
    pub(crate) keys: auth::Keys,
    pub(crate) base: String,
    pub(crate) read_only: bool,
    pub(crate) secure_cookie: bool,
    pub(crate) verifier: Option<Verifier>,
    pub(crate) tenants: HashMap<String, Verifier>,
    pub(crate) retries: bool,
    pub(crate) deliveries: Option<Arc<dyn dev::Deliveries>>,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("base", &self.inner.base)
            .field("auth", self.inner.keys.auth())
            .field("read_only", &self.inner.read_only)
            .field("retries", &self.inner.retries)
            .field("deliveries", &self.inner.deliveries.is_some())
            .finish_non_exhaustive()
    }
}

impl Console {
    /// The base path the console's links start with.
    pub fn base(&self) -> &str {
        &self.inner.base
    }

    /// The inbox the console shows.
    pub fn inbox(&self) -> &Inbox {
        &self.inner.inbox
    }

    pub(crate) fn frame<'a>(&'a self, title: &'a str, current: &'a str) -> components::Frame<'a> {
        components::Frame {
            base: &self.inner.base,
            title,
            read_only: self.inner.read_only,
            dev: self.inner.deliveries.is_some(),
            current,
            sign_out: self.request.as_ref().filter(|r| r.1).map(|r| r.0.as_str()),
        }
    }

    pub(crate) fn read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Whether the console shows and takes retries of events.
    pub(crate) fn can_retry(&self) -> bool {
        !self.inner.read_only && self.inner.retries
    }

    /// The CSRF token of the request being answered (its session's).
    pub(crate) fn csrf(&self) -> &str {
        self.request.as_ref().map_or("", |r| r.0.as_str())
    }

    /// The verifier for a tenant's events (`None`: events without one).
    pub(crate) fn verifier_for(&self, tenant: Option<&str>) -> Option<&Verifier> {
        match tenant {
            None => self.inner.verifier.as_ref(),
            Some(t) => self.inner.tenants.get(t),
        }
    }
}
