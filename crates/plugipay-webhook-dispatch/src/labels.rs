//! Metric labels people alert on, bounded: an event type is one a handler
//! is registered for, or `other`; a tenant is one of the configured list,
//! `other`, or empty (a delivery without a tenant). A flood of made-up types
//! or tenant names cannot grow the metrics without bound.

use std::collections::HashSet;
use std::sync::Arc;

/// The label values a dispatcher or an inbox may use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Labels {
    types: Arc<HashSet<String>>,
    tenants: Arc<HashSet<String>>,
}

/// The label of anything not in the lists.
pub(crate) const OTHER: &str = "other";

impl Labels {
    pub(crate) fn new<'a>(
        types: impl IntoIterator<Item = &'a str>,
        tenants: impl IntoIterator<Item = String>,
    ) -> Labels {
        Labels {
            types: Arc::new(types.into_iter().map(str::to_owned).collect()),
            tenants: Arc::new(tenants.into_iter().collect()),
        }
    }

    /// The `event_type` label of `event_type`.
    pub(crate) fn event_type(&self, event_type: &str) -> String {
        if self.types.contains(event_type) {
            event_type.to_owned()
        } else {
            OTHER.to_owned()
        }
    }

    /// The `tenant` label of `tenant`.
    pub(crate) fn tenant(&self, tenant: Option<&str>) -> String {
        match tenant {
            None | Some("") => String::new(),
            Some(t) if self.tenants.contains(t) => t.to_owned(),
            Some(_) => OTHER.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Labels;

    #[test]
    fn labels_are_bounded_by_the_lists() {
        let l = Labels::new(["a.v1"], ["acme".to_owned()]);
        assert_eq!(l.event_type("a.v1"), "a.v1");
        assert_eq!(l.event_type("made.up.v1"), "other");
        assert_eq!(l.tenant(Some("acme")), "acme");
        assert_eq!(l.tenant(Some("initech")), "other");
        assert_eq!(l.tenant(None), "");
    }
}
