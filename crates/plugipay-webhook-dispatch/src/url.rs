//! One way to name a store by URL, for de-duplication stores and inboxes
//! alike.

use crate::error::StoreError;

/// What a URL names.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "the backends not compiled in are named, not opened"
)]
pub(crate) enum Target<'a> {
    Memory,
    Sqlite(&'a str),
    Postgres(&'a str),
    Redis(&'a str),
}

impl<'a> Target<'a> {
    /// `memory:` (or empty), `sqlite://PATH`, `postgres://…`,
    /// `postgresql://…`, `redis://…`, `rediss://…`; `what` names the store
    /// in the error for anything else.
    pub(crate) fn parse(url: &'a str, what: &str) -> Result<Target<'a>, StoreError> {
        let url = url.trim();
        let scheme = url.split_once(':').map_or(url, |(s, _)| s);
        match scheme {
            "" | "memory" => Ok(Target::Memory),
            "sqlite" => {
                let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
                if path.is_empty() {
                    return Err(StoreError::new("sqlite:// needs a file path"));
                }
                Ok(Target::Sqlite(path))
            }
            "postgres" | "postgresql" => Ok(Target::Postgres(url)),
            "redis" | "rediss" => Ok(Target::Redis(url)),
            other => Err(StoreError::new(format!(
                "unknown {what} {other:?}: use sqlite://PATH, postgres://… or redis://…"
            ))),
        }
    }

    /// The error for a target this build cannot open.
    #[allow(dead_code, reason = "unused when every backend is compiled in")]
    pub(crate) fn missing_feature(&self, what: &str) -> StoreError {
        let feature = match self {
            Target::Memory => "memory",
            Target::Sqlite(_) => "sqlite",
            Target::Postgres(_) => "postgres",
            Target::Redis(_) => "redis",
        };
        StoreError::new(format!(
            "this build has no {feature} {what}: enable plugipay-webhook-dispatch's `{feature}` feature"
        ))
    }
}
