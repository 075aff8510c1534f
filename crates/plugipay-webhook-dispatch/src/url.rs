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

/// The password in a `scheme://user:password@host…` URL, if it has one
/// (percent-encoded as written).
pub(crate) fn password(url: &str) -> Option<&str> {
    let rest = url.trim().split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p)
}

/// `url` with its password replaced by `***` (`postgres://app:***@db/app`),
/// for logs, errors and listings: a store URL is never shown with its
/// password.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match password(url) {
        Some(p) if !p.is_empty() => {
            let rest = url.trim().split_once("://").map_or("", |(_, r)| r);
            let at = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(at);
            let (userinfo, host) = authority.rsplit_once('@').unwrap_or(("", authority));
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let scheme = url.trim().split_once("://").map_or("", |(s, _)| s);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{password, redact_url};

    #[test]
    fn passwords_are_found_and_redacted_and_nothing_else_is() {
        let url = "postgres://app:s3cr%40t@db.example:5432/app?sslmode=require";
        assert_eq!(password(url), Some("s3cr%40t"));
        assert_eq!(
            redact_url(url),
            "postgres://app:***@db.example:5432/app?sslmode=require"
        );
        assert_eq!(
            redact_url("rediss://default:pw@cache:6380"),
            "rediss://default:***@cache:6380"
        );
        assert_eq!(password("postgres://app@db/app"), None);
        assert_eq!(redact_url("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(password("postgres://db/app?user=a@b"), None);
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
