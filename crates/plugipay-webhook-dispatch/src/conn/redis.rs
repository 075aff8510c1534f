//! Redis connections and key names, shared by the de-duplication store and
//! the inbox.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{bounded, StoreError};

/// `what: <the error>` (the server's own words).
pub(crate) fn err(what: &str, e: &redis::RedisError) -> StoreError {
    StoreError::caused(what, e)
}

/// A reconnecting connection to `url`, every request bounded by `timeout`.
/// `what` names the store in errors (`redis inbox`).
pub(crate) async fn connect(
    url: &str,
    timeout: Duration,
    what: &str,
) -> Result<ConnectionManager, StoreError> {
    let client = redis::Client::open(url).map_err(|e| err(&format!("{what} url"), &e))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    bounded(timeout, &format!("{what} connect"), async {
        ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| err(&format!("{what} connect"), &e))
    })
    .await
}

/// The key part naming one event: `<len(id)>:<id>:<type>` without a
/// tenant (the first release's form, kept), `t<len>:<tenant>:<len(id)>:<id>:<type>`
/// with one — the lengths keep ids and tenants containing `:` unambiguous.
pub(crate) fn event_ref(tenant: &str, id: &str, event_type: &str) -> String {
    if tenant.is_empty() {
        format!("{}:{id}:{event_type}", id.len())
    } else {
        format!("t{}:{tenant}:{}:{id}:{event_type}", tenant.len(), id.len())
    }
}
