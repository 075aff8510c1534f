//! Tenants and the accounts their events name: a verified tenant's body can
//! name any account (it knows its own secret and can sign anything), so
//! handlers must trust the tenant, never the body's `account_id`. This
//! watches for the mismatch and says so, once per tenant.

use std::collections::HashMap;
use std::sync::Mutex;

use plugipay_webhook::WebhookEvent;

/// At most this many tenants are remembered (a lookup-based source can name
/// any number).
const MAX_TENANTS: usize = 10_000;

#[derive(Default)]
pub(crate) struct Tenancy {
    /// The first account each tenant's events named, and whether a warning
    /// was given.
    seen: Mutex<HashMap<String, (String, bool)>>,
}

impl Tenancy {
    /// Warns once per tenant when its events name an account other than the
    /// first one seen from it.
    pub(crate) fn check(&self, event: &WebhookEvent) {
        let (Some(tenant), Some(account)) = (event.tenant(), event.account_id()) else {
            return;
        };
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if !seen.contains_key(tenant) {
            if seen.len() < MAX_TENANTS {
                seen.insert(tenant.to_owned(), (account.to_owned(), false));
            }
            return;
        }
        match seen.get_mut(tenant) {
            Some((first, warned)) if first != account && !*warned => {
                *warned = true;
                tracing::warn!(
                    tenant,
                    account_id = account,
                    first_account_id = %first,
                    "plugipay event from tenant {tenant:?} names account {account:?}, after events \
                     naming {first:?}: handlers must decide whose data to touch from \
                     event.tenant(), never from the body's account_id (said once per tenant)"
                );
            }
            _ => {}
        }
    }
}
